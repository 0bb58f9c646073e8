package simulator

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/enms/enms-analytics/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// seeded returns a fresh database with the demo plant and its machines.
func seeded(t *testing.T, names ...string) (*pgxpool.Pool, []Machine) {
	t.Helper()
	pool := testdb.New(t)
	ctx := context.Background()
	if err := SeedPlant(ctx, pool, DemoPlant); err != nil {
		t.Fatal(err)
	}
	ms, err := Machines(ctx, pool, names)
	if err != nil {
		t.Fatal(err)
	}
	return pool, ms
}

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// TestSeedPlantMatchesSpecAndIsIdempotent loads the demo plant twice and
// checks every number against the EnMS demo plant (issue 2, item 5).
func TestSeedPlantMatchesSpecAndIsIdempotent(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	ctx := context.Background()
	// An EnMS database may already hold the demo factory under another id.
	var existing string
	if err := pool.QueryRow(ctx, `INSERT INTO factories (name, timezone) VALUES ('Demo Manufacturing Plant', 'UTC') RETURNING id::text`).Scan(&existing); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := SeedPlant(ctx, pool, DemoPlant); err != nil {
			t.Fatal(err)
		}
	}
	for table, want := range map[string]int64{"factories": 2, "machines": 7, "energy_tariffs": 3, "carbon_factors": 3} {
		if n := count(t, pool, `SELECT count(*) FROM `+table); n != want {
			t.Errorf("%s: %d rows after two loads, want %d", table, n, want)
		}
	}
	var id, tz, region string
	if err := pool.QueryRow(ctx, `SELECT id::text, timezone, metadata->>'grid_region' FROM factories WHERE name = 'Demo Manufacturing Plant'`).Scan(&id, &tz, &region); err != nil {
		t.Fatal(err)
	}
	if id != existing || tz != "America/Los_Angeles" || region != "US-California" {
		t.Errorf("Demo Manufacturing Plant: id %s (existing %s), %s, %s", id, existing, tz, region)
	}
	if err := pool.QueryRow(ctx, `SELECT timezone, metadata->>'grid_region' FROM factories WHERE name = 'European Production Facility'`).Scan(&tz, &region); err != nil || tz != "Europe/Berlin" || region != "Germany" {
		t.Errorf("European Production Facility: %s, %s, %v", tz, region, err)
	}

	// Machines: name, factory, type, rated kW, interval s — the spec table.
	want := []struct {
		name, factory, typ string
		kw                 float64
		interval           int
	}{
		{"Compressor-1", "Demo Manufacturing Plant", "compressor", 55, 1},
		{"Compressor-EU-1", "European Production Facility", "compressor", 90, 1},
		{"Conveyor-A", "Demo Manufacturing Plant", "motor", 22, 10},
		{"HVAC-EU-North", "European Production Facility", "hvac", 200, 10},
		{"HVAC-Main", "Demo Manufacturing Plant", "hvac", 150, 10},
		{"Hydraulic-Pump-1", "Demo Manufacturing Plant", "pump", 45, 30},
		{"Injection-Molding-1", "Demo Manufacturing Plant", "injection_molding", 120, 30},
	}
	rows, err := pool.Query(ctx, `SELECT m.name, f.name, m.type::text, m.rated_power_kw, m.data_interval_seconds
		FROM machines m JOIN factories f ON f.id = m.factory_id ORDER BY m.name`)
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for rows.Next() {
		var name, factory, typ string
		var kw float64
		var interval int
		if err := rows.Scan(&name, &factory, &typ, &kw, &interval); err != nil {
			t.Fatal(err)
		}
		if i >= len(want) || name != want[i].name || factory != want[i].factory || typ != want[i].typ || kw != want[i].kw || interval != want[i].interval {
			t.Errorf("machine %d: %s %s %s %v kW %d s", i, name, factory, typ, kw, interval)
		}
		i++
	}
	if rows.Err() != nil || i != len(want) {
		t.Errorf("%d machines, %v", i, rows.Err())
	}

	// Tariffs: rate, currency, time-of-use window and days.
	type tariff struct {
		factory  string
		rate     float64
		currency string
		tou      bool
		start    *int32
		end      *int32
		days     []int32
	}
	rows, err = pool.Query(ctx, `SELECT f.name, t.rate_per_kwh, t.currency, t.is_time_of_use, t.start_hour, t.end_hour, t.applicable_days
		FROM energy_tariffs t JOIN factories f ON f.id = t.factory_id WHERE t.is_active ORDER BY t.rate_per_kwh`)
	if err != nil {
		t.Fatal(err)
	}
	var got []tariff
	for rows.Next() {
		var x tariff
		if err := rows.Scan(&x.factory, &x.rate, &x.currency, &x.tou, &x.start, &x.end, &x.days); err != nil {
			t.Fatal(err)
		}
		got = append(got, x)
	}
	h := func(v int32) *int32 { return &v }
	wantT := []tariff{
		{"Demo Manufacturing Plant", 0.10, "USD", true, h(21), h(9), nil},
		{"European Production Facility", 0.18, "EUR", false, nil, nil, nil},
		{"Demo Manufacturing Plant", 0.25, "USD", true, h(9), h(21), []int32{1, 2, 3, 4, 5}},
	}
	eq := func(a, b *int32) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
	if len(got) != len(wantT) {
		t.Fatalf("tariffs: %+v", got)
	}
	for i, w := range wantT {
		g := got[i]
		if g.factory != w.factory || g.rate != w.rate || g.currency != w.currency || g.tou != w.tou || !eq(g.start, w.start) || !eq(g.end, w.end) || !slices.Equal(g.days, w.days) {
			t.Errorf("tariff %d: got %+v, want %+v", i, g, w)
		}
	}
	for region, f := range map[string]float64{"US-California": 0.22, "Germany": 0.35, "default": 0.45} {
		var got float64
		if err := pool.QueryRow(ctx, `SELECT emission_factor_kg_co2_per_kwh FROM carbon_factors WHERE region = $1 AND is_active`, region).Scan(&got); err != nil || got != f {
			t.Errorf("carbon factor %s: %v (%v), want %v", region, got, err, f)
		}
	}
}

