package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// AnalyzeGrown runs ANALYZE on every table of the current schema whose rows
// changed, since the table's statistics were last gathered, by at least
// minRows and by at least factor times its row count then, and returns the
// tables it analyzed. Tables locked by a running VACUUM or ANALYZE, and
// tables this role may not analyze (an adopted EnMS table owned by another
// role), are skipped.
//
// Why: the worker's statements are prepared once per connection, and on a
// fresh database PostgreSQL plans them while the tables are empty. A plan
// for an empty energy_forecasts or analytics_events stays cached until new
// statistics invalidate it; autovacuum gathers them at most once a minute
// per database and, right after the database was created, later still. A
// backfill into a fresh database ran its first tens of thousands of hours
// on such plans (forecast scoring took 90 ms a call on nested-loop
// sequential scans instead of a fraction of a millisecond). With factor 1
// a table is re-analyzed each time it doubles: a handful of times while it
// fills, and no more once it is large.
func (s *Store) AnalyzeGrown(ctx context.Context, minRows int64, factor float64) ([]string, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT format('%I.%I', t.schemaname, t.relname)
		  FROM pg_stat_user_tables t JOIN pg_class c ON c.oid = t.relid
		 WHERE t.schemaname = current_schema()
		   AND t.n_mod_since_analyze >= greatest($1::float8, $2 * greatest(c.reltuples, 0)::float8)
		   -- only tables this role may analyze (owner, database owner or
		   -- superuser); autovacuum takes care of the others
		   AND (pg_has_role(c.relowner, 'MEMBER')
		        OR pg_has_role((SELECT d.datdba FROM pg_database d WHERE d.datname = current_database()), 'MEMBER')
		        OR (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user))
		 ORDER BY t.n_mod_since_analyze DESC`, minRows, factor)
	if err != nil {
		return nil, fmt.Errorf("find tables to analyze: %w", unavailable(err))
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("find tables to analyze: %w", unavailable(err))
	}
	for i, t := range tables {
		if _, err := s.pool.Exec(ctx, `ANALYZE (SKIP_LOCKED) `+t); err != nil {
			return tables[:i], fmt.Errorf("analyze %s: %w", t, unavailable(err))
		}
	}
	return tables, nil
}
