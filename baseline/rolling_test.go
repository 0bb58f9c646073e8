package baseline

import (
	"bytes"
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/enms/enms-analytics/analytics"
	"github.com/enms/enms-analytics/internal/testdb"
	"github.com/enms/enms-analytics/store"
)

func relErr(got, want float64) float64 { return math.Abs(got-want) / math.Max(math.Abs(want), 1e-300) }

// trainActive publishes an active baseline with drivers over [t0, end) by
// calling the trainer directly (no worker) and returns its id.
func (b *bundle) trainActive(t *testing.T, m string, drivers []string, end time.Time) string {
	t.Helper()
	ctx := context.Background()
	f, err := b.svc.fitRequest(ctx, store.TrainRequest{MachineID: m, Drivers: drivers, TrainingStart: ptr(t0), TrainingEnd: &end})
	if err != nil {
		t.Fatal(err)
	}
	if !f.report.Validity.Valid {
		t.Fatalf("setup baseline not valid: %v", f.report.Validity.Reasons())
	}
	pub, err := b.svc.publish(ctx, nil, f, f.metadata("test"), "test")
	if err != nil {
		t.Fatal(err)
	}
	return pub.ID
}

// batchFit fits drivers over the usable hours of [start, end) from scratch.
func (b *bundle) batchFit(t *testing.T, m string, drivers []string, start, end time.Time) *analytics.Model {
	t.Helper()
	f, err := b.svc.fitRequest(context.Background(), store.TrainRequest{MachineID: m, Drivers: drivers,
		TrainingStart: &start, TrainingEnd: &end})
	if err != nil {
		t.Fatal(err)
	}
	return f.model
}

