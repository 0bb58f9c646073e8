package anomaly

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/enms/enms-analytics/analytics"
	"github.com/enms/enms-analytics/baseline"
	"github.com/enms/enms-analytics/internal/testdb"
	"github.com/enms/enms-analytics/store"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// t0 is the first simulated hour, a Monday.
var t0 = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

// simHour is one simulated machine-hour, written straight into the rollups.
type simHour struct {
	hour      time.Time
	kwh       float64
	units     float64
	outdoor   float64
	cdd       float64
	tempAvg   float64
	tempMax   float64
	pressure  float64
	setpoint  float64
	vibration float64
	inMaint   bool
}

// incident is an injected fault with known start and length.
type incident struct {
	machine int
	kind    string
	start   time.Time
	hours   int
}

func (i incident) end() time.Time { return i.start.Add(time.Duration(i.hours) * time.Hour) }

// window is a maintenance window of a machine.
type window struct {
	machine    int
	start, end time.Time
}

// plant is a deterministic simulated plant: machines × days of hourly
// rollups, incidents and maintenance windows.
type plant struct {
	machines  int
	hours     int
	incidents []incident
	maint     []window
	data      [][]simHour // [machine][hour]
}

// Incident effects. Energy noise is N(0, 2²) kWh on a mean of about 60 kWh:
//   - air_leak: energy +30 % (≈ 9σ: opens at once);
//   - efficiency_loss: energy +6 % (≈ 1.8σ: only the CUSUM catches it;
//     Siegmund's ARL at μ = 1.8, k = 0.5, h = 8.38 is ≈ 7 h);
//   - heater_fault: energy −25 % (underconsumption, opens at once);
//   - bearing_temperature: hourly max machine temperature +12 °C (sd 0.8)
//     and vibration +1.5 mm/s (sd 0.1);
//   - pressure_drop: pressure 0.6 bar below its setpoint (sd 0.05), energy +3 %.
var incidentKinds = []string{"air_leak", "efficiency_loss", "heater_fault", "bearing_temperature", "pressure_drop"}

