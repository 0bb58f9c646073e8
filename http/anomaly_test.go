package http

import (
	"context"
	"fmt"
	"math"
	nethttp "net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/enms/enms-analytics/anomaly"
	"github.com/enms/enms-analytics/store"
)

const anomalyMachine = "aaaaaaaa-0000-4000-8000-0000000000a1"

// anomalyStart is the first hour of the anomaly fixture machine's data.
var anomalyStart = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

// anomalyFixture adds a machine with 240 hours of energy: 50 kWh plus a
// deterministic wiggle of ±0.5 kWh (0.5·sin(h)), except three spikes of
// +20 kWh at hours 200, 215 and 230 (15 hours apart, more than the 6-hour
// quiet gap, so three episodes). The detector's model is a stand-in that
// expects 50 kWh with standard error 1 kWh from a model of 500 hours: a
// spike is z = 20 (critical), an ordinary hour |z| ≤ 0.5.
func anomalyFixture(t *testing.T) *fixture {
	t.Helper()
	var f *fixture
	f = setup(t, func(c *Config) {
		svc, err := anomaly.New(anomaly.Config{Store: c.Store, Model: anomaly.PredictorFunc(
			func(context.Context, string, time.Time) (anomaly.Prediction, error) {
				return anomaly.Prediction{OK: true, Expected: 50, StdErr: 1, ModelHours: 500, ModelVersion: "fixed"}, nil
			})})
		if err != nil {
			t.Fatal(err)
		}
		c.Anomaly = svc
	})
	ctx := context.Background()
	if _, err := f.pool.Exec(ctx, `INSERT INTO machines (id, factory_id, name, type, data_interval_seconds)
		VALUES ($1, $2, 'Compressor A', 'compressor', 60)`, anomalyMachine, plantID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.pool.Exec(ctx, `
		INSERT INTO energy_readings_1hour (bucket, machine_id, reading_count, sum_power_kw, total_energy_kwh)
		SELECT $2::timestamptz + h * interval '1 hour', $1, 60,
		       60 * (50 + 0.5 * sin(h) + CASE WHEN h IN (200, 215, 230) THEN 20 ELSE 0 END),
		       50 + 0.5 * sin(h) + CASE WHEN h IN (200, 215, 230) THEN 20 ELSE 0 END
		  FROM generate_series(0, 239) AS h`, anomalyMachine, anomalyStart); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) detect(t *testing.T, body string) (int, map[string]any) {
	t.Helper()
	return f.do(t, "POST", "/api/v1/anomaly/detect", "application/json", strings.NewReader(body), nil)
}

func TestAnomalyDetectIdempotent(t *testing.T) {
	t.Parallel()
	f := anomalyFixture(t)
	body := fmt.Sprintf(`{"machine_id": %q, "start": "2026-03-02T00:00:00Z", "end": "2026-03-12T00:00:00Z"}`, anomalyMachine)
	var first map[string]any
	for run := range 2 {
		code, m := f.detect(t, body)
		if code != nethttp.StatusOK {
			t.Fatalf("run %d: status %d: %v", run, code, m)
		}
		// 240 hours; the last has no later data and ended long ago, so it is
		// closed too. Three spike hours are anomalous, the rest normal.
		if n := num(t, m, "hours_scored"); n != 240 {
			t.Errorf("run %d: hours_scored %v, want 240", run, n)
		}
		if n := num(t, m, "hours_by_status.anomalous"); n != 3 {
			t.Errorf("run %d: anomalous hours %v, want 3", run, n)
		}
		if n := num(t, m, "total_anomalies"); n != 3 {
			t.Fatalf("run %d: %v episodes, want 3: %v", run, n, m)
		}
		// The first run opens the three episodes (three notifications); the
		// second finds them as they are.
		if n, want := num(t, m, "episodes_notified"), float64(3*(1-run)); n != want {
			t.Errorf("run %d: episodes_notified %v, want %v", run, n, want)
		}
		if run == 0 {
			first = m
		}
	}
	var rows int
	if err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM anomalies`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 3 {
		t.Errorf("%d anomalies rows after detecting twice, want 3", rows)
	}
	a := at(t, first, "anomalies").([]any)[0].(map[string]any)
	if a["anomaly_type"] != anomaly.TypeEnergyOver || a["severity"] != "critical" || a["detection_method"] != "zscore" {
		t.Errorf("first episode: %v", a)
	}
	// z = (70 + 0.5·sin 200 − 50) / 1; sin(200 rad) = −0.873297.
	wantZ := 20 + 0.5*math.Sin(200)
	near(t, "deviation_std_dev", num(t, a, "deviation_std_dev"), wantZ)
	near(t, "metadata.peak_z", num(t, a, "metadata.peak_z"), wantZ)
	if num(t, a, "hour_count") != 1 || num(t, a, "metadata.hours") != 1 {
		t.Errorf("hour count: %v", a)
	}
	if c := num(t, a, "confidence_score"); c < 0.999999 || c > 1 {
		t.Errorf("confidence %v for z = 19.6, want ≈ 1", c)
	}

	for _, bad := range []struct {
		body string
		code int
	}{
		{`{"machine_id": "nope", "start": "2026-03-02T00:00:00Z", "end": "2026-03-03T00:00:00Z"}`, 400},
		{fmt.Sprintf(`{"machine_id": %q, "start": "2026-03-03T00:00:00Z", "end": "2026-03-02T00:00:00Z"}`, anomalyMachine), 400},
		{fmt.Sprintf(`{"machine_id": %q, "start": "2026-01-01T00:00:00Z", "end": "2026-06-01T00:00:00Z"}`, anomalyMachine), 400},
		{fmt.Sprintf(`{"machine_id": %q, "start": "2026-03-02T00:00:00Z", "end": "2026-03-03T00:00:00Z"}`, unknownID), 404},
	} {
		if code, m := f.detect(t, bad.body); code != bad.code {
			t.Errorf("%s: status %d, want %d: %v", bad.body, code, bad.code, m)
		}
	}
}

func TestAnomalyRecentActiveResolve(t *testing.T) {
	t.Parallel()
	f := anomalyFixture(t)
	if _, _, err := f.srv.cfg.Anomaly.Detect(context.Background(), anomalyMachine, anomalyStart, anomalyStart.Add(240*time.Hour)); err != nil {
		t.Fatal(err)
	}
	q := url.Values{"machine_id": {anomalyMachine}, "start": {"2026-03-01T00:00:00Z"}, "end": {"2026-03-13T00:00:00Z"}, "limit": {"2"}}
	code, page1 := f.get(t, "/api/v1/anomaly/recent?"+q.Encode())
	if code != 200 || num(t, page1, "count") != 2 {
		t.Fatalf("page 1: %d %v", code, page1)
	}
	q.Set("cursor", str(t, page1, "next_cursor"))
	code, page2 := f.get(t, "/api/v1/anomaly/recent?"+q.Encode())
	if code != 200 || num(t, page2, "count") != 1 || at(t, page2, "next_cursor") != nil {
		t.Fatalf("page 2: %d %v", code, page2)
	}
	// Newest first: hours 230, 215, then 200.
	var got []string
	for _, p := range []map[string]any{page1, page2} {
		for _, a := range at(t, p, "anomalies").([]any) {
			got = append(got, a.(map[string]any)["detected_at"].(string))
		}
	}
	want := []string{"2026-03-11T14:00:00Z", "2026-03-10T23:00:00Z", "2026-03-10T08:00:00Z"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("pages: %v, want %v", got, want)
	}
	// Default window: the last 24 hours of now, long after the fixture.
	if code, m := f.get(t, "/api/v1/anomaly/recent"); code != 200 || num(t, m, "count") != 0 {
		t.Errorf("default window: %d %v", code, m)
	}
	if code, m := f.get(t, "/api/v1/anomaly/recent?severity=bad"); code != 400 {
		t.Errorf("bad severity: %d %v", code, m)
	}
	if code, m := f.get(t, "/api/v1/anomaly/recent?cursor=xyz"); code != 400 {
		t.Errorf("bad cursor: %d %v", code, m)
	}

	code, act := f.get(t, "/api/v1/anomaly/active?machine_id="+anomalyMachine)
	if code != 200 || num(t, act, "total") != 3 || num(t, act, "by_severity.critical") != 3 || num(t, act, "by_severity.warning") != 0 {
		t.Fatalf("active: %d %v", code, act)
	}

	id := at(t, page1, "anomalies").([]any)[0].(map[string]any)["id"].(string)
	resolve := func(id, body string) (int, map[string]any) {
		return f.do(t, "PUT", "/api/v1/anomaly/"+id+"/resolve", "application/json", strings.NewReader(body), nil)
	}
	code, m := resolve(id, `{"resolution_notes": "leak at coupling 3 fixed"}`)
	if code != 200 || m["is_resolved"] != true || m["resolution_notes"] != "leak at coupling 3 fixed" {
		t.Fatalf("resolve: %d %v", code, m)
	}
	if code, m := resolve(id, `{"resolution_notes": "again"}`); code != 409 {
		t.Errorf("second resolve: %d %v", code, m)
	}
	if code, m := resolve(unknownID, `{"resolution_notes": "x"}`); code != 404 {
		t.Errorf("unknown id: %d %v", code, m)
	}
	if code, m := resolve("not-a-uuid", `{"resolution_notes": "x"}`); code != 400 {
		t.Errorf("bad id: %d %v", code, m)
	}
	if code, m := resolve(id, `{"resolution_notes": " "}`); code != 400 {
		t.Errorf("empty notes: %d %v", code, m)
	}
	if _, act = f.get(t, "/api/v1/anomaly/active"); num(t, act, "total") != 2 {
		t.Errorf("active after resolving one: %v", act)
	}
	// A resolved episode stays resolved when the window is re-scored.
	if _, _, err := f.srv.cfg.Anomaly.Detect(context.Background(), anomalyMachine, anomalyStart, anomalyStart.Add(240*time.Hour)); err != nil {
		t.Fatal(err)
	}
	a, err := store.New(f.pool).Anomaly(context.Background(), id)
	if err != nil || !a.IsResolved {
		t.Errorf("after re-detect: %+v %v", a, err)
	}
}

// TestAnomalyDetectDefaultModel: without Config.Anomaly the route scores
// against the baseline's rolling model; m1 has no model yet, so its four
// hours are recorded unscored and nothing is flagged.
func TestAnomalyDetectDefaultModel(t *testing.T) {
	t.Parallel()
	f := setup(t)
	code, m := f.detect(t, fmt.Sprintf(`{"machine_id": %q, "start": "2026-01-05T00:00:00Z", "end": "2026-01-05T04:00:00Z"}`, m1ID))
	if code != 200 {
		t.Fatalf("status %d: %v", code, m)
	}
	if num(t, m, "hours_scored") != 4 || num(t, m, "hours_by_status.unscored") != 4 || num(t, m, "total_anomalies") != 0 {
		t.Errorf("detect without a rolling model: %v", m)
	}
	var reasons []string
	rows, err := f.pool.Query(context.Background(), `SELECT reason FROM anomaly_hours WHERE machine_id = $1 ORDER BY bucket`, m1ID)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			t.Fatal(err)
		}
		reasons = append(reasons, r)
	}
	if strings.Join(reasons, ",") != "no_model,no_model,no_model,no_model" {
		t.Errorf("reasons %v, want no_model ×4", reasons)
	}
}