// TestBackfillWritesWhatTheGeneratorProduces backfills two days of the demo
// plant and compares the database with the generator: row counts per
// machine and table, energy, labels, and the final machine status. A rerun
// writes nothing; a backfill of a longer period fills only the gap.
func TestBackfillWritesWhatTheGeneratorProduces(t *testing.T) {
	t.Parallel()
	pool, ms := seeded(t, DemoPlant.Names()...)
	ctx := context.Background()
	g := newGen(t, 9, 0.5)
	from := monday.Add(-24 * time.Hour)
	mid := monday.Add(10*time.Hour + 30*time.Minute)
	to := monday.Add(24 * time.Hour)
	step := 15 * time.Minute
	res, err := Backfill(ctx, pool, g, ms, BackfillOptions{From: from, To: mid, Step: step})
	if err != nil {
		t.Fatal(err)
	}
	// 34.5 h at 15 min = 138 readings per machine, 7 machines, 3 rows each.
	if res.Readings != 138*7 || res.Rows != 3*138*7 {
		t.Errorf("first part: %d readings, %d rows; want %d and %d", res.Readings, res.Rows, 138*7, 3*138*7)
	}
	res, err = Backfill(ctx, pool, g, ms, BackfillOptions{From: from, To: to, Step: step, Writers: 3})
	if err != nil {
		t.Fatal(err)
	}
	// The rest: 48 h − 34.5 h = 13.5 h = 54 readings per machine.
	if res.Readings != 54*7 {
		t.Errorf("gap: %d readings, want %d", res.Readings, 54*7)
	}
	res, err = Backfill(ctx, pool, g, ms, BackfillOptions{From: from, To: to, Step: step})
	if err != nil || res.Rows != 0 || res.Machines != 0 {
		t.Errorf("rerun wrote %d rows for %d machines (%v); want nothing", res.Rows, res.Machines, err)
	}

	want := generate(t, g, ms, from, to, step)
	for _, m := range ms {
		var n int64
		var kwh float64
		for _, r := range want.Readings {
			if r.MachineID == m.ID {
				n++
				kwh += r.EnergyKWh
			}
		}
		for _, table := range []string{"energy_readings", "production_data", "environmental_data"} {
			if got := count(t, pool, `SELECT count(*) FROM `+table+` WHERE machine_id = $1`, pgUUID(m.ID)); got != n {
				t.Errorf("%s %s: %d rows, generator made %d", m.Name, table, got, n)
			}
		}
		var got float64
		if err := pool.QueryRow(ctx, `SELECT sum(energy_kwh) FROM energy_readings WHERE machine_id = $1`, pgUUID(m.ID)).Scan(&got); err != nil || math.Abs(got-kwh) > 1e-9*kwh {
			t.Errorf("%s: %.6f kWh stored, generator made %.6f (%v)", m.Name, got, kwh, err)
		}
	}

	labels := map[Incident]bool{}
	for _, inc := range want.Incidents {
		labels[inc] = true
	}
	if n := count(t, pool, `SELECT count(*) FROM simulator_labels`); n != int64(len(labels)) || n == 0 {
		t.Errorf("%d labels stored, generator injected %d incidents", n, len(labels))
	}
	for inc := range labels {
		if count(t, pool, `SELECT count(*) FROM simulator_labels WHERE machine_id = $1 AND incident_type = $2 AND start_time = $3 AND end_time = $4 AND magnitude = $5 AND seed = 9`,
			pgUUID(inc.MachineID), string(inc.Type), inc.Start, inc.End, inc.Magnitude) != 1 {
			t.Errorf("incident %+v not labelled", inc)
		}
	}

	// machine_status holds each machine's mode at the end and its last step.
	last := map[UUID]Transition{}
	for _, tr := range want.Transitions {
		last[tr.MachineID] = tr
	}
	for _, m := range ms {
		var mode string
		var running bool
		var updated time.Time
		if err := pool.QueryRow(ctx, `SELECT current_mode::text, is_running, last_updated FROM machine_status WHERE machine_id = $1`, pgUUID(m.ID)).Scan(&mode, &running, &updated); err != nil {
			t.Fatal(err)
		}
		if mode != string(last[m.ID].Mode) || running != (mode == "running") || !updated.Equal(to.Add(-step)) {
			t.Errorf("%s: status %s running=%v at %v; want %s at %v", m.Name, mode, running, updated, last[m.ID].Mode, to.Add(-step))
		}
	}
	// Every production row says how long it covers: the 15-minute step.
	if n := count(t, pool, `SELECT count(*) FROM production_data WHERE (metadata->>'interval_seconds')::int <> 900`); n != 0 {
		t.Errorf("%d production rows do not carry interval_seconds = 900", n)
	}
	// Material moisture reaches the production metadata of the machines
	// that process material (conveyor, moulding).
	if n := count(t, pool, `SELECT count(*) FROM production_data WHERE (metadata->>'material_moisture')::float8 > 0`); n != 2*192 {
		t.Errorf("%d production rows carry material_moisture, want 2 machines × 192", n)
	}
}

