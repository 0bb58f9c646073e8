package migrations_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/enms/enms-analytics/internal/testdb"
	"github.com/enms/enms-analytics/migrations"
	"github.com/enms/enms-analytics/simulator"
)

// Migration 000012 makes analytics_all_kpis (what kpi_snapshot_day reads)
// always use the generic plan of its query instead of planning it again on
// every call. The tests below check that this changes no snapshot, and the
// benchmark shows what it saves.

// snapshotDay is one machine's factory-local day to snapshot.
type snapshotDay struct {
	machine string
	day     string // YYYY-MM-DD
	loc     *time.Location
}

// snapshotCols are the columns of kpi_daily_snapshots that kpi_snapshot_day
// computes (all but computed_at, the clock).
const snapshotCols = `machine_id::text, day::text, timezone, period_start, period_end, time_period_hours,
	total_energy_kwh, avg_power_kw, peak_demand_kw, total_production_units, sec_kwh_per_unit,
	load_factor, load_factor_percent, total_cost, currency, cost_per_unit, total_co2_kg, co2_per_unit_kg`

// snapshotReading is one raw reading of the fixture: power and energy, and
// units produced in the same instant.
type snapshotReading struct {
	at      time.Time
	machine string
	kw, kwh float64
	units   int64
	mode    string
}

// snapshotPlant loads three factories — Los Angeles (time-of-use tariffs,
// DST on 2026-03-08 and 2026-11-01), Berlin (flat EUR tariff, DST on
// 2026-03-29 and 2026-10-25) and Kolkata (+05:30, no tariff and no grid
// region, so its local midnight cuts a UTC hour in two and the raw edges
// are read) — with one machine each, and writes raw energy and production
// readings every 15 minutes over 2026-03-06..03-31 and 2026-10-23..11-03
// (UTC) through the rollup triggers, in shuffled batches so that the rollup
// rows' physical order is not their time order. It returns the readings and
// the local days to snapshot: for every machine, the DST days and the days
// around them, all wholly inside the data.
func snapshotPlant(t *testing.T, pool *pgxpool.Pool) ([]snapshotReading, []snapshotDay) {
	t.Helper()
	ctx := context.Background()
	id := func(sql string, args ...any) string {
		var s string
		if err := pool.QueryRow(ctx, sql, args...).Scan(&s); err != nil {
			t.Fatalf("%s: %v", firstLine(sql), err)
		}
		return s
	}
	exec := func(sql string, args ...any) {
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", firstLine(sql), err)
		}
	}
	la := id(`INSERT INTO factories (name, timezone, metadata) VALUES ('LA', 'America/Los_Angeles', '{"grid_region": "US-California"}') RETURNING id::text`)
	de := id(`INSERT INTO factories (name, timezone, metadata) VALUES ('Berlin', 'Europe/Berlin', '{"grid_region": "Germany"}') RETURNING id::text`)
	in := id(`INSERT INTO factories (name, timezone) VALUES ('Kolkata', 'Asia/Kolkata') RETURNING id::text`)
	machine := func(factory, name string) string {
		return id(`INSERT INTO machines (factory_id, name, type, data_interval_seconds) VALUES ($1, $2, 'pump', 900) RETURNING id::text`, factory, name)
	}
	laM, deM, inM := machine(la, "LA-1"), machine(de, "DE-1"), machine(in, "IN-1")
	exec(`INSERT INTO energy_tariffs (factory_id, name, rate_per_kwh, currency, is_time_of_use, start_hour, end_hour, applicable_days, valid_from, is_active) VALUES
		($1, 'Peak (weekdays 09-21)', 0.25, 'USD', true, 9, 21, '{1,2,3,4,5}', '2024-01-01', true),
		($1, 'Off-peak (21-09)', 0.10, 'USD', true, 21, 9, NULL, '2024-01-01', true),
		($2, 'EU flat', 0.18, 'EUR', false, NULL, NULL, NULL, '2024-01-01', true)`, la, de)
	exec(`INSERT INTO carbon_factors (region, emission_factor_kg_co2_per_kwh, source, valid_from, is_active) VALUES
		('US-California', 0.22, 'CARB', '2024-01-01', true),
		('Germany', 0.35, 'UBA', '2024-01-01', true),
		('Germany', 0.31, 'UBA update', '2026-03-30', true),
		('default', 0.40, 'fixture', '2024-01-01', true)`)

	// Power follows a daily wave with a different phase per machine, so that
	// each local day has its own total; energy is power × 900 s.
	var readings []snapshotReading
	ranges := [][2]time.Time{
		{time.Date(2026, 3, 6, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC)},
		{time.Date(2026, 10, 23, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC)},
	}
	modes := []string{"running", "running", "running", "idle", "fault"}
	for mi, m := range []string{laM, deM, inM} {
		i := 0
		for _, r := range ranges {
			for at := r[0]; at.Before(r[1]); at = at.Add(15 * time.Minute) {
				hours := float64(at.Unix()) / 3600
				kw := 40 + 25*math.Sin(2*math.Pi*(hours/24+float64(mi)/3)) + float64(i%7)
				readings = append(readings, snapshotReading{at: at, machine: m, kw: kw, kwh: kw * 900 / 3600,
					units: int64(1 + i%5), mode: modes[i%len(modes)]})
				i++
			}
		}
	}
	shuffled := append([]snapshotReading(nil), readings...)
	rand.New(rand.NewPCG(12, 12)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for len(shuffled) > 0 {
		n := min(len(shuffled), 2000)
		batch := shuffled[:n]
		shuffled = shuffled[n:]
		energy := make([][]any, len(batch))
		production := make([][]any, len(batch))
		for i, r := range batch {
			energy[i] = []any{r.at, r.machine, r.kw, r.kwh}
			production[i] = []any{r.at, r.machine, r.units, r.mode}
		}
		if _, err := pool.CopyFrom(ctx, pgx.Identifier{"energy_readings"}, []string{"time", "machine_id", "power_kw", "energy_kwh"}, pgx.CopyFromRows(energy)); err != nil {
			t.Fatalf("copy energy readings: %v", err)
		}
		if _, err := pool.CopyFrom(ctx, pgx.Identifier{"production_data"}, []string{"time", "machine_id", "production_count", "operating_mode"}, pgx.CopyFromRows(production)); err != nil {
			t.Fatalf("copy production readings: %v", err)
		}
	}

	// Statistics, as autovacuum gathers them while a backfill runs: they
	// are what makes the plan cache prefer custom plans under 000011.
	exec(`ANALYZE`)

	var days []snapshotDay
	add := func(m string, loc *time.Location, dates ...string) {
		for _, d := range dates {
			days = append(days, snapshotDay{machine: m, day: d, loc: loc})
		}
	}
	kolkata := mustLoad("Asia/Kolkata")
	add(laM, losAngeles, "2026-03-07", "2026-03-08", "2026-03-09", "2026-03-10", "2026-10-31", "2026-11-01", "2026-11-02")
	add(deM, berlin, "2026-03-28", "2026-03-29", "2026-03-30", "2026-10-24", "2026-10-25", "2026-10-26")
	add(inM, kolkata, "2026-03-07", "2026-03-08", "2026-03-09", "2026-10-31", "2026-11-01")
	return readings, days
}

