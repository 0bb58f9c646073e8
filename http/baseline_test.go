package http

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	nethttp "net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/enms/enms-analytics/baseline"
	"github.com/enms/enms-analytics/internal/testdb"
	"github.com/enms/enms-analytics/internal/workertest"
	"github.com/enms/enms-analytics/listener"
	"github.com/enms/enms-analytics/store"
)

// baselineFixture is an API over a database with one machine (blMachine)
// whose 45 days of hourly rollups follow kWh = 12 + 0.8·units + ε,
// ε ~ N(0, 2²), units 0…100, and a worker that trains requests.
const blMachine = "bbbbbbbb-0000-4000-8000-000000000001"

var blStart = time.Date(2026, 2, 2, 0, 0, 0, 0, time.UTC)

const blHours = 45 * 24

func baselineFixture(t *testing.T) *fixture {
	t.Helper()
	pool := testdb.New(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `
		INSERT INTO factories (id, name) VALUES ('bbbbbbbb-0000-4000-8000-0000000000f0', 'baseline plant');
		INSERT INTO machines (id, factory_id, name, type) VALUES ('`+blMachine+`', 'bbbbbbbb-0000-4000-8000-0000000000f0', 'press 1', 'injection_molding')`); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 50006))
	var energy, prod [][]any
	for i := range blHours {
		h := blStart.Add(time.Duration(i) * time.Hour)
		units := float64(rng.IntN(101))
		kwh := 12 + 0.8*units + 2*rng.NormFloat64()
		energy = append(energy, []any{h, blMachine, 60, 60 * kwh, kwh})
		prod = append(prod, []any{h, blMachine, 60, int64(units), 3600.0, "running"})
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"energy_readings_1hour"},
		[]string{"bucket", "machine_id", "reading_count", "sum_power_kw", "total_energy_kwh"}, pgx.CopyFromRows(energy)); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"production_data_1hour"},
		[]string{"bucket", "machine_id", "reading_count", "total_production_count", "running_seconds", "dominant_mode"},
		pgx.CopyFromRows(prod)); err != nil {
		t.Fatal(err)
	}
	st := store.New(pool)
	cfg := baseline.DefaultConfig(st)
	cfg.ModelStoragePath = t.TempDir()
	svc := baseline.New(cfg)
	w, err := listener.New(listener.Config{Store: st, PollInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	w.HandleTrain(svc.TrainHandler())
	workertest.Start(t, w)
	return serveStore(t, pool)
}

func jsonBody(t *testing.T, v any) *strings.Reader {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return strings.NewReader(string(b))
}

func (f *fixture) post(t *testing.T, path string, v any) (int, map[string]any) {
	t.Helper()
	return f.do(t, "POST", path, "application/json", jsonBody(t, v), nil)
}

// TestBaselineAPI trains through POST /baseline/train (waiting for the
// worker), then reads the request, the models, the fit report, the
// deviation over the training window and a prediction.
func TestBaselineAPI(t *testing.T) {
	t.Parallel()
	f := baselineFixture(t)
	end := blStart.Add(blHours * time.Hour)
	train := map[string]any{"machine_id": blMachine, "drivers": []string{"production_count"},
		"training_start": blStart, "training_end": end}

	status, body := f.post(t, "/api/v1/baseline/train", train)
	if status != nethttp.StatusOK || str(t, body, "status") != "done" {
		t.Fatalf("train: %d %v", status, body)
	}
	reqID, bid := str(t, body, "id"), str(t, body, "baseline_id")

	status, body = f.get(t, "/api/v1/baseline/train-requests/"+reqID)
	if status != 200 || str(t, body, "baseline_id") != bid {
		t.Errorf("train request: %d %v", status, body)
	}

	status, body = f.get(t, "/api/v1/baseline/model/"+bid)
	if status != 200 {
		t.Fatalf("model: %d %v", status, body)
	}
	// 1,080 hours, every one usable: n = 1080; the slope near 0.8
	if n := num(t, body, "metadata.fit.n"); n != blHours {
		t.Errorf("fit n = %v, want %d", n, blHours)
	}
	if s := num(t, body, "coefficients.production_count"); math.Abs(s-0.8) > 0.04 {
		t.Errorf("slope %v, want 0.8 within 5 %%", s)
	}
	if v := at(t, body, "metadata.fit.validity.valid"); v != true {
		t.Errorf("validity %v", v)
	}

	status, body = f.get(t, "/api/v1/baseline/models?machine_id="+blMachine+"&active=true")
	if status != 200 || num(t, body, "count") != 1 {
		t.Errorf("models: %d %v", status, body)
	}

	// deviation over the training window: OLS residuals sum to zero, so the
	// total deviation, the final CUSUM and the improvement are 0 (rounding)
	status, body = f.get(t, "/api/v1/baseline/deviation?machine_id="+blMachine+"&start="+
		blStart.Format(time.RFC3339)+"&end="+end.Format(time.RFC3339))
	if status != 200 {
		t.Fatalf("deviation: %d %v", status, body)
	}
	if hours := at(t, body, "hours").([]any); len(hours) != blHours {
		t.Errorf("%d hours, want %d", len(hours), blHours)
	}
	if c := num(t, body, "cusum_kwh"); math.Abs(c) > 1e-6 {
		t.Errorf("CUSUM over the training window = %v, want 0", c)
	}
	if imp := num(t, body, "improvement_percent"); math.Abs(imp) > 1e-9 {
		t.Errorf("improvement %v %%, want 0", imp)
	}

	// predict: 50 units → 12 + 0.8·50 = 52 kWh, within the training range
	status, body = f.post(t, "/api/v1/baseline/predict", map[string]any{"machine_id": blMachine,
		"features": map[string]float64{"production_count": 50}})
	if status != 200 {
		t.Fatalf("predict: %d %v", status, body)
	}
	if p := num(t, body, "predicted_kwh"); math.Abs(p-52) > 1 {
		t.Errorf("predicted %v, want ≈ 52", p)
	}
	// σ = 2 and 1,080 rows: SE ≈ 2·√(1 + 1/1080 + …) ≈ 2
	if se := num(t, body, "std_error_kwh"); math.Abs(se-2) > 0.2 {
		t.Errorf("std error %v, want ≈ 2", se)
	}
	if w := at(t, body, "warnings").([]any); len(w) != 0 {
		t.Errorf("warnings %v for a value inside the range", w)
	}
	// outside the training range (units 0…100): a warning
	_, body = f.post(t, "/api/v1/baseline/predict", map[string]any{"machine_id": blMachine,
		"features": map[string]float64{"production_count": 250}})
	if w := at(t, body, "warnings").([]any); len(w) != 1 || !strings.Contains(w[0].(string), "outside the training range") {
		t.Errorf("warnings %v, want one about the training range", w)
	}
	// a missing driver is a 400 naming it
	status, body = f.post(t, "/api/v1/baseline/predict", map[string]any{"machine_id": blMachine,
		"features": map[string]float64{}})
	if msg := wantError(t, "missing driver", status, body, 400, CodeInvalid); !strings.Contains(msg, "production_count") {
		t.Errorf("message %q does not name the driver", msg)
	}

	// async: 202 with the request, which the worker then finishes
	status, body = f.post(t, "/api/v1/baseline/train?async=true", train)
	// the worker may already have claimed it (running), or even finished it
	if status != nethttp.StatusAccepted || str(t, body, "id") == "" || str(t, body, "status") == "failed" {
		t.Fatalf("async: %d %v", status, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	row, err := store.New(f.pool).WaitTrainRequest(ctx, str(t, body, "id"))
	if err != nil || row.Status != store.TrainDone {
		t.Errorf("async request: %v %v", row.Status, err)
	}
}

func TestBaselineAPIBadInput(t *testing.T) {
	t.Parallel()
	f := baselineFixture(t)
	end := blStart.Add(blHours * time.Hour)
	cases := []struct {
		what   string
		body   map[string]any
		status int
		code   string
		says   string
	}{
		{"unknown driver", map[string]any{"machine_id": blMachine, "drivers": []string{"wind"}, "training_start": blStart, "training_end": end},
			400, CodeInvalid, "valid drivers are"},
		{"reversed window", map[string]any{"machine_id": blMachine, "drivers": []string{"cdd"}, "training_start": end, "training_end": blStart},
			400, CodeInvalid, "must be before"},
		{"bad uuid", map[string]any{"machine_id": "press-1", "drivers": []string{"cdd"}, "training_start": blStart, "training_end": end},
			400, CodeInvalid, "is not a UUID"},
		{"unknown machine", map[string]any{"machine_id": "bbbbbbbb-0000-4000-8000-0000000000ee", "drivers": []string{"cdd"},
			"training_start": blStart, "training_end": end}, 404, CodeNotFound, "no machine"},
	}
	for _, c := range cases {
		status, body := f.post(t, "/api/v1/baseline/train", c.body)
		if msg := wantError(t, c.what, status, body, c.status, c.code); !strings.Contains(msg, c.says) {
			t.Errorf("%s: message %q, want it to say %q", c.what, msg, c.says)
		}
	}
	status, body := f.get(t, "/api/v1/baseline/deviation?machine_id="+blMachine+"&start="+
		blStart.Format(time.RFC3339)+"&end="+end.Format(time.RFC3339))
	wantError(t, "deviation without a baseline", status, body, 404, CodeNotFound)
	status, body = f.get(t, "/api/v1/baseline/model/bbbbbbbb-0000-4000-8000-0000000000ee")
	wantError(t, "unknown model", status, body, 404, CodeNotFound)
	status, body = f.get(t, "/api/v1/baseline/train-requests/bbbbbbbb-0000-4000-8000-0000000000ee")
	wantError(t, "unknown request", status, body, 404, CodeNotFound)
}

// TestBaselineDeviationImprovement: trained on the first 30 days (a model
// rejected for too few samples, applied by its id), the
// machine then uses 10 % less energy for 15 days (every hourly kWh × 0.9).
// ISO 50006 improvement = (Σ predicted − Σ actual)/Σ predicted ≈ 10 %: the
// predictions match the unimproved energy in expectation, and the noise of
// Σ over 360 hours (σ·√360 ≈ 38 kWh of ≈ 18,700) moves it by about 0.2 %.
func TestBaselineDeviationImprovement(t *testing.T) {
	t.Parallel()
	f := baselineFixture(t)
	split := blStart.Add(30 * 24 * time.Hour)
	end := blStart.Add(blHours * time.Hour)
	status, body := f.post(t, "/api/v1/baseline/train", map[string]any{"machine_id": blMachine,
		"drivers": []string{"production_count"}, "training_start": blStart, "training_end": split})
	// 720 hours < BASELINE_MIN_SAMPLES 1000: stored inactive, still usable by id
	if status != 200 || str(t, body, "status") != "rejected" || !strings.Contains(str(t, body, "error"), "720 samples < 1000") {
		t.Fatalf("train: %d %v", status, body)
	}
	bid := str(t, body, "baseline_id")
	if _, err := f.pool.Exec(context.Background(), `UPDATE energy_readings_1hour SET total_energy_kwh = 0.9 * total_energy_kwh
		WHERE machine_id = $1 AND bucket >= $2`, blMachine, split); err != nil {
		t.Fatal(err)
	}
	status, body = f.get(t, "/api/v1/baseline/deviation?machine_id="+blMachine+"&start="+
		split.Format(time.RFC3339)+"&end="+end.Format(time.RFC3339)+"&baseline_id="+bid)
	if status != 200 {
		t.Fatalf("deviation: %d %v", status, body)
	}
	if imp := num(t, body, "improvement_percent"); math.Abs(imp-10) > 1 {
		t.Errorf("improvement %.2f %%, want 10 ± 1", imp)
	}
	hours := at(t, body, "hours").([]any)
	if len(hours) != 15*24 {
		t.Fatalf("%d hours, want 360", len(hours))
	}
	// the CUSUM is the running sum of deviations: its last value is the total
	last := hours[len(hours)-1].(map[string]any)
	cusum, _ := last["cusum_kwh"].(json.Number).Float64()
	near(t, "final CUSUM", cusum, num(t, body, "totals.deviation_kwh"))
	if cusum >= 0 || num(t, body, "cusum_kwh") != cusum {
		t.Errorf("CUSUM %v, want negative (savings) and equal to cusum_kwh", cusum)
	}
	// a 10 % saving over 360 hours is far beyond the noise: critical
	if s := str(t, body, "totals.severity"); s != "critical" {
		t.Errorf("total severity %q, want critical", s)
	}
}