// TestLiveWritesAsSimulatedTimePasses runs live against a fake wall clock
// that advances ten minutes per reading of it, at speed 6 (an hour of plant
// per call), until two simulated hours are written.
func TestLiveWritesAsSimulatedTimePasses(t *testing.T) {
	t.Parallel()
	pool, ms := seeded(t, "Conveyor-A", "Hydraulic-Pump-1")
	g := newGen(t, 4, 0)
	start := monday.Add(8 * time.Hour)
	calls := 0
	now := func() time.Time { calls++; return start.Add(time.Duration(calls) * 10 * time.Minute) }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	written := make(chan time.Time, 16)
	done := make(chan error, 1)
	go func() {
		done <- Live(ctx, pool, g, ms, LiveOptions{Start: start, Speed: 6, Now: now, Every: time.Millisecond,
			Written: func(sim time.Time, _ int64) { written <- sim }})
	}()
	var upTo time.Time
	for upTo.Before(start.Add(2 * time.Hour)) {
		select {
		case upTo = <-written:
		case err := <-done:
			t.Fatalf("live stopped: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("live wrote nothing for 30 s")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("live returned %v after cancel; want nil", err)
	}
	// The database holds exactly what the generator makes from start at
	// each machine's interval (10 s, 30 s) up to its last write.
	for _, m := range ms {
		var last time.Time
		if err := pool.QueryRow(context.Background(), `SELECT max(time) FROM energy_readings WHERE machine_id = $1`, pgUUID(m.ID)).Scan(&last); err != nil {
			t.Fatal(err)
		}
		want := generate(t, g, []Machine{m}, start, last.Add(m.Interval), m.Interval)
		var kwh float64
		for _, r := range want.Readings {
			kwh += r.EnergyKWh
		}
		var n int64
		var got float64
		err := pool.QueryRow(context.Background(), `SELECT count(*), coalesce(sum(energy_kwh), 0) FROM energy_readings WHERE machine_id = $1`, pgUUID(m.ID)).Scan(&n, &got)
		if err != nil || n != int64(len(want.Readings)) || math.Abs(got-kwh) > 1e-9*kwh {
			t.Errorf("%s: %d readings, %.4f kWh in the database; generator: %d, %.4f (%v)", m.Name, n, got, len(want.Readings), kwh, err)
		}
	}
}
