package migrations_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/enms/enms-analytics/internal/testdb"
)

// ingestShape is a 1,000-row batch: machines × readings per machine, each
// machine sampling every second.
type ingestShape struct{ machines, perMachine int }

// ingestShapes: a collector flushing 100 s of ten machines (the common case),
// and a wide flush of 10 s of 100 machines, where the per-machine work of
// the triggers (two rollup rows and the hour state per machine) weighs most.
var ingestShapes = []ingestShape{{10, 100}, {100, 10}}

// BenchmarkIngest measures raw insert throughput into energy_readings with
// the rollup triggers (and hour-close events) against the same schema on a
// second database whose user triggers are disabled (ALTER TABLE … DISABLE
// TRIGGER USER; the foreign-key checks stay in both). Each iteration writes
// the same 1,000-row batch to both databases, alternating which goes first,
// so background load hits both alike. Reported: rows/s with and without the
// triggers and their ratio (target ≥ 0.5). Time advances with every
// iteration, so hours close along the way as in production.
//
//	go test ./migrations/ -run '^$' -bench Ingest -benchtime 200x
func BenchmarkIngest(b *testing.B) {
	for _, shape := range ingestShapes {
		for _, method := range []string{"insert", "copy"} {
			b.Run(fmt.Sprintf("%s1000/%dx%d", method, shape.machines, shape.perMachine), func(b *testing.B) {
				benchmarkIngest(b, shape, method)
			})
		}
	}
}

func benchmarkIngest(b *testing.B, shape ingestShape, method string) {
	ctx := context.Background()
	with := ingestTarget(b, shape, false)
	without := ingestTarget(b, shape, true)
	sql := insertSQL(shape.machines * shape.perMachine)
	write := func(ctx context.Context, conn *pgxpool.Conn, rows [][]any) error {
		return insertBatch(ctx, conn, sql, rows)
	}
	if method == "copy" {
		write = copyBatch
	}
	var dWith, dWithout time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dbs := []*ingestDB{with, without}
		if i%2 == 1 {
			dbs[0], dbs[1] = without, with
		}
		for _, db := range dbs {
			rows := db.batch(i)
			start := time.Now()
			if err := write(ctx, db.conn, rows); err != nil {
				b.Fatalf("%s batch %d: %v", method, i, err)
			}
			if db == with {
				dWith += time.Since(start)
			} else {
				dWithout += time.Since(start)
			}
		}
	}
	b.StopTimer()
	n := float64(b.N * shape.machines * shape.perMachine)
	b.ReportMetric(n/dWith.Seconds(), "rows/s_triggers")
	b.ReportMetric(n/dWithout.Seconds(), "rows/s_no_triggers")
	b.ReportMetric(dWithout.Seconds()/dWith.Seconds(), "ratio")
}

type ingestDB struct {
	conn       *pgxpool.Conn
	machines   []string
	perMachine int
}

// ingestTarget returns a connection to a fresh migrated database with the
// shape's one-second machines, with or without the rollup triggers.
func ingestTarget(b *testing.B, shape ingestShape, disableTriggers bool) *ingestDB {
	b.Helper()
	ctx := context.Background()
	pool := testdb.New(b)
	intervals := make([]int, shape.machines)
	for i := range intervals {
		intervals[i] = 1
	}
	db := &ingestDB{machines: plant(b, pool, intervals...), perMachine: shape.perMachine}
	if disableTriggers {
		if _, err := pool.Exec(ctx, `ALTER TABLE energy_readings DISABLE TRIGGER USER`); err != nil {
			b.Fatal(err)
		}
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(conn.Release)
	db.conn = conn
	return db
}

// batch returns iteration i's rows: the next perMachine one-second readings
// of every machine.
func (db *ingestDB) batch(i int) [][]any {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i*db.perMachine) * time.Second)
	rows := make([][]any, 0, len(db.machines)*db.perMachine)
	for s := 0; s < db.perMachine; s++ {
		for k, m := range db.machines {
			power := 40 + float64((i+s+k)%17)
			rows = append(rows, []any{t0.Add(time.Duration(s) * time.Second), m, power, nil, 400.0, power * 1.6, 0.92})
		}
	}
	return rows
}

var ingestCols = []string{"time", "machine_id", "power_kw", "energy_kwh", "voltage_v", "current_a", "power_factor"}

// insertSQL is one multi-row INSERT of n rows (pgx prepares it once per
// connection).
func insertSQL(n int) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "INSERT INTO energy_readings (%s) VALUES ", strings.Join(ingestCols, ", "))
	for r := 0; r < n; r++ {
		if r > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("(")
		for c := range ingestCols {
			if c > 0 {
				sb.WriteString(", ")
			}
			fmt.Fprintf(&sb, "$%d", r*len(ingestCols)+c+1)
		}
		sb.WriteString(")")
	}
	return sb.String()
}

func insertBatch(ctx context.Context, conn *pgxpool.Conn, sql string, rows [][]any) error {
	args := make([]any, 0, len(rows)*len(ingestCols))
	for _, r := range rows {
		args = append(args, r...)
	}
	_, err := conn.Exec(ctx, sql, args...)
	return err
}

func copyBatch(ctx context.Context, conn *pgxpool.Conn, rows [][]any) error {
	_, err := conn.CopyFrom(ctx, pgx.Identifier{"energy_readings"}, ingestCols, pgx.CopyFromRows(rows))
	return err
}
