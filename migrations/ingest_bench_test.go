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

// ingestMachines × ingestPerMachine = 1,000 rows per statement: ten machines
// sampling every second, 100 s of data each, as a collector flushing a batch.
const ingestMachines, ingestPerMachine = 10, 100

// BenchmarkIngest measures raw insert throughput into energy_readings with
// the rollup triggers (and hour-close events) against the same schema on a
// second database whose user triggers are disabled (ALTER TABLE … DISABLE
// TRIGGER USER; the foreign-key checks stay in both). Each iteration writes
// the same 1,000-row batch to both databases, alternating which goes first,
// so background load hits both alike. Reported: rows/s with and without the
// triggers and their ratio (target ≥ 0.5). Time advances 100 s per
// iteration, so hours close along the way as in production.
//
//	go test ./migrations/ -run '^$' -bench Ingest -benchtime 300x
func BenchmarkIngest(b *testing.B) {
	for _, method := range []string{"insert", "copy"} {
		b.Run(method+"1000", func(b *testing.B) {
			ctx := context.Background()
			with := ingestTarget(b, false)
			without := ingestTarget(b, true)
			write := insertBatch
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
			n := float64(b.N * ingestMachines * ingestPerMachine)
			b.ReportMetric(n/dWith.Seconds(), "rows/s_triggers")
			b.ReportMetric(n/dWithout.Seconds(), "rows/s_no_triggers")
			b.ReportMetric(dWithout.Seconds()/dWith.Seconds(), "ratio")
		})
	}
}

type ingestDB struct {
	conn     *pgxpool.Conn
	machines []string
}

// ingestTarget returns a connection to a fresh migrated database with ten
// one-second machines, with or without the rollup triggers.
func ingestTarget(b *testing.B, disableTriggers bool) *ingestDB {
	b.Helper()
	ctx := context.Background()
	pool := testdb.New(b)
	intervals := make([]int, ingestMachines)
	for i := range intervals {
		intervals[i] = 1
	}
	db := &ingestDB{machines: plant(b, pool, intervals...)}
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

// batch returns iteration i's rows: 100 one-second readings per machine.
func (db *ingestDB) batch(i int) [][]any {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i*ingestPerMachine) * time.Second)
	rows := make([][]any, 0, ingestMachines*ingestPerMachine)
	for s := 0; s < ingestPerMachine; s++ {
		for k, m := range db.machines {
			power := 40 + float64((i+s+k)%17)
			rows = append(rows, []any{t0.Add(time.Duration(s) * time.Second), m, power, nil, 400.0, power * 1.6, 0.92})
		}
	}
	return rows
}

var ingestCols = []string{"time", "machine_id", "power_kw", "energy_kwh", "voltage_v", "current_a", "power_factor"}

// insertSQL is one 1,000-row multi-row INSERT (prepared once per connection).
var insertSQL = func() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "INSERT INTO energy_readings (%s) VALUES ", strings.Join(ingestCols, ", "))
	for r := 0; r < ingestMachines*ingestPerMachine; r++ {
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
}()

func insertBatch(ctx context.Context, conn *pgxpool.Conn, rows [][]any) error {
	args := make([]any, 0, len(rows)*len(ingestCols))
	for _, r := range rows {
		args = append(args, r...)
	}
	_, err := conn.Exec(ctx, insertSQL, args...)
	return err
}

func copyBatch(ctx context.Context, conn *pgxpool.Conn, rows [][]any) error {
	_, err := conn.CopyFrom(ctx, pgx.Identifier{"energy_readings"}, ingestCols, pgx.CopyFromRows(rows))
	return err
}
