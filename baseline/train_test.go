package baseline

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/enms/enms-analytics/analytics"
	"github.com/enms/enms-analytics/store"
)

// TestKnownTruth trains on 90 simulated days of
// kWh = 12 + 0.8·units + 0.5·cdd + N(0, 2²) with two maintenance days in the
// window: the coefficients come back within 5 %, R² ≥ 0.9, every validity
// rule passes, and the 48 maintenance hours are not in the sample.
func TestKnownTruth(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.startWorker(t)
	m := b.machine(t, "known-truth")
	const hours = 90 * 24
	b.insertHours(t, m, knownTruth(hours, 1))
	// running from before the window; maintenance on days 20 and 21
	b.setStatus(t, m, "running", true, t0.Add(-time.Hour))
	b.setStatus(t, m, "maintenance", false, t0.Add(20*24*time.Hour))
	b.setStatus(t, m, "running", true, t0.Add(22*24*time.Hour))

	id := b.request(t, m, []string{"production_count", "cdd"}, t0, t0.Add(hours*time.Hour))
	r := b.wait(t, id)
	if r.Status != store.TrainDone {
		t.Fatalf("status %s, error %q", r.Status, deref(r.Error))
	}
	bl, err := b.st.Baseline(context.Background(), deref(r.BaselineID))
	if err != nil {
		t.Fatal(err)
	}
	// 2,160 hours − 2 days × 24 h of maintenance = 2,112 samples
	if *bl.Samples != hours-48 {
		t.Errorf("training_samples = %d, want %d (the maintenance days excluded)", *bl.Samples, hours-48)
	}
	var meta Metadata
	if err := json.Unmarshal(bl.Metadata, &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Excluded[ExclAbnormal] != 48 || meta.Fit.N != hours-48 {
		t.Errorf("excluded %v, n %d; want 48 abnormal hours and n = 2112", meta.Excluded, meta.Fit.N)
	}
	want := map[string]float64{"intercept": 12, "production_count": 0.8, "cdd": 0.5}
	for name, w := range want {
		got := float64(meta.Fit.Coefficients[name].Estimate)
		if math.Abs(got-w)/w > 0.05 {
			t.Errorf("%s = %.4f, want %.2f within 5 %%", name, got, w)
		}
	}
	if bl.Coefficients["production_count"] != float64(meta.Fit.Coefficients["production_count"].Estimate) ||
		*bl.Intercept != float64(meta.Fit.Coefficients["intercept"].Estimate) {
		t.Errorf("coefficients column %v / intercept %v disagree with the fit report", bl.Coefficients, *bl.Intercept)
	}
	if meta.Fit.RSquared < 0.9 || *bl.RSquared != float64(meta.Fit.RSquared) {
		t.Errorf("R² = %v (column %v), want ≥ 0.9", meta.Fit.RSquared, *bl.RSquared)
	}
	// σ = 2 by construction: the residual SE estimates it
	if math.Abs(float64(meta.Fit.RMSE)-2) > 0.15 {
		t.Errorf("RMSE = %v, want ≈ 2 (the simulated noise)", meta.Fit.RMSE)
	}
	for _, rule := range meta.Fit.Validity.Rules {
		if !rule.Passed {
			t.Errorf("rule %s failed: %v vs %v", rule.Name, rule.Value, rule.Threshold)
		}
	}
	if !meta.Fit.Validity.Valid || !bl.IsActive || bl.ModelVersion != 1 {
		t.Errorf("valid %v active %v version %d; want a valid, active version 1", meta.Fit.Validity.Valid, bl.IsActive, bl.ModelVersion)
	}
	if c := meta.Fit.Drivers["production_count"].Coverage; c != 1 {
		t.Errorf("production_count coverage %v, want 1", c)
	}
	// the model file
	f, err := os.ReadFile(ModelFilePath(b.dir, m, 1))
	if err != nil {
		t.Fatalf("model file: %v", err)
	}
	var mf modelFile
	if err := json.Unmarshal(f, &mf); err != nil || mf.ID != bl.ID || mf.Coefficients["cdd"] != bl.Coefficients["cdd"] {
		t.Errorf("model file %s does not describe baseline %s (err %v)", f[:min(len(f), 200)], bl.ID, err)
	}
	// the fit report keys are exactly DESIGN §5's
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(bl.Metadata, &raw); err != nil {
		t.Fatal(err)
	}
	var fit map[string]json.RawMessage
	if err := json.Unmarshal(raw["fit"], &fit); err != nil {
		t.Fatal(err)
	}
	keys := "n p r_squared adj_r_squared rmse cv_rmse nmbe mae f_stat f_p_value autocorr_lag1 coefficients drivers validity"
	for _, k := range strings.Fields(keys) {
		if _, ok := fit[k]; !ok {
			t.Errorf("fit report has no %q", k)
		}
	}
	if len(fit) != len(strings.Fields(keys)) {
		t.Errorf("fit report has %d keys, want %d", len(fit), len(strings.Fields(keys)))
	}
}

// TestRequestsThatCannotTrain inserts bad requests with plain SQL: each ends
// failed or rejected with a message naming the cause, and the next valid
// request still trains. Versions and activation follow the rules: a rejected
// model is stored inactive and leaves the active version alone.
func TestRequestsThatCannotTrain(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.MinSamples = 1000 })
	b.startWorker(t)
	m := b.machine(t, "bad-requests")
	const hours = 60 * 24
	rows := knownTruth(hours, 2)
	for i := range rows {
		rows[i].pressure = 7 // a constant driver
	}
	b.insertHours(t, m, rows)
	end := t0.Add(hours * time.Hour)
	good := []string{"production_count", "cdd"}

	// first a valid request: version 1, active
	first := b.wait(t, b.request(t, m, good, t0, end))
	if first.Status != store.TrainDone {
		t.Fatalf("first valid request: %s %q", first.Status, deref(first.Error))
	}

	cases := []struct {
		name       string
		machine    string
		drivers    []string
		start, end time.Time
		status     store.TrainStatus
		message    string
	}{
		{"unknown machine", "00000000-0000-4000-8000-000000000001", good, t0, end, store.TrainFailed,
			"Machine 00000000-0000-4000-8000-000000000001 does not exist"},
		{"unknown driver", m, []string{"production_count", "wind_speed"}, t0, end, store.TrainFailed,
			`unknown driver "wind_speed"; valid drivers are production_count, outdoor_temp_c`},
		{"duplicate driver", m, []string{"cdd", "production_count", "cdd"}, t0, end, store.TrainFailed,
			`driver "cdd" is listed twice`},
		{"reversed window", m, good, end, t0, store.TrainFailed, "The training window is reversed"},
		{"window without data", m, good, t0.AddDate(-1, 0, 0), t0.AddDate(0, -6, 0), store.TrainFailed,
			"has no energy data between 2025-01-05T00:00:00Z and 2025-07-05T00:00:00Z"},
		// 2 hours for 3 parameters: no residual degrees of freedom
		{"fewer hours than parameters", m, good, t0, t0.Add(2 * time.Hour), store.TrainFailed,
			"Too few usable hours"},
		// 5 days = 120 hours: fits, but 120 < BASELINE_MIN_SAMPLES 1000
		{"too few samples", m, good, t0, t0.Add(120 * time.Hour), store.TrainRejected, "120 samples < 1000"},
		{"constant driver", m, []string{"production_count", "pressure_bar"}, t0, end, store.TrainFailed,
			"driver pressure_bar is constant in the window"},
		// Monday to Wednesday: weekdays 4, 5 and 6 never occur
		{"categorical level never seen", m, []string{"production_count", "weekday"}, t0, t0.Add(72 * time.Hour), store.TrainFailed,
			"driver weekday has no variation in weekday=4, weekday=5, weekday=6"},
		{"driver not reported", m, []string{"production_count", "material_moisture_pct"}, t0, end, store.TrainFailed,
			"material_moisture_pct is reported in 0.0 % of the 1440 usable hours"},
	}
	for _, c := range cases {
		r := b.wait(t, b.request(t, c.machine, c.drivers, c.start, c.end))
		t.Logf("%s: %s: %s", c.name, r.Status, deref(r.Error))
		if r.Status != c.status || !strings.Contains(deref(r.Error), c.message) {
			t.Errorf("%s: status %s, error %q; want %s with %q", c.name, r.Status, deref(r.Error), c.status, c.message)
		}
		if c.status == store.TrainRejected && r.BaselineID == nil {
			t.Errorf("%s: rejected without the stored inactive model", c.name)
		}
	}
	ctx := context.Background()
	active, err := b.st.ActiveBaseline(ctx, m)
	if err != nil || active.ID != deref(first.BaselineID) {
		t.Fatalf("after the rejection the active baseline is %s (err %v), want version 1 (%s)", active.ID, err, deref(first.BaselineID))
	}
	// the next valid request still trains, becomes version 3 (2 was the
	// rejected one) and replaces version 1 as the active baseline
	last := b.wait(t, b.request(t, m, good, t0, end))
	if last.Status != store.TrainDone {
		t.Fatalf("valid request after the bad ones: %s %q", last.Status, deref(last.Error))
	}
	list, err := b.st.ListBaselines(ctx, store.BaselineFilter{MachineID: m})
	if err != nil {
		t.Fatal(err)
	}
	var summary []string
	for _, bl := range list {
		summary = append(summary, strings.Join([]string{strconv.Itoa(bl.ModelVersion), boolStr(bl.IsActive)}, ":"))
	}
	if strings.Join(summary, " ") != "3:active 2:inactive 1:inactive" {
		t.Errorf("versions %v, want 3 active, 2 (rejected) and 1 inactive", summary)
	}
	if _, err := os.Stat(ModelFilePath(b.dir, m, 2)); err != nil {
		t.Errorf("the rejected model's file: %v", err)
	}
}