// snapshotAll snapshots every day on one new connection (one session, as a
// worker's connection runs many) with the session's plan_cache_mode set to
// mode, and returns the rows kpi_snapshot_day returned, as column → value
// maps.
func snapshotAll(t *testing.T, url, mode string, days []snapshotDay) []map[string]any {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `SELECT set_config('plan_cache_mode', $1, false)`, mode); err != nil {
		t.Fatal(err)
	}
	out := make([]map[string]any, 0, len(days))
	for _, d := range days {
		r, err := conn.Query(ctx, `SELECT `+snapshotCols+` FROM kpi_snapshot_day($1, $2::date)`, d.machine, d.day)
		if err != nil {
			t.Fatalf("snapshot %s of %s: %v", d.day, d.machine, err)
		}
		row, err := pgx.CollectExactlyOneRow(r, pgx.RowToMap)
		if err != nil {
			t.Fatalf("snapshot %s of %s: %v", d.day, d.machine, err)
		}
		out = append(out, row)
	}
	return out
}

// planCacheMode is analytics_all_kpis's own plan_cache_mode setting, "" when
// it has none.
func planCacheMode(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var mode string
	if err := pool.QueryRow(context.Background(), `
		SELECT coalesce((SELECT substr(c, length('plan_cache_mode=') + 1) FROM unnest(p.proconfig) c WHERE c LIKE 'plan_cache_mode=%'), '')
		FROM pg_proc p WHERE p.proname = 'analytics_all_kpis'`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	return mode
}

// TestKPISnapshotSameWithGenericPlan snapshots 18 machine-days — the DST
// days of Los Angeles and Berlin (23 and 25 hours) and the days around
// them, and days of a +05:30 factory whose local midnight falls mid-hour —
// with 000012 applied, checks them against the raw readings and against
// calculate_all_kpis over the same window, then migrates down to 000011
// and snapshots again, with custom plans (what the plan cache chose in the
// backfill) and with the generic plan: every column must be the same, up
// to the order in which a plan adds floats (see below).
func TestKPISnapshotSameWithGenericPlan(t *testing.T) {
	t.Parallel()
	url := testdb.URL(t)
	pool := testdb.Pool(t, url)
	version, _, err := migrations.Version(url)
	if err != nil {
		t.Fatal(err)
	}
	if version < 12 {
		t.Fatalf("migrated to %d, want at least 12", version)
	}
	if got := planCacheMode(t, pool); got != "force_generic_plan" {
		t.Fatalf("analytics_all_kpis plan_cache_mode = %q with 000012, want force_generic_plan", got)
	}
	readings, days := snapshotPlant(t, pool)
	// The session asks for custom plans, as the plan cache chose them in the
	// backfill; with 000012 the function's own setting must win.
	after := snapshotAll(t, url, "force_custom_plan", days)

	for i, d := range days {
		row, what := after[i], fmt.Sprintf("%s of %s", d.day, d.machine)
		date, err := time.ParseInLocation(time.DateOnly, d.day, d.loc)
		if err != nil {
			t.Fatal(err)
		}
		start, end := date, date.AddDate(0, 0, 1)
		// The expected totals, summed here from the readings written: the
		// readings of [local midnight, next local midnight).
		var kwh float64
		var units int64
		for _, r := range readings {
			if r.machine == d.machine && !r.at.Before(start) && r.at.Before(end) {
				kwh += r.kwh
				units += r.units
			}
		}
		expect(t, what, row, map[string]any{
			"period_start": start, "period_end": end,
			"time_period_hours":      end.Sub(start).Hours(), // 23 or 25 on the DST days
			"total_energy_kwh":       kwh,
			"total_production_units": float64(units),
		})
		// The same window through calculate_all_kpis (one statement, not the
		// snapshot function).
		want := one(t, pool, `SELECT * FROM calculate_all_kpis($1, $2, $3)`, d.machine, start, end)
		delete(want, "machine_id")
		delete(want, "machine_name")
		want["total_production_units"] = float64(want["total_production_units"].(int64))
		expect(t, what+" against calculate_all_kpis", row, want)
	}
	// The DST days are in the set: 23 and 25 hours both occur.
	hours := map[float64]int{}
	for _, row := range after {
		hours[row["time_period_hours"].(float64)]++
	}
	if hours[23] != 2 || hours[25] != 2 {
		t.Errorf("days by length in hours: %v, want two of 23 and two of 25", hours)
	}

	if err := migrations.Down(url, int(version)-11); err != nil {
		t.Fatalf("down to 000011: %v", err)
	}
	if got := planCacheMode(t, pool); got != "" {
		t.Fatalf("analytics_all_kpis plan_cache_mode = %q after down to 000011, want none", got)
	}
	// 000011 under the session's force_custom_plan: the query planned for
	// each call, with the window's bounds as constants, as it was in the
	// backfill. Text, dates and counts must be equal; sums of floats may
	// differ in their last bits, because a plan reads the hourly rollups in
	// its own order (a custom plan here takes a bitmap heap scan, in the
	// table's physical order, which the shuffled writes made unlike time
	// order; the generic one an index scan, in time order) and float
	// addition is not associative. 000011 itself differs in the same way
	// between its custom and its generic plan, which it switched between
	// after five calls of a session whenever the estimates favoured the
	// generic one (logged below). So floats must agree to 1e-12 relative
	// (a sum of n ≤ 100 terms of one sign is exact to about n × 2⁻⁵³ ≈
	// 1e-14), and with 000011's generic plan, bit for bit.
	before := snapshotAll(t, url, "force_custom_plan", days)
	beforeGeneric := snapshotAll(t, url, "force_generic_plan", days)
	same := func(a, b any) bool {
		fa, aok := a.(float64)
		fb, bok := b.(float64)
		if aok && bok {
			return math.Abs(fa-fb) <= 1e-12*math.Max(math.Abs(fa), math.Abs(fb))
		}
		return fmt.Sprintf("%#v", a) == fmt.Sprintf("%#v", b)
	}
	bits, bits11 := 0, 0
	for i, d := range days {
		for col, v := range before[i] {
			w := after[i][col]
			if !same(v, w) {
				t.Errorf("%s of %s: %s = %#v with 000011, %#v with 000012", d.day, d.machine, col, v, w)
			}
			if v != w {
				bits++
			}
			if v != beforeGeneric[i][col] {
				bits11++
			}
			// The generic plan of 000011 is the plan 000012 always uses:
			// equal bit for bit.
			if g := beforeGeneric[i][col]; fmt.Sprintf("%#v", g) != fmt.Sprintf("%#v", w) {
				t.Errorf("%s of %s: %s = %#v with 000011's generic plan, %#v with 000012", d.day, d.machine, col, g, w)
			}
		}
	}
	t.Logf("values of %d snapshots differing in their last bits: %d between 000011 (custom plans) and 000012; %d between 000011's custom and generic plans",
		len(days), bits, bits11)
	if err := migrations.Up(url); err != nil {
		t.Fatalf("up again: %v", err)
	}
	if got := planCacheMode(t, pool); got != "force_generic_plan" {
		t.Errorf("analytics_all_kpis plan_cache_mode = %q after up again, want force_generic_plan", got)
	}
}

// BenchmarkKPISnapshotDay times kpi_snapshot_day as the worker calls it
// (one machine-day a call, many calls on one connection) on a database
// filled like `enms-analytics simulate --days 10 --seed-plant`: the demo
// plant's seven machines, ten days of simulated 1-minute readings through
// the rollup triggers. The sub-benchmarks run the same calls with 000012
// (analytics_all_kpis always on its generic plan) and then, after migrating
// the same database down to 000011, with the plan cache's own choice.
// Metrics: ms/op, the mean of the timed calls, all on one connection that
// has already made its first call; first-call-ms, that first call of a new
// connection (PL/pgSQL compilation, catalog loading and planning, which
// every connection pays once); pool12-ms/op, the mean of 200 calls spread
// round robin over 12 new connections, as a backfill's snapshots spread
// over the worker's pool.
//
//	go test ./migrations/ -run XXX -bench BenchmarkKPISnapshotDay -benchtime 200x
func BenchmarkKPISnapshotDay(b *testing.B) {
	ctx := context.Background()
	url := testdb.URL(b)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	if err := simulator.SeedPlant(ctx, pool, simulator.DemoPlant); err != nil {
		b.Fatal(err)
	}
	machines, err := simulator.Machines(ctx, pool, nil)
	if err != nil {
		b.Fatal(err)
	}
	gen, err := simulator.New(simulator.Config{Seed: 1, IncidentRate: simulator.DefaultIncidentRate})
	if err != nil {
		b.Fatal(err)
	}
	from := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	to := from.AddDate(0, 0, 10)
	if _, err := simulator.Backfill(ctx, pool, gen, machines, simulator.BackfillOptions{From: from, To: to, Step: time.Minute}); err != nil {
		b.Fatal(err)
	}
	// Statistics, as autovacuum gathers them while a backfill runs. With
	// them (machine_id has 7 distinct values) the generic plan's estimate
	// for a raw edge is 1/7 × 0.5 % of the readings, and the plan cache of
	// 000011 keeps planning the query for every call.
	if _, err := pool.Exec(ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}
	// Every machine's local days 03-02..03-09, all inside the data (Los
	// Angeles is UTC-8/-7, Berlin UTC+1); 7 × 8 = 56 machine-days, called
	// round robin.
	type md struct{ machine, day string }
	var calls []md
	for d := from.AddDate(0, 0, 1); d.Before(to.AddDate(0, 0, -1)); d = d.AddDate(0, 0, 1) {
		for _, m := range machines {
			calls = append(calls, md{m.ID.String(), d.Format(time.DateOnly)})
		}
	}
	snapshot := func(b *testing.B, conn *pgx.Conn, c md) {
		var kwh float64
		if err := conn.QueryRow(ctx, `SELECT total_energy_kwh FROM kpi_snapshot_day($1, $2::date)`, c.machine, c.day).Scan(&kwh); err != nil {
			b.Fatal(err)
		}
	}
	connect := func(b *testing.B) *pgx.Conn {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close(ctx) })
		return conn
	}
	run := func(b *testing.B) {
		// As in a backfill: 200 snapshots over the 12 new connections of
		// a worker's pool (WORKER_CONCURRENCY=2: 2 × 2 + 8), round robin,
		// so each connection's first call and the next ones count.
		const poolCalls, poolConns = 200, 12
		conns := make([]*pgx.Conn, poolConns)
		for i := range conns {
			conns[i] = connect(b)
		}
		start := time.Now()
		for i := range poolCalls {
			snapshot(b, conns[i%poolConns], calls[i%len(calls)])
		}
		pool12 := time.Since(start)

		conn := connect(b)
		start = time.Now()
		snapshot(b, conn, calls[0])
		first := time.Since(start)
		i := 1
		for b.Loop() {
			snapshot(b, conn, calls[i%len(calls)])
			i++
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/op")
		b.ReportMetric(float64(first.Microseconds())/1000, "first-call-ms")
		b.ReportMetric(float64(pool12.Microseconds())/poolCalls/1000, "pool12-ms/op")
	}
	b.Run("migration=000012", run)
	b.Run("migration=000011", func(b *testing.B) {
		version, _, err := migrations.Version(url)
		if err != nil {
			b.Fatal(err)
		}
		if version > 11 {
			if err := migrations.Down(url, int(version)-11); err != nil {
				b.Fatal(err)
			}
		}
		run(b)
	})
}
