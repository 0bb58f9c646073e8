package migrations_test

import (
	"context"
	"testing"

	"github.com/enms/enms-analytics/internal/testdb"
	"github.com/enms/enms-analytics/migrations"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// TestUpDownUpEmpty runs every migration up, all the way down and up again
// on an empty database: each down reverts its up.
func TestUpDownUpEmpty(t *testing.T) {
	t.Parallel()
	url := testdb.EmptyURL(t)
	if err := migrations.Up(url); err != nil {
		t.Fatalf("first up: %v", err)
	}
	v, dirty, err := migrations.Version(url)
	if err != nil || dirty || v == 0 {
		t.Fatalf("version after up = %d dirty=%v err=%v", v, dirty, err)
	}
	if err := migrations.Down(url, 0); err != nil {
		t.Fatalf("down: %v", err)
	}
	pool := testdb.Pool(t, url)
	var left []string
	rows, err := pool.Query(context.Background(), `
		SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relkind IN ('r','v','m','p') AND c.relname <> 'schema_migrations'
		UNION ALL SELECT typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
		WHERE n.nspname = 'public' AND t.typtype = 'e'
		UNION ALL SELECT proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		left = append(left, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("after down, these objects remain: %v", left)
	}
	if err := migrations.Up(url); err != nil {
		t.Fatalf("second up: %v", err)
	}
}