func boolStr(active bool) string {
	if active {
		return "active"
	}
	return "inactive"
}

// TestTimeOfWeekDriversFit: categorical drivers expand to indicators and
// are tested as one group.
func TestTimeOfWeekDriversFit(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.MinSamples = 500 })
	m := b.machine(t, "tow")
	rows := knownTruth(28*24, 3)
	for i := range rows {
		if h := rows[i].hour.Hour(); h >= 8 && h < 18 {
			rows[i].kwh += 15 // day shift load
		}
	}
	b.insertHours(t, m, rows)
	f, err := b.svc.fitRequest(context.Background(), store.TrainRequest{MachineID: m,
		Drivers: []string{"production_count", "cdd", "hour_of_day"}, TrainingStart: &rows[0].hour, TrainingEnd: ptr(t0.Add(28 * 24 * time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	if f.report.P != 1+2+23 {
		t.Errorf("p = %d, want intercept + production_count + cdd + 23 hour indicators", f.report.P)
	}
	var groupRule *analytics.Rule
	for i, r := range f.report.Validity.Rules {
		if r.Name == analytics.RuleDriverP+"hour_of_day" {
			groupRule = &f.report.Validity.Rules[i]
		}
	}
	if groupRule == nil || !groupRule.Passed || groupRule.Value > 1e-10 {
		t.Errorf("hour_of_day group rule %+v; a 15 kWh day-shift step is overwhelming evidence", groupRule)
	}
	// with cdd in the model (the daily temperature cycle), hour 9 is the
	// simulated 15 kWh above the reference hour 0
	if est := float64(f.report.Coefficients["hour_of_day=9"].Estimate); math.Abs(est-15) > 1.5 {
		t.Errorf("hour_of_day=9 = %v, want ≈ 15", est)
	}
}

func ptr[T any](v T) *T { return &v }

// TestFeatureHoursMatchStatusFunctions: the feature query's running seconds
// equal machine_running_seconds (migration 000005) hour by hour, and its
// abnormal seconds are the maintenance/fault/offline time, hand computed
// from a status sequence with changes inside hours.
func TestFeatureHoursMatchStatusFunctions(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	m := b.machine(t, "status")
	b.insertHours(t, m, knownTruth(8, 8))
	b.setStatus(t, m, "running", true, t0.Add(-time.Hour))
	b.setStatus(t, m, "maintenance", false, t0.Add(90*time.Minute))
	b.setStatus(t, m, "idle", false, t0.Add(135*time.Minute))
	b.setStatus(t, m, "running", true, t0.Add(3*time.Hour))
	b.setStatus(t, m, "offline", false, t0.Add(285*time.Minute))
	b.setStatus(t, m, "idle", false, t0.Add(6*time.Hour))
	b.setStatus(t, m, "running", true, t0.Add(7*time.Hour))
	hours, err := b.st.FeatureHours(ctx, m, t0, t0.Add(8*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// hour 0 running; 1: 30 min maintenance; 2: 15 min maintenance then
	// idle (not running); 3: running; 4: 15 min offline; 5: offline;
	// 6: idle, not running; 7: running
	wantAbnormal := []float64{0, 1800, 900, 0, 900, 3600, 0, 0}
	wantExcl := []Exclusion{Included, ExclAbnormal, ExclAbnormal, Included, ExclAbnormal, ExclAbnormal, ExclNotRunning, Included}
	for i, h := range hours {
		var fn float64
		if err := b.pool.QueryRow(ctx, `SELECT machine_running_seconds($1, $2)`, m, h.Hour).Scan(&fn); err != nil {
			t.Fatal(err)
		}
		if h.HistoryRunningSeconds != fn || h.AbnormalSeconds != wantAbnormal[i] {
			t.Errorf("hour %d: running %v (function %v), abnormal %v (want %v)", i, h.HistoryRunningSeconds, fn,
				h.AbnormalSeconds, wantAbnormal[i])
		}
		if _, ex := classify(h); ex != wantExcl[i] {
			t.Errorf("hour %d: exclusion %q, want %q", i, ex, wantExcl[i])
		}
	}
	if len(hours) != 8 {
		t.Fatalf("%d hours, want 8", len(hours))
	}
}
