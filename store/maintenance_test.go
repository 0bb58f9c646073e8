package store_test

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/enms/enms-analytics/internal/testdb"
	"github.com/enms/enms-analytics/store"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// TestAnalyzeGrown: a table is analyzed once 1,000 rows changed and they are
// at least as many as it had at its last ANALYZE (factor 1): 2,000 new rows
// in an empty table qualify; 500 more on top of 2,000 do not; another 2,000
// (2,500 changed ≥ 2,000 counted) do. pg_stat_user_tables.analyze_count says
// how often it was analyzed by hand, which is what AnalyzeGrown does
// (autovacuum is off for the table, so it cannot analyze it in between).
func TestAnalyzeGrown(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	ctx := context.Background()
	st := store.New(pool)
	if _, err := pool.Exec(ctx, `CREATE TABLE grow_probe (x int) WITH (autovacuum_enabled = false)`); err != nil {
		t.Fatal(err)
	}
	insert := func(n int) {
		t.Helper()
		// One connection, so that forcing its statistics flush covers the
		// insert (a backend reports its counts at most once a second
		// otherwise); the flush happens at the end of the next statement.
		c, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release()
		for _, q := range []string{`INSERT INTO grow_probe SELECT generate_series(1, $1)`, `SELECT pg_stat_force_next_flush()`, `SELECT 1`} {
			var args []any
			if q[0] == 'I' {
				args = append(args, n)
			}
			if _, err := c.Exec(ctx, q, args...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	analyzed := func(want bool, count int64) {
		t.Helper()
		got, err := st.AnalyzeGrown(ctx, 1000, 1)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(got, "public.grow_probe") != want {
			t.Fatalf("AnalyzeGrown = %v; grow_probe analyzed: want %v", got, want)
		}
		if n := analyzeCount(t, pool); n != count {
			t.Fatalf("analyze_count = %d, want %d", n, count)
		}
	}
	insert(2000)
	analyzed(true, 1)
	insert(500)
	analyzed(false, 1)
	insert(2000)
	analyzed(true, 2)
}

func analyzeCount(t *testing.T, pool *pgxpool.Pool) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(),
		`SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'grow_probe'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
