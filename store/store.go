// Package store holds every SQL statement that reads or writes domain rows.
// The worker (listener) and the API (http) talk to the database only through
// it, in domain terms.
package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store is the database, seen through the queries this service runs.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a Store on pool. The caller owns and closes the pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Pool exposes the pool to the packages that need a raw connection (the
// listener's LISTEN connection, bulk COPY in the simulator).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// DatabaseInfo is what the health check reports about the database.
type DatabaseInfo struct {
	ServerVersion    string
	MigrationVersion int64
	MigrationDirty   bool
}

// Health pings the database and reports its version and migration state.
func (s *Store) Health(ctx context.Context) (DatabaseInfo, error) {
	var info DatabaseInfo
	err := s.pool.QueryRow(ctx, `SELECT current_setting('server_version')`).Scan(&info.ServerVersion)
	if err != nil {
		return info, fmt.Errorf("query server version: %w", err)
	}
	err = s.pool.QueryRow(ctx, `
		SELECT coalesce((SELECT version FROM schema_migrations LIMIT 1), 0),
		       coalesce((SELECT dirty FROM schema_migrations LIMIT 1), false)
		WHERE to_regclass('schema_migrations') IS NOT NULL`).Scan(&info.MigrationVersion, &info.MigrationDirty)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return info, fmt.Errorf("query migration version: %w", err)
	}
	return info, nil
}