func (b *bundle) rollingModel(t *testing.T, m string) (*rolling, *analytics.Model) {
	t.Helper()
	st, err := b.st.ReadRollingState(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeState(st)
	if err != nil {
		t.Fatal(err)
	}
	model, err := r.stats.Fit()
	if err != nil {
		t.Fatal(err)
	}
	return r, model
}

func sameModel(t *testing.T, what string, got, want *analytics.Model, tol float64) {
	t.Helper()
	if got.N != want.N {
		t.Fatalf("%s: n = %d, batch n = %d", what, got.N, want.N)
	}
	if e := relErr(got.Intercept, want.Intercept); e > tol {
		t.Errorf("%s: intercept %v vs batch %v (rel %g)", what, got.Intercept, want.Intercept, e)
	}
	for j := range want.Coef {
		if e := relErr(got.Coef[j], want.Coef[j]); e > tol {
			t.Errorf("%s: %s %v vs batch %v (rel %g)", what, want.Columns[j], got.Coef[j], want.Coef[j], e)
		}
	}
	if e := relErr(got.Sigma, want.Sigma); e > tol {
		t.Errorf("%s: sigma %v vs batch %v", what, got.Sigma, want.Sigma)
	}
}

// TestRollingFollowsTheWindow closes 21 days of hours one by one into a
// 7-day rolling model with the active baseline's drivers, a maintenance day
// inside the final window, and a late revision: the rolling model equals a
// from-scratch fit over the window's usable hours (1e-8 relative), and
// scoring an hour before it is added predicts the simulated truth.
func TestRollingFollowsTheWindow(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.WindowDays = 7; c.MinSamples = 100; c.PublishInterval = 1000 * time.Hour })
	ctx := context.Background()
	m := b.machine(t, "rolling")
	const days = 21
	rows := knownTruth(days*24, 4)
	b.insertHours(t, m, rows)
	b.setStatus(t, m, "running", true, t0.Add(-time.Hour))
	b.setStatus(t, m, "maintenance", false, t0.Add(17*24*time.Hour))
	b.setStatus(t, m, "running", true, t0.Add(18*24*time.Hour))
	drivers := []string{"production_count", "cdd"}
	active := b.trainActive(t, m, drivers, t0.Add(7*24*time.Hour))

	var worst float64
	for i, r := range rows {
		if i >= 8*24 { // score before adding, once the model has a week
			sc, err := b.svc.Score(ctx, m, r.hour)
			if err != nil {
				t.Fatal(err)
			}
			inMaint := i >= 17*24 && i < 18*24
			if inMaint != (sc.Exclusion == ExclAbnormal) {
				t.Errorf("hour %d: exclusion %q, maintenance %v", i, sc.Exclusion, inMaint)
			}
			// σ̂ from ≥ 144 hours has a standard deviation of about
			// σ/√(2n) ≈ 0.12; 1.6 is more than three of them below σ = 2
			if !sc.Ready || sc.SE < 1.6 {
				t.Fatalf("hour %d: score %+v; want a ready model with SE ≥ 1.6", i, sc)
			}
			truth := 12 + 0.8*r.units + 0.5*math.Max(0, r.temp-18)
			worst = math.Max(worst, math.Abs(sc.Predicted-truth)/sc.SE)
			if sc.Actual != r.kwh || sc.Residual != r.kwh-sc.Predicted {
				t.Fatalf("hour %d: actual %v residual %v", i, sc.Actual, sc.Residual)
			}
		}
		if err := b.svc.Refresh(ctx, m, r.hour, true); err != nil {
			t.Fatal(err)
		}
	}
	// The prediction error of the mean is a fraction of the prediction SE
	// (which includes the noise σ = 2): never more than one SE.
	if worst > 1 {
		t.Errorf("worst |predicted − truth| = %.2f SE, want < 1", worst)
	}
	last := rows[len(rows)-1].hour
	winStart := last.Add(time.Hour - 7*24*time.Hour)
	r, model := b.rollingModel(t, m)
	if r.state.SourceBaseline == nil || *r.state.SourceBaseline != active {
		t.Errorf("source baseline %v, want the active %s", r.state.SourceBaseline, active)
	}
	batch := b.batchFit(t, m, drivers, winStart, last.Add(time.Hour))
	// 7 × 24 hours in the window minus the 24 maintenance hours
	if model.N != 7*24-24 {
		t.Errorf("n = %d, want 144", model.N)
	}
	sameModel(t, "after the window slid", model, batch, 1e-8)

	// a late reading changes an hour inside the window: hour_revised
	late := rows[len(rows)-30].hour
	if _, err := b.pool.Exec(ctx, `UPDATE energy_readings_1hour SET total_energy_kwh = total_energy_kwh + 40
		WHERE machine_id = $1 AND bucket = $2`, m, late); err != nil {
		t.Fatal(err)
	}
	if err := b.svc.Revise(ctx, m, late); err != nil {
		t.Fatal(err)
	}
	_, model = b.rollingModel(t, m)
	batch = b.batchFit(t, m, drivers, winStart, last.Add(time.Hour))
	sameModel(t, "after the revision", model, batch, 1e-8)

	// at-least-once delivery: the same hour closed again changes nothing
	before, _ := b.st.ReadRollingState(ctx, m)
	if err := b.svc.Refresh(ctx, m, last, true); err != nil {
		t.Fatal(err)
	}
	after, _ := b.st.ReadRollingState(ctx, m)
	if !bytes.Equal(before.Stats, after.Stats) {
		t.Errorf("a repeated hour_closed changed the statistics")
	}
}