// newPlant simulates machines × days. With faults, each machine gets four
// incidents (days 10, 22, 34 and 46 plus a per-machine offset, 12 to 36
// hours long) and three machines a maintenance window.
func newPlant(machines, days int, seed uint64, faults bool) *plant {
	p := &plant{machines: machines, hours: days * 24}
	if faults {
		for m := range machines {
			for k := range 4 {
				start := t0.Add(time.Duration((10+12*k)*24+5*m+3) * time.Hour)
				p.incidents = append(p.incidents, incident{machine: m, kind: incidentKinds[(m+k)%len(incidentKinds)],
					start: start, hours: 12 + 8*((m+k)%4)})
			}
		}
		for _, w := range []struct{ m, day, hour, len int }{{0, 28, 6, 16}, {2, 40, 8, 24}, {4, 16, 20, 12}} {
			if w.m < machines {
				s := t0.Add(time.Duration(w.day*24+w.hour) * time.Hour)
				p.maint = append(p.maint, window{machine: w.m, start: s, end: s.Add(time.Duration(w.len) * time.Hour)})
			}
		}
	}
	rng := rand.New(rand.NewPCG(seed, 5))
	p.data = make([][]simHour, machines)
	for m := range machines {
		base := 15 + 3*float64(m)
		p.data[m] = make([]simHour, p.hours)
		for i := range p.hours {
			h := t0.Add(time.Duration(i) * time.Hour)
			weekend := h.Weekday() == time.Saturday || h.Weekday() == time.Sunday
			units := 50 + 30*math.Sin(2*math.Pi*float64(h.Hour())/24) + 10*rng.NormFloat64()
			if weekend {
				units *= 0.4
			}
			units = math.Max(0, math.Round(units))
			outdoor := 12 + 8*math.Sin(2*math.Pi*float64(h.Hour()-9)/24) + 4*math.Sin(2*math.Pi*float64(i)/(24*20)) + rng.NormFloat64()
			cdd := math.Max(0, outdoor-18)
			s := simHour{hour: h, units: units, outdoor: outdoor, cdd: cdd,
				kwh:      base + 0.6*units + 0.9*cdd + 2*rng.NormFloat64(),
				tempAvg:  45 + 0.05*units + 0.6*rng.NormFloat64(),
				tempMax:  52 + 0.02*units + 0.8*rng.NormFloat64(),
				pressure: 7 + 0.05*rng.NormFloat64(), setpoint: 7,
				vibration: 2 + 0.1*rng.NormFloat64()}
			p.data[m][i] = s
		}
	}
	for _, inc := range p.incidents {
		for i := range p.hours {
			s := &p.data[inc.machine][i]
			if s.hour.Before(inc.start) || !s.hour.Before(inc.end()) {
				continue
			}
			switch inc.kind {
			case "air_leak":
				s.kwh *= 1.30
			case "efficiency_loss":
				s.kwh *= 1.06
			case "heater_fault":
				s.kwh *= 0.75
			case "bearing_temperature":
				s.tempMax += 12
				s.tempAvg += 4
				s.vibration += 1.5
			case "pressure_drop":
				s.pressure -= 0.6
				s.kwh *= 1.03
			}
		}
	}
	for _, w := range p.maint {
		for i := range p.hours {
			s := &p.data[w.machine][i]
			switch {
			case !s.hour.Before(w.start.Truncate(time.Hour)) && s.hour.Before(w.end):
				// Stopped: a little standby energy, nothing produced, cold.
				s.kwh, s.units, s.tempAvg, s.tempMax, s.pressure, s.vibration = 2, 0, 20, 22, 0.5, 0.1
				s.inMaint = true
			case !s.hour.Before(w.end) && s.hour.Before(w.end.Add(2*time.Hour)):
				// Restart: heating up and refilling draws 40 % more for two
				// hours — the warm-up that must not be flagged.
				s.kwh *= 1.4
			}
		}
	}
	return p
}

// bundle is one test's database, store, model and service.
type bundle struct {
	pool     *pgxpool.Pool
	st       *store.Store
	model    *testModel
	svc      *Service
	machines []string
}

func setup(t testing.TB, p *plant, cfg func(*Config)) *bundle {
	t.Helper()
	pool := testdb.New(t)
	b := &bundle{pool: pool, st: store.New(pool)}
	b.model = newTestModel(p, b)
	c := Config{Store: b.st, Model: b.model}
	if cfg != nil {
		cfg(&c)
	}
	svc, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	b.svc = svc
	b.load(t, p)
	return b
}

func (b *bundle) load(t testing.TB, p *plant) {
	t.Helper()
	ctx := context.Background()
	var factory string
	if err := b.pool.QueryRow(ctx, `INSERT INTO factories (name) VALUES ('Sim plant') RETURNING id::text`).Scan(&factory); err != nil {
		t.Fatal(err)
	}
	for m := range p.machines {
		var id string
		// Fixed ids: the forests' seeds derive from them, so runs repeat exactly.
		if err := b.pool.QueryRow(ctx, `INSERT INTO machines (id, factory_id, name, type, data_interval_seconds)
			VALUES ($3, $1, $2, 'compressor', 60) RETURNING id::text`, factory, fmt.Sprintf("M%d", m),
			fmt.Sprintf("00000000-0000-4000-8000-%012d", m+1)).Scan(&id); err != nil {
			t.Fatal(err)
		}
		b.machines = append(b.machines, id)
		b.copyHours(t, id, p.data[m])
		b.setStatus(t, id, "running", true, t0)
	}
	for _, w := range p.maint {
		b.setStatus(t, b.machines[w.machine], "maintenance", false, w.start)
		b.setStatus(t, b.machines[w.machine], "running", true, w.end)
	}
}

