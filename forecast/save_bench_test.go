package forecast_test

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/enms/enms-analytics/internal/testdb"
	"github.com/enms/enms-analytics/store"
)

var explainSave = flag.Bool("forecast.explain", false,
	"BenchmarkSaveForecastRun: log EXPLAIN (ANALYZE, BUFFERS) of each statement of one more run (auto_explain)")

// saveBench is a forecast table as a backfill of 20 machines × 10 days
// leaves it, in a UTC factory: for each machine the 240 origins day 0
// 01:00 … day 10 00:00, each with 24 hourly and 4 quarter-hour rows, and 7
// daily rows at each of the 10 UTC midnights (10 × 7 = 70): 240 × 28 + 70 =
// 6,790 rows a machine, 135,800 in all, the targets that end by day 10
// 00:00 scored. Rollups cover days 0–17 for every machine and the machines
// are closed through day 17 (a backfill's worker lags the data), so every
// target of the run below has its actual when written.
//
// The run is machine 1's next 128 hours (origins day 10 01:00 … day 15
// 08:00, five UTC midnights among them): 128 × 28 + 5 × 7 = 3,619 rows.
type saveBench struct {
	pool    *pgxpool.Pool
	st      *store.Store
	origins []time.Time
	rows    []store.ForecastRow
	prune   time.Time
	backend int // the process id of the connection the run is written on
}

const (
	saveBenchMachines = 20
	saveBenchDays     = 10
	saveBenchRunHours = 128
)

func saveBenchMachine(i int) string { return fmt.Sprintf("aaaaaaaa-0000-4000-8000-%012d", i) }