// TestRollingResumesAfterRestart: two machines get the same hours; one is
// refreshed by a single service, the other by a service that is replaced
// (new pool, new Service) half-way. The persisted statistics are identical
// bit for bit.
func TestRollingResumesAfterRestart(t *testing.T) {
	t.Parallel()
	cfg := func(c *Config) { c.WindowDays = 3; c.PublishInterval = 1000 * time.Hour }
	b := setup(t, cfg)
	ctx := context.Background()
	a, c := b.machine(t, "uninterrupted"), b.machine(t, "restarted")
	rows := knownTruth(6*24, 5)
	b.insertHours(t, a, rows)
	b.insertHours(t, c, rows)
	restarted := b.svc
	for i, r := range rows {
		if i == len(rows)/2 {
			// the worker restarts: a new pool and a new service on the same database
			conf := DefaultConfig(store.New(testdb.Pool(t, b.pool.Config().ConnString())))
			cfg(&conf)
			restarted = New(conf)
		}
		if err := b.svc.Refresh(ctx, a, r.hour, true); err != nil {
			t.Fatal(err)
		}
		if err := restarted.Refresh(ctx, c, r.hour, true); err != nil {
			t.Fatal(err)
		}
	}
	sa, err := b.st.ReadRollingState(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := b.st.ReadRollingState(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sa.Stats, sc.Stats) || sa.RefreshedCount != sc.RefreshedCount {
		t.Errorf("restarted statistics differ:\n%s\n%s", sa.Stats, sc.Stats)
	}
	if sa.RefreshedCount != int64(len(rows)) {
		t.Errorf("refreshed %d times, want %d", sa.RefreshedCount, len(rows))
	}
}

// TestRollingPublishes: with an active baseline the rolling model uses its
// drivers and publishes a new active version every publish interval of data
// time (here 7 days over 22 days: at hours 168, 336 and 504).
func TestRollingPublishes(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.WindowDays = 7; c.MinSamples = 100; c.PublishInterval = 7 * 24 * time.Hour })
	ctx := context.Background()
	m := b.machine(t, "publisher")
	rows := knownTruth(22*24, 6)
	b.insertHours(t, m, rows)
	first := b.trainActive(t, m, []string{"production_count", "cdd"}, t0.Add(7*24*time.Hour))
	for _, r := range rows {
		if err := b.svc.Refresh(ctx, m, r.hour, true); err != nil {
			t.Fatal(err)
		}
	}
	list, err := b.st.ListBaselines(ctx, store.BaselineFilter{MachineID: m})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 4 {
		t.Fatalf("%d versions, want the trained one and 3 rolling publications", len(list))
	}
	for i, bl := range list {
		wantActive := i == 0
		if bl.ModelVersion != 4-i || bl.IsActive != wantActive {
			t.Errorf("version %d active %v at position %d", bl.ModelVersion, bl.IsActive, i)
		}
		if i < 3 && (bl.TrainedBy == nil || *bl.TrainedBy != "rolling" || *bl.Samples != 168) {
			t.Errorf("version %d trained by %v on %v samples; want rolling on 168", bl.ModelVersion, bl.TrainedBy, bl.Samples)
		}
	}
	if list[3].ID != first {
		t.Errorf("version 1 is %s, want the trained baseline %s", list[3].ID, first)
	}
}

// TestRollingDefaultDrivers: without an active baseline the rolling model
// uses the covered drivers the window can estimate; operating_hours (always
// 1 here) and material moisture (never reported) are left out.
func TestRollingDefaultDrivers(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.WindowDays = 7; c.PublishInterval = 1000 * time.Hour })
	ctx := context.Background()
	m := b.machine(t, "defaults")
	rows := knownTruth(8*24, 7)
	b.insertHours(t, m, rows)
	if err := b.svc.Refresh(ctx, m, rows[len(rows)-1].hour, true); err != nil {
		t.Fatal(err)
	}
	r, _ := b.rollingModel(t, m)
	want := []string{"production_count", "pressure_bar", "hdd", "cdd"}
	if len(r.design.Drivers) != len(want) {
		t.Fatalf("drivers %v, want %v", r.design.Drivers, want)
	}
	for i := range want {
		if r.design.Drivers[i] != want[i] {
			t.Errorf("drivers %v, want %v", r.design.Drivers, want)
		}
	}
}