func (b *bundle) copyHours(t testing.TB, id string, hs []simHour) {
	t.Helper()
	ctx := context.Background()
	copyRows := func(table string, cols []string, f func(s simHour) []any) {
		rows := make([][]any, len(hs))
		for i, s := range hs {
			rows[i] = f(s)
		}
		if _, err := b.pool.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromRows(rows)); err != nil {
			t.Fatalf("copy %s: %v", table, err)
		}
	}
	copyRows("energy_readings_1hour", []string{"bucket", "machine_id", "reading_count", "sum_power_kw", "total_energy_kwh"},
		func(s simHour) []any { return []any{s.hour, id, 60, 60 * s.kwh, s.kwh} })
	copyRows("production_data_1hour", []string{"bucket", "machine_id", "reading_count", "total_production_count", "running_seconds"},
		func(s simHour) []any { return []any{s.hour, id, 60, int64(s.units), 3600.0} })
	copyRows("environmental_data_1hour", []string{"bucket", "machine_id", "reading_count",
		"sum_outdoor_temp_c", "outdoor_temp_count", "sum_machine_temp_c", "machine_temp_count", "max_machine_temp_c",
		"sum_pressure_bar", "pressure_count", "sum_pressure_setpoint_bar", "pressure_setpoint_count",
		"sum_vibration_mm_s", "vibration_count", "max_vibration_mm_s"},
		func(s simHour) []any {
			return []any{s.hour, id, 1, s.outdoor, 1, s.tempAvg, 1, s.tempMax, s.pressure, 1, s.setpoint, 1,
				s.vibration, 1, s.vibration}
		})
}

// setStatus records a status at a past time through machine_status (its
// trigger appends machine_status_history).
func (b *bundle) setStatus(t testing.TB, id, mode string, running bool, at time.Time) {
	t.Helper()
	_, err := b.pool.Exec(context.Background(), `
		INSERT INTO machine_status (machine_id, is_running, current_mode, last_updated) VALUES ($1, $2, $3, $4)
		ON CONFLICT (machine_id) DO UPDATE SET is_running = excluded.is_running,
			current_mode = excluded.current_mode, last_updated = excluded.last_updated`, id, running, mode, at)
	if err != nil {
		t.Fatal(err)
	}
}

// testModel stands in for the rolling baseline: an ordinary least-squares
// model of kWh on production and cooling degree-hours (the simulation's own
// drivers), learned hour by hour from the hours scoring lets it learn.
type testModel struct {
	mu    sync.Mutex
	b     *bundle
	p     *plant
	stats map[string]*analytics.Stats
}

func newTestModel(p *plant, b *bundle) *testModel {
	return &testModel{b: b, p: p, stats: map[string]*analytics.Stats{}}
}

func (m *testModel) row(machineID string, hour time.Time) (x []float64, y float64) {
	for i, id := range m.b.machines {
		if id == machineID {
			s := m.p.data[i][int(hour.Sub(t0)/time.Hour)]
			return []float64{s.units, s.cdd}, s.kwh
		}
	}
	panic("unknown machine " + machineID)
}

func (m *testModel) PredictHour(_ context.Context, machineID string, hour time.Time) (Prediction, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.stats[machineID]
	if st == nil || st.N() < 10 {
		return Prediction{Reason: "no_model"}, nil
	}
	fit, err := st.Fit()
	if err != nil {
		return Prediction{Reason: "no_model"}, nil
	}
	x, _ := m.row(machineID, hour)
	yhat, se := fit.Predict(x)
	return Prediction{OK: true, Expected: yhat, StdErr: se, ModelHours: st.N(), ModelVersion: "test-ols"}, nil
}

func (m *testModel) learn(machineID string, hour time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.stats[machineID]
	if st == nil {
		st = analytics.NewStats([]string{"production_count", "cdd"})
		m.stats[machineID] = st
	}
	x, y := m.row(machineID, hour)
	st.Add(x, y)
}