// insertBenchPlant adds machines 2 … machines to the fixture's factory
// (machine 1 is machineID) and gives every machine the 15-minute rollups of
// days 0 … days−1 — power (kW) a daily wave plus a per-machine offset;
// energy = power × ¼ h — and the hourly rollups summing them.
func insertBenchPlant(b *testing.B, pool *pgxpool.Pool, machines, days int) {
	b.Helper()
	ctx := context.Background()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO machines (id, factory_id, name, type, data_interval_seconds)
			SELECT ('aaaaaaaa-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, $1, 'M' || g, 'compressor', 60
			FROM generate_series(2, $2) g`, []any{factoryID, machines}},
		{`INSERT INTO energy_readings_15min (bucket, machine_id, reading_count, sum_power_kw, min_power_kw, max_power_kw, total_energy_kwh)
			SELECT $1::timestamptz + q * interval '15 minutes', m.id, 1, p, p, p, p / 4
			FROM generate_series(0, $2 * 96 - 1) q CROSS JOIN machines m
			CROSS JOIN LATERAL (SELECT 60 + 30 * sin(2 * pi() * q / 96) + (q * 7 + ascii(m.name)) % 11 AS p) x
			ORDER BY 1, 2`, []any{day0, days}},
		{`INSERT INTO energy_readings_1hour (bucket, machine_id, reading_count, sum_power_kw, total_energy_kwh, peak_demand_kw, peak_demand_at)
			SELECT date_trunc('hour', bucket), machine_id, 4, sum(sum_power_kw), sum(total_energy_kwh), max(max_power_kw), min(bucket)
			FROM energy_readings_15min GROUP BY 1, 2 ORDER BY 1, 2`, nil},
	} {
		if _, err := pool.Exec(ctx, q.sql, q.args...); err != nil {
			b.Fatal(err)
		}
	}
}

func newSaveBench(b *testing.B) saveBench {
	b.Helper()
	pool, _ := fixture(b) // machine 1 is machineID
	ctx := context.Background()
	end := day0.Add(saveBenchDays * 24 * time.Hour)
	insertBenchPlant(b, pool, saveBenchMachines, 18) // rollups of days 0–17
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO analytics_hour_state (machine_id, open_hour, closed_through)
			SELECT id, $1, $1 FROM machines`, []any{day0.Add(17*24*time.Hour - time.Hour)}},
		// The forecasts of origins day 0 01:00 … day 10 00:00, in the order
		// a backfill writes them (by origin, machines interleaved), scored
		// when the target ended by day 10 00:00.
		{`INSERT INTO energy_forecasts AS f (machine_id, origin, target_bucket, resolution, horizon,
				predicted_kwh, predicted_kw, lower_80, upper_80, lower_95, upper_95, model, actual_kwh)
			SELECT t.machine_id, t.origin, t.target, t.res, t.h, 50, 50 / t.hours, 40, 60, 30, 70, 'seasonal_naive',
			       CASE WHEN t.target + t.hours * interval '1 hour' <= $2 THEN
			           (SELECT sum(r.total_energy_kwh) FROM energy_readings_15min r WHERE r.machine_id = t.machine_id
			              AND r.bucket >= t.target AND r.bucket < t.target + t.hours * interval '1 hour') END
			FROM (
				SELECT m.id AS machine_id, o AS origin, o + (h - 1) * interval '1 hour' AS target, '1hour' AS res, h, 1.0 AS hours
				FROM generate_series($1::timestamptz + interval '1 hour', $2, interval '1 hour') o, generate_series(1, 24) h, machines m
				UNION ALL
				SELECT m.id, o, o + (h - 1) * interval '15 minutes', '15min', h, 0.25
				FROM generate_series($1::timestamptz + interval '1 hour', $2, interval '1 hour') o, generate_series(1, 4) h, machines m
				UNION ALL
				SELECT m.id, o, o + (h - 1) * interval '1 day', '1day', h, 24.0
				FROM generate_series($1::timestamptz + interval '1 day', $2, interval '1 day') o, generate_series(1, 7) h, machines m
			) t ORDER BY t.origin, t.machine_id, t.res, t.target`, []any{day0, end}},
		{`ANALYZE`, nil},
	} {
		if _, err := pool.Exec(ctx, q.sql, q.args...); err != nil {
			b.Fatal(err)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM energy_forecasts`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	if want := saveBenchMachines * (240*28 + 70); n != want {
		b.Fatalf("%d forecasts stored, want 20 × (240 × 28 + 70) = %d", n, want)
	}
	// The run is written through a pool of one connection, whose backend's
	// CPU time the benchmark reads.
	one := onePool(b, pool)
	sb := saveBench{pool: pool, st: store.New(one)}
	if err := one.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&sb.backend); err != nil {
		b.Fatal(err)
	}
	for i := range saveBenchRunHours {
		origin := end.Add(time.Duration(i+1) * time.Hour)
		sb.origins = append(sb.origins, origin)
		p := 40 + float64(i%24)
		for h := range 24 {
			sb.rows = append(sb.rows, benchRow(origin, origin.Add(time.Duration(h)*time.Hour), store.Resolution1Hour, h+1, p, 1))
		}
		for q := range 4 {
			sb.rows = append(sb.rows, benchRow(origin, origin.Add(time.Duration(q)*15*time.Minute), store.Resolution15Min, q+1, p/4, 0.25))
		}
		if origin.Hour() == 0 {
			for d := range 7 {
				sb.rows = append(sb.rows, benchRow(origin, origin.AddDate(0, 0, d), store.Resolution1Day, d+1, 24*p, 24))
			}
			sb.prune = origin.Add(-90 * 24 * time.Hour) // the service's default retention
		}
	}
	if len(sb.rows) != 128*28+5*7 {
		b.Fatalf("%d rows in the run, want 128 × 28 + 5 × 7 = 3,619", len(sb.rows))
	}
	// What the run changes of the stored table: its own rows, and the
	// actuals of machine 1's earlier targets ending within it.
	if _, err := pool.Exec(ctx, `CREATE TABLE bench_unscored AS SELECT origin, target_bucket, resolution
		FROM energy_forecasts WHERE machine_id = $1 AND actual_kwh IS NULL`, machineID); err != nil {
		b.Fatal(err)
	}
	return sb
}

func benchRow(origin, target time.Time, res string, horizon int, kwh, hours float64) store.ForecastRow {
	return store.ForecastRow{MachineID: machineID, Origin: origin, TargetBucket: target, Resolution: res, Horizon: horizon,
		PredictedKWh: kwh, PredictedKW: kwh / hours, Lower80: 0.8 * kwh, Upper80: 1.2 * kwh, Lower95: 0.7 * kwh, Upper95: 1.3 * kwh,
		Model: "seasonal_naive"}
}

// reset takes the table back to before the run (rows deleted, actuals
// cleared, then vacuumed so that no iteration pays for the last one's dead
// rows).
func (sb saveBench) reset(b *testing.B) {
	ctx := context.Background()
	if _, err := sb.pool.Exec(ctx, `DELETE FROM energy_forecasts WHERE machine_id = $1 AND origin > $2`,
		machineID, sb.origins[0].Add(-time.Hour)); err != nil {
		b.Fatal(err)
	}
	if _, err := sb.pool.Exec(ctx, `UPDATE energy_forecasts f SET actual_kwh = NULL FROM bench_unscored u
		WHERE f.machine_id = $1 AND f.origin = u.origin AND f.target_bucket = u.target_bucket
		  AND f.resolution = u.resolution AND f.actual_kwh IS NOT NULL`, machineID); err != nil {
		b.Fatal(err)
	}
	sb.vacuum(b)
}

func (sb saveBench) vacuum(b *testing.B) {
	if _, err := sb.pool.Exec(context.Background(), `VACUUM energy_forecasts`); err != nil {
		b.Fatal(err)
	}
}

// cpu returns the CPU time the backend that writes the run has used (from
// /proc/PID/schedstat; ok is false when the server is not a local process).
func (sb saveBench) cpu() (d time.Duration, ok bool) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", sb.backend))
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(raw))
	if len(f) == 0 {
		return 0, false
	}
	ns, err := strconv.ParseInt(f[0], 10, 64)
	return time.Duration(ns), err == nil
}

func (sb saveBench) save(b *testing.B, st *store.Store) {
	if err := st.SaveForecastRun(context.Background(), machineID, "UTC", sb.origins, sb.rows, sb.prune); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSaveForecastRun is the database's share of a backfill run:
// SaveForecastRun of a 128-hour run of 3,619 rows (see saveBench) into a
// table already holding 20 machines × 10 days of forecasts. "new": the
// run's keys are not stored yet (the table is taken back before each
// iteration, off the clock), as in a backfill; "again": the same run
// redelivered, every key stored. µs/row is the timed time over the rows
// written. With -forecast.explain it logs the plans of one more run of
// each (auto_explain, with trigger times: the foreign-key checks).
func BenchmarkSaveForecastRun(b *testing.B) {
	for _, again := range []bool{false, true} {
		name := "new"
		if again {
			name = "again"
		}
		b.Run(name, func(b *testing.B) {
			sb := newSaveBench(b)
			sb.reset(b)
			if again {
				sb.save(b, sb.st)
			}
			var cpu time.Duration
			cpuOK := true
			for b.Loop() {
				b.StopTimer()
				if again {
					sb.vacuum(b)
				} else {
					sb.reset(b)
				}
				c0, ok0 := sb.cpu()
				b.StartTimer()
				sb.save(b, sb.st)
				b.StopTimer()
				c1, ok1 := sb.cpu()
				cpu += c1 - c0
				cpuOK = cpuOK && ok0 && ok1
				b.StartTimer()
			}
			rows := float64(b.N * len(sb.rows))
			b.ReportMetric(float64(b.Elapsed().Microseconds())/rows, "µs/row")
			if cpuOK {
				b.ReportMetric(float64(cpu.Nanoseconds())/1e3/rows, "server-cpu-µs/row")
			}
			b.ReportMetric(0, "ns/op")
			if *explainSave {
				if again {
					sb.vacuum(b)
				} else {
					sb.reset(b)
				}
				for _, plan := range sb.explain(b) {
					b.Log(plan)
				}
			}
		})
	}
}

// explain runs the run once more on a superuser connection with
// auto_explain logging every statement's plan to the client, and returns
// the plans.
func (sb saveBench) explain(b *testing.B) []string {
	ctx := context.Background()
	u, err := url.Parse(testdb.AdminURL(b))
	if err != nil {
		b.Fatal(err)
	}
	u.Path = "/" + sb.pool.Config().ConnConfig.Database
	cfg, err := pgxpool.ParseConfig(u.String())
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	var plans []string
	cfg.MaxConns = 1
	cfg.ConnConfig.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		mu.Lock()
		defer mu.Unlock()
		plans = append(plans, n.Message)
	}
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, `LOAD 'auto_explain';
			SET auto_explain.log_min_duration = 0; SET auto_explain.log_analyze = on;
			SET auto_explain.log_buffers = on; SET auto_explain.log_triggers = on;
			SET auto_explain.log_level = notice`)
		return err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	sb.save(b, store.New(pool))
	mu.Lock()
	defer mu.Unlock()
	return []string{strings.Join(plans, "\n\n")}
}

// BenchmarkSaveForecastBackfill is a backfill's writes as a worker makes
// them: into a table that starts empty (truncated off the clock before each
// iteration), 5 machines × 7 days closed in runs of 24 hours (origins 01:00
// … 24:00 UTC of each day), day after day and machine after machine within
// a day, all on one connection, whose prepared statements get their plans
// while the table is still small, as a worker's do. On day 0 the models
// have too little history and the runs write no forecast (only the prune
// and the scoring run, on an empty table); on days 1–6 a run writes 24 × 28
// + 7 = 679 rows. No hour is recorded closed (analytics_hour_state is
// empty), so a run writes the actuals of the targets ending within its
// hours, and the scoring records those of the earlier run's targets ending
// there. µs/row is the timed time over the 5 × 6 × 679 = 20,370 rows
// written.
func BenchmarkSaveForecastBackfill(b *testing.B) {
	const machines, days = 5, 7
	pool, _ := fixture(b)
	ctx := context.Background()
	// Rollups of days 0–14 (the daily targets of the last run end on day
	// 14).
	insertBenchPlant(b, pool, machines, 15)
	if _, err := pool.Exec(ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}
	st := store.New(onePool(b, pool))
	type run struct {
		machine string
		origins []time.Time
		rows    []store.ForecastRow
		prune   time.Time
	}
	var runs []run
	total := 0
	for d := range days {
		for m := 1; m <= machines; m++ {
			r := run{machine: saveBenchMachine(m)}
			for h := range 24 {
				origin := day0.Add(time.Duration(d*24+h+1) * time.Hour)
				r.origins = append(r.origins, origin)
				if d == 0 {
					continue // too little history: no forecast
				}
				p := 40 + float64(h)
				for k := range 24 {
					r.rows = append(r.rows, benchRow(origin, origin.Add(time.Duration(k)*time.Hour), store.Resolution1Hour, k+1, p, 1))
				}
				for q := range 4 {
					r.rows = append(r.rows, benchRow(origin, origin.Add(time.Duration(q)*15*time.Minute), store.Resolution15Min, q+1, p/4, 0.25))
				}
				if origin.Hour() == 0 {
					for k := range 7 {
						r.rows = append(r.rows, benchRow(origin, origin.AddDate(0, 0, k), store.Resolution1Day, k+1, 24*p, 24))
					}
					r.prune = origin.Add(-90 * 24 * time.Hour)
				}
			}
			for i := range r.rows {
				r.rows[i].MachineID = r.machine
			}
			runs = append(runs, r)
			total += len(r.rows)
		}
	}
	if total != machines*(days-1)*(24*28+7) {
		b.Fatalf("%d rows, want 5 × 6 × 679 = 20,370", total)
	}
	for b.Loop() {
		b.StopTimer()
		if _, err := pool.Exec(ctx, `TRUNCATE energy_forecasts`); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for _, r := range runs {
			if err := st.SaveForecastRun(ctx, r.machine, "UTC", r.origins, r.rows, r.prune); err != nil {
				b.Fatal(err)
			}
		}
	}
	var scored int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM energy_forecasts WHERE actual_kwh IS NOT NULL`).Scan(&scored); err != nil {
		b.Fatal(err)
	}
	if scored == 0 {
		b.Fatal("no forecast was scored")
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*total), "µs/row")
	b.ReportMetric(0, "ns/op")
}