// TestRollingKeepsOutHours: hours the caller keeps out (anomalous ones) are
// not in the model — also after a rebuild from the rollups — and
// SetLearned lets one back in.
func TestRollingKeepsOutHours(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.WindowDays = 3; c.PublishInterval = 1000 * time.Hour })
	ctx := context.Background()
	m := b.machine(t, "kept-out")
	rows := knownTruth(4*24, 9)
	b.insertHours(t, m, rows)
	out := map[int]bool{30: true, 60: true, 61: true, 90: true}
	for i, r := range rows {
		if err := b.svc.Refresh(ctx, m, r.hour, !out[i]); err != nil {
			t.Fatal(err)
		}
	}
	// the default drivers were re-chosen daily (a young model), so the
	// window was rebuilt from the rollups at hours 24, 48 and 72; the final
	// window, hours 24…95, holds 72 hours minus the 4 kept out
	r, _ := b.rollingModel(t, m)
	if n := r.stats.N(); n != 72-4 {
		t.Errorf("n = %d, want 68", n)
	}
	if err := b.svc.SetLearned(ctx, m, rows[60].hour, true); err != nil {
		t.Fatal(err)
	}
	if err := b.svc.SetLearned(ctx, m, rows[40].hour, false); err != nil {
		t.Fatal(err)
	}
	r, model := b.rollingModel(t, m)
	if n := r.stats.N(); n != 68 {
		t.Errorf("after letting hour 60 in and keeping 40 out: n = %d, want 68", n)
	}
	// the statistics equal a from-scratch accumulation of the hours they hold
	batch := analyticsStatsOf(t, b, m, r)
	bm, err := batch.Fit()
	if err != nil {
		t.Fatal(err)
	}
	sameModel(t, "kept-out hours", model, bm, 1e-8)
}

// analyticsStatsOf accumulates, from scratch, the observations the model
// holds (baseline_rolling_hours).
func analyticsStatsOf(t *testing.T, b *bundle, m string, r *rolling) *analytics.Stats {
	t.Helper()
	s := analytics.NewStats(r.design.Columns)
	err := b.st.Rolling(context.Background(), m, func(tx *store.RollingTx) error {
		obs, err := tx.AllHours(context.Background())
		if err != nil {
			return err
		}
		for _, o := range obs {
			s.Add(o.X, o.Y)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRollingFallsBackWhenActiveDriversUncovered: the active baseline uses
// material moisture, which stopped being reported; the rolling model stands
// in with default drivers and is not rebuilt on every hour because of it.
func TestRollingFallsBackWhenActiveDriversUncovered(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.WindowDays = 3; c.MinSamples = 100; c.PublishInterval = 1000 * time.Hour })
	ctx := context.Background()
	m := b.machine(t, "moisture-gone")
	rows := knownTruth(10*24, 10)
	b.insertHours(t, m, rows)
	// moisture reported in the first 5 days only, and it drives 2 kWh per %
	for _, q := range []string{`
		UPDATE production_data_1hour SET sum_material_moisture = 1 + extract(hour FROM bucket) / 10, material_moisture_count = 1
		 WHERE machine_id = $1 AND bucket < $2`, `
		UPDATE energy_readings_1hour e SET total_energy_kwh = total_energy_kwh + 2 * p.avg_material_moisture
		  FROM production_data_1hour p
		 WHERE e.machine_id = $1 AND p.machine_id = $1 AND p.bucket = e.bucket AND e.bucket < $2`} {
		if _, err := b.pool.Exec(ctx, q, m, t0.Add(5*24*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	active := b.trainActive(t, m, []string{"production_count", "material_moisture_pct"}, t0.Add(5*24*time.Hour))
	for i := 8 * 24; i < 8*24+10; i++ {
		if err := b.svc.Refresh(ctx, m, rows[i].hour, true); err != nil {
			t.Fatal(err)
		}
	}
	r, _ := b.rollingModel(t, m)
	if r.state.SourceBaseline == nil || *r.state.SourceBaseline != active {
		t.Errorf("source %v, want the active baseline %s", r.state.SourceBaseline, active)
	}
	if slices.Contains(r.design.Drivers, "material_moisture_pct") {
		t.Errorf("drivers %v include the uncovered moisture", r.design.Drivers)
	}
	// built once, at the first refresh, and only slid since: the 72 hours
	// of the 3-day window, every one usable
	if !r.state.DriversChosenAt.Equal(rows[8*24].hour) || r.stats.N() != 72 {
		t.Errorf("drivers chosen at %v, n %d; want chosen at the first refresh (%v) and 72 hours",
			r.state.DriversChosenAt, r.stats.N(), rows[8*24].hour)
	}
}

// fitHoursFor fits drivers over a machine's window (test helper over fitRequest).
func (s *Service) fitHoursFor(ctx context.Context, m string, drivers []string, start, end time.Time) (*fitted, error) {
	return s.fitRequest(ctx, store.TrainRequest{MachineID: m, Drivers: drivers, TrainingStart: &start, TrainingEnd: &end})
}