// stream closes every hour of every machine in order, as the worker would:
// score the hour, then let the model learn it when scoring allows. Machines
// run in parallel, hours of one machine in order.
func (b *bundle) stream(t testing.TB, p *plant) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, len(b.machines))
	for _, id := range b.machines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range p.hours {
				h := t0.Add(time.Duration(i) * time.Hour)
				hr, _, err := b.svc.HourClosed(ctx, id, h)
				if err != nil {
					errs <- err
					return
				}
				if hr.Learn && hr.Status != StatusSuppressed {
					b.model.learn(id, h)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func (b *bundle) episodes(t testing.TB) []store.Anomaly {
	t.Helper()
	var all []store.Anomaly
	for _, id := range b.machines {
		eps, err := b.st.MachineEpisodes(context.Background(), id, t0, t0.AddDate(1, 0, 0))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, eps...)
	}
	return all
}

func (b *bundle) machineIndex(id string) int {
	for i, m := range b.machines {
		if m == id {
			return i
		}
	}
	return -1
}

// overlaps reports whether episode a overlaps [start, end).
func overlaps(a store.Anomaly, start, end time.Time) bool {
	last := a.DetectedAt
	if a.LastHour != nil {
		last = *a.LastHour
	}
	return a.DetectedAt.Before(end) && last.Add(time.Hour).After(start)
}

// TestSimulatedPlant is the acceptance test: 5 machines, 60 days,
// 20 incidents of known start and length, 3 maintenance windows, default
// settings. Episode recall ≥ 0.9, precision ≥ 0.85, nothing inside
// maintenance, and /anomaly/detect over everything twice adds no row.
func TestSimulatedPlant(t *testing.T) {
	t.Parallel()
	p := newPlant(5, 60, 2026, true)
	b := setup(t, p, nil)
	began := time.Now()
	b.stream(t, p)
	t.Logf("streamed %d machine-hours in %v", p.machines*p.hours, time.Since(began).Round(time.Millisecond))
	eps := b.episodes(t)

	found := 0
	for _, inc := range p.incidents {
		hit := false
		for _, e := range eps {
			if b.machineIndex(e.MachineID) == inc.machine && overlaps(e, inc.start, inc.end()) {
				hit = true
			}
		}
		if hit {
			found++
		} else {
			t.Logf("missed: %s on M%d from %s for %d h", inc.kind, inc.machine, inc.start.Format(time.RFC3339), inc.hours)
		}
	}
	truePos := 0
	for _, e := range eps {
		m := b.machineIndex(e.MachineID)
		ok := false
		for _, inc := range p.incidents {
			if inc.machine == m && overlaps(e, inc.start, inc.end()) {
				ok = true
			}
		}
		if ok {
			truePos++
		} else {
			t.Logf("false episode: %s on M%d at %s, %d h, severity %s, z %.2f, method %s", e.AnomalyType, m,
				e.DetectedAt.Format(time.RFC3339), deref(e.HourCount), e.Severity, derefF(e.DeviationStdDev), derefS(e.DetectionMethod))
		}
		for _, w := range p.maint {
			if w.machine == m && overlaps(e, w.start.Truncate(time.Hour), w.end) {
				t.Errorf("episode inside maintenance: %s on M%d at %s", e.AnomalyType, m, e.DetectedAt)
			}
		}
	}
	recall := float64(found) / float64(len(p.incidents))
	precision := float64(truePos) / float64(len(eps))
	var scored int
	if err := b.pool.QueryRow(context.Background(), `SELECT count(*) FROM anomaly_hours WHERE status IN ('normal', 'anomalous')`).Scan(&scored); err != nil {
		t.Fatal(err)
	}
	t.Logf("false episodes: %d in %d scored hours = %.5f per hour (configured 0.0005)",
		len(eps)-truePos, scored, float64(len(eps)-truePos)/float64(scored))
	t.Logf("%d incidents, %d found (recall %.3f); %d episodes, %d true (precision %.3f)",
		len(p.incidents), found, recall, len(eps), truePos, precision)
	if recall < 0.9 || precision < 0.85 {
		t.Errorf("recall %.3f (want ≥ 0.9), precision %.3f (want ≥ 0.85)", recall, precision)
	}

	// Hours inside maintenance and the two warm-up hours are suppressed.
	var inMaint, suppressed int
	for _, w := range p.maint {
		err := b.pool.QueryRow(context.Background(), `
			SELECT count(*), count(*) FILTER (WHERE status = 'suppressed') FROM anomaly_hours
			 WHERE machine_id = $1 AND bucket >= $2 AND bucket < $3`,
			b.machines[w.machine], w.start.Truncate(time.Hour), w.end.Add(2*time.Hour)).Scan(&inMaint, &suppressed)
		if err != nil {
			t.Fatal(err)
		}
		if inMaint == 0 || suppressed != inMaint {
			t.Errorf("maintenance of M%d: %d of %d hours suppressed", w.machine, suppressed, inMaint)
		}
	}

	// Re-running detect twice over days 9 to 30 (incidents of every
	// machine, two maintenance windows) creates no rows and keeps every
	// episode as it was.
	before := b.count(t)
	var lastWrite time.Time
	if err := b.pool.QueryRow(context.Background(), `SELECT max(scored_at) FROM anomaly_hours`).Scan(&lastWrite); err != nil {
		t.Fatal(err)
	}
	began = time.Now()
	for range 2 {
		for _, id := range b.machines {
			if _, _, err := b.svc.Detect(context.Background(), id, t0.AddDate(0, 0, 9), t0.AddDate(0, 0, 30)); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("detect twice over 21 days of 5 machines: %v", time.Since(began).Round(time.Millisecond))
	// Replaying reproduced every hour bit for bit — residuals, robust
	// statistics, forest scores (forests retrained from the stored learning
	// hours with the same seeds), detector state — so no record was
	// rewritten.
	var rewritten int
	if err := b.pool.QueryRow(context.Background(), `SELECT count(*) FROM anomaly_hours WHERE scored_at > $1`, lastWrite).Scan(&rewritten); err != nil {
		t.Fatal(err)
	}
	if rewritten != 0 {
		t.Errorf("detect rewrote %d hour records that should have come out identical", rewritten)
	}
	after := b.episodes(t)
	if n := b.count(t); n != before || len(after) != len(eps) {
		t.Fatalf("detect twice: %d rows before, %d after", before, n)
	}
	for i := range eps {
		if eps[i].ID != after[i].ID || !eps[i].LastHour.Equal(*after[i].LastHour) || *eps[i].HourCount != *after[i].HourCount {
			t.Errorf("episode %s changed on re-detect: %+v → %+v", eps[i].ID, eps[i], after[i])
		}
	}
}

func (b *bundle) count(t testing.TB) int {
	var n int
	if err := b.pool.QueryRow(context.Background(), `SELECT count(*) FROM anomalies`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

func derefF(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

func derefS(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// TestFaultFreeAlarmRate: on a fault-free plant (5 machines, 60 days, no
// incident, no maintenance) the rate of episodes per scored hour is within
// 2× of the configured rate. The rate is set to 0.005 here so that the
// expected count is large enough to tell: about 6,350 scored hours
// (5 × (1,440 − 170 unscored warm-up hours)) × 0.005 ≈ 32 episodes, and a
// Poisson count with mean 32 falls outside [16, 64] with probability ≈ 0.2 %.
func TestFaultFreeAlarmRate(t *testing.T) {
	t.Parallel()
	const rate = 0.005
	p := newPlant(5, 60, 77, false)
	b := setup(t, p, func(c *Config) { c.Contamination = rate })
	b.stream(t, p)
	var scored, episodes int
	if err := b.pool.QueryRow(context.Background(), `
		SELECT (SELECT count(*) FROM anomaly_hours WHERE status IN ('normal', 'anomalous')),
		       (SELECT count(*) FROM anomalies)`).Scan(&scored, &episodes); err != nil {
		t.Fatal(err)
	}
	got := float64(episodes) / float64(scored)
	byType := map[string]int{}
	for _, e := range b.episodes(t) {
		byType[e.AnomalyType]++
	}
	t.Logf("%d episodes in %d scored hours: %.5f per hour (configured %v, ratio %.2f); by type %v",
		episodes, scored, got, rate, got/rate, byType)
	if got < rate/2 || got > 2*rate {
		t.Errorf("alarm rate %.5f per scored hour is not within 2× of %v", got, rate)
	}
}

// TestPlantWithRollingBaseline runs a smaller plant (2 machines, 40 days,
// 6 incidents, 1 maintenance window) against the real rolling model of the
// baseline service (drivers chosen by coverage), wired as the worker wires
// it: score the hour, then Refresh lets the model learn it only when
// scoring allows. Every incident is found and nothing is flagged inside
// maintenance.
func TestPlantWithRollingBaseline(t *testing.T) {
	t.Parallel()
	p := newPlant(2, 40, 11, true)
	var incidents []incident
	for _, inc := range p.incidents {
		if inc.end().Before(t0.AddDate(0, 0, 40)) {
			incidents = append(incidents, inc)
		}
	}
	p.incidents = incidents
	var bl *baseline.Service
	b := setup(t, p, func(c *Config) {
		bl = baseline.New(baseline.DefaultConfig(c.Store))
		c.Model = BaselinePredictor(bl)
	})
	ctx := context.Background()
	for _, id := range b.machines {
		for i := range p.hours {
			h := t0.Add(time.Duration(i) * time.Hour)
			hr, _, err := b.svc.HourClosed(ctx, id, h)
			if err != nil {
				t.Fatal(err)
			}
			if err := bl.Refresh(ctx, id, h, hr.Learn); err != nil {
				t.Fatal(err)
			}
		}
	}
	eps := b.episodes(t)
	found, truePos := 0, 0
	for _, inc := range p.incidents {
		for _, e := range eps {
			if b.machineIndex(e.MachineID) == inc.machine && overlaps(e, inc.start, inc.end()) {
				found++
				break
			}
		}
	}
	for _, e := range eps {
		m := b.machineIndex(e.MachineID)
		hit := false
		for _, inc := range p.incidents {
			if inc.machine == m && overlaps(e, inc.start, inc.end()) {
				hit = true
			}
		}
		if hit {
			truePos++
		} else {
			t.Logf("false episode: %s on M%d at %s, %d h, z %.2f, method %s, metadata %s", e.AnomalyType, m,
				e.DetectedAt.Format(time.RFC3339), deref(e.HourCount), derefF(e.DeviationStdDev), derefS(e.DetectionMethod), e.Metadata)
		}
		for _, w := range p.maint {
			if w.machine == m && overlaps(e, w.start.Truncate(time.Hour), w.end) {
				t.Errorf("episode inside maintenance: %s on M%d at %s", e.AnomalyType, m, e.DetectedAt)
			}
		}
	}
	var unscored int
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM anomaly_hours WHERE status = 'unscored'`).Scan(&unscored); err != nil {
		t.Fatal(err)
	}
	t.Logf("rolling baseline: %d incidents, %d found; %d episodes, %d true; %d hours unscored", len(p.incidents), found, len(eps), truePos, unscored)
	// Every incident is found. Precision is logged, not asserted: about
	// 1,580 scored hours hold 0.8 false episodes in expectation at the
	// default rate, too few to judge 6 incidents' precision by (the 5-machine
	// test above does that).
	if found != len(p.incidents) {
		t.Errorf("found %d of %d incidents", found, len(p.incidents))
	}
}
