package http

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/enms/enms-analytics/forecast"
	"github.com/enms/enms-analytics/internal/testdb"
	"github.com/enms/enms-analytics/store"
)

// Forecast fixture: a Berlin factory (UTC+1 in March) with one machine and
// time-of-use tariffs: off-peak 0.08 EUR from 22:00 to 06:00 every day
// (wraps midnight), peak 0.25 from 08:00 to 20:00 on weekdays (1–5, 0 =
// Sunday), and a flat 0.12 for the other hours.
const (
	fcFactoryID = "33333333-3333-4333-8333-333333333333"
	fcMachineID = "bbbbbbbb-0000-4000-8000-000000000001"
)

func seedForecastPlant(t testing.TB, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	for _, q := range []string{
		`INSERT INTO factories (id, name, timezone) VALUES ('` + fcFactoryID + `', 'Forecast Works', 'Europe/Berlin')`,
		`INSERT INTO machines (id, factory_id, name, type, data_interval_seconds)
		 VALUES ('` + fcMachineID + `', '` + fcFactoryID + `', 'Press 1', 'injection_molding', 60)`,
		`INSERT INTO energy_tariffs (factory_id, name, rate_per_kwh, currency, is_time_of_use, start_hour, end_hour, applicable_days)
		 VALUES ('` + fcFactoryID + `', 'off-peak', 0.08, 'EUR', true, 22, 6, NULL),
		        ('` + fcFactoryID + `', 'peak', 0.25, 'EUR', true, 8, 20, '{1,2,3,4,5}'),
		        ('` + fcFactoryID + `', 'standard', 0.12, 'EUR', false, NULL, NULL, NULL),
		        ('` + fcFactoryID + `', 'retired', 0.99, 'EUR', true, 0, 24, NULL)`,
		`UPDATE energy_tariffs SET is_active = false WHERE name = 'retired'`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatalf("seed forecast plant: %v\n%s", err, q)
		}
	}
}

// scheduleOrigin is Monday 2026-03-02 13:00 UTC = 14:00 in Berlin.
var scheduleOrigin = time.Date(2026, 3, 2, 13, 0, 0, 0, time.UTC)

// writeHandForecast stores a hand-built hourly forecast from scheduleOrigin:
// 50 kW every hour except 150 kW at 21:00 and 22:00 UTC (22:00 and 23:00
// in Berlin).
func writeHandForecast(t testing.TB, st *store.Store) {
	t.Helper()
	var rows []store.ForecastRow
	for h := 1; h <= 24; h++ {
		target := scheduleOrigin.Add(time.Duration(h-1) * time.Hour)
		kw := 50.0
		if target.Hour() == 21 || target.Hour() == 22 {
			kw = 150
		}
		rows = append(rows, store.ForecastRow{MachineID: fcMachineID, Origin: scheduleOrigin, TargetBucket: target,
			Resolution: store.Resolution1Hour, Horizon: h, PredictedKWh: kw, PredictedKW: kw,
			Lower80: kw - 5, Upper80: kw + 5, Lower95: kw - 10, Upper95: kw + 10, Model: "hand"})
	}
	if err := st.UpsertForecasts(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
}

func scheduleBody(extra string) string {
	return `{"machine_id": "` + fcMachineID + `", "load_kw": 100, "duration_hours": 3,
		"earliest_start": "2026-03-02T13:00:00Z", "latest_end": "2026-03-03T07:00:00Z"` + extra + `}`
}

// TestOptimalScheduleAPI: 100 kW for 3 h between Monday 14:00 and Tuesday
// 08:00 Berlin time. In local hours the rates are 14–19 → 0.25, 20–21 →
// 0.12, 22–05 → 0.08, 06–07 → 0.12 (the retired 0.99 tariff is inactive),
// so (100 kW × Σ rate):
//
//	start 14:00 local (baseline)   3 × 25 = 75 EUR
//	start 22:00, 23:00 local       3 × 8  = 24, peak 150 + 100 = 250 kW
//	start 00:00 … 03:00 local      3 × 8  = 24, peak 50 + 100 = 150 kW
//
// With peak_threshold_kw = 200 the 22:00 and 23:00 starts are out and the
// answer is 00:00, 01:00, 02:00 local = 23:00, 00:00, 01:00 UTC, 24 EUR
// each, saving 51. Without it the threshold is the largest observed
// 15-minute demand, 260 kW (written below), so 250 kW fits and the answer
// is 22:00, 23:00, 00:00 local = 21:00, 22:00, 23:00 UTC.
func TestOptimalScheduleAPI(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	seedForecastPlant(t, pool)
	f := serveStore(t, pool)
	st := store.New(pool)

	status, body := f.do(t, "POST", "/api/v1/forecast/optimal-schedule", "application/json",
		strings.NewReader(scheduleBody(`, "peak_threshold_kw": 200`)), nil)
	if status != 409 {
		t.Fatalf("before any forecast: status %d, want 409: %v", status, body)
	}
	writeHandForecast(t, st)
	if _, err := pool.Exec(context.Background(), `INSERT INTO energy_readings_15min
		(bucket, machine_id, reading_count, sum_power_kw, total_energy_kwh)
		VALUES ('2026-03-01T10:00:00Z', $1, 1, 260, 65), ('2026-03-01T10:15:00Z', $1, 1, 120, 30)`, fcMachineID); err != nil {
		t.Fatal(err)
	}

	check := func(extra string, wantStarts []string, wantThreshold float64, wantFeasible int) {
		t.Helper()
		status, body := f.do(t, "POST", "/api/v1/forecast/optimal-schedule", "application/json",
			strings.NewReader(scheduleBody(extra)), nil)
		if status != 200 {
			t.Fatalf("status %d: %v", status, body)
		}
		near(t, "peak_threshold_kw", num(t, body, "peak_threshold_kw"), wantThreshold)
		near(t, "baseline.cost", num(t, body, "baseline.cost"), 75)
		if str(t, body, "currency") != "EUR" {
			t.Errorf("currency %v", body["currency"])
		}
		// starts 14:00 … 05:00 local = 16 candidates
		near(t, "candidates", num(t, body, "candidates"), 16)
		near(t, "feasible_candidates", num(t, body, "feasible_candidates"), float64(wantFeasible))
		windows, _ := body["windows"].([]any)
		if len(windows) != 3 {
			t.Fatalf("%d windows, want 3: %v", len(windows), body)
		}
		for i, w := range windows {
			wm := w.(map[string]any)
			if got := str(t, wm, "start"); got != wantStarts[i] {
				t.Errorf("window %d starts %s, want %s", i, got, wantStarts[i])
			}
			near(t, fmt.Sprintf("window %d cost", i), num(t, wm, "cost"), 24)
			near(t, fmt.Sprintf("window %d savings", i), num(t, wm, "savings"), 51)
		}
	}
	// 200 kW: infeasible are the starts touching 22:00 or 23:00 local:
	// 20:00, 21:00, 22:00, 23:00 → 12 feasible.
	check(`, "peak_threshold_kw": 200`,
		[]string{"2026-03-02T23:00:00Z", "2026-03-03T00:00:00Z", "2026-03-03T01:00:00Z"}, 200, 12)
	// 260 kW (observed): every window fits.
	check(``, []string{"2026-03-02T21:00:00Z", "2026-03-02T22:00:00Z", "2026-03-02T23:00:00Z"}, 260, 16)

	// The factory form sums its machines' forecasts: one machine, same answer.
	status, body = f.do(t, "POST", "/api/v1/forecast/optimal-schedule", "application/json",
		strings.NewReader(`{"factory_id": "`+fcFactoryID+`", "load_kw": 100, "duration_hours": 3,
		"earliest_start": "2026-03-02T13:00:00Z", "latest_end": "2026-03-03T07:00:00Z", "peak_threshold_kw": 200}`), nil)
	if status != 200 {
		t.Fatalf("factory: status %d: %v", status, body)
	}
	if w := body["windows"].([]any); len(w) != 3 || str(t, w[0].(map[string]any), "start") != "2026-03-02T23:00:00Z" {
		t.Errorf("factory windows %v", w)
	}
}

// TestForecastBadInput: malformed input is a 400 JSON error that says what
// is wrong; an unknown machine is a 404.
func TestForecastBadInput(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	seedForecastPlant(t, pool)
	f := serveStore(t, pool)
	for _, c := range []struct {
		path, code, mention string
		status              int
	}{
		{"/api/v1/forecast/demand?machine_id=" + fcMachineID + "&horizon=4h", CodeInvalid, "1h, 24h, 7d", 400},
		{"/api/v1/forecast/demand?machine_id=not-a-uuid", CodeInvalid, "not a UUID", 400},
		{"/api/v1/forecast/demand", CodeInvalid, "machine_id is required", 400},
		{"/api/v1/forecast/peak?machine_id=42", CodeInvalid, "not a UUID", 400},
		{"/api/v1/forecast/accuracy?machine_id=" + fcMachineID + "&days=0", CodeInvalid, "from 1 to 365", 400},
		{"/api/v1/forecast/accuracy?machine_id=" + fcMachineID + "&horizon=week", CodeInvalid, "1h, 24h, 7d", 400},
		{"/api/v1/forecast/demand?machine_id=" + unknownID, CodeNotFound, unknownID, 404},
	} {
		status, body := f.get(t, c.path)
		msg := wantError(t, c.path, status, body, c.status, c.code)
		if !strings.Contains(msg, c.mention) {
			t.Errorf("%s: message %q does not mention %q", c.path, msg, c.mention)
		}
	}
	for _, c := range []struct{ body, mention string }{
		{`{"load_kw": 10, "duration_hours": 1, "earliest_start": "2026-03-02T13:00:00Z", "latest_end": "2026-03-02T18:00:00Z"}`, "exactly one of machine_id and factory_id"},
		{scheduleBody(`, "peak_threshold_kw": -1`), "peak_threshold_kw"},
		{`{"machine_id": "` + fcMachineID + `", "load_kw": -5, "duration_hours": 1, "earliest_start": "2026-03-02T13:00:00Z", "latest_end": "2026-03-02T18:00:00Z"}`, "load_kw"},
		{`{"machine_id": "` + fcMachineID + `", "load_kw": 5, "duration_hours": 1.1, "earliest_start": "2026-03-02T13:00:00Z", "latest_end": "2026-03-02T18:00:00Z"}`, "multiple of 0.25"},
		{`{"machine_id": "` + fcMachineID + `", "load_kw": 5, "duration_hours": 2, "earliest_start": "2026-03-02T18:00:00Z", "latest_end": "2026-03-02T13:00:00Z"}`, "shorter than duration_hours"},
		{`{"machine_id": "` + fcMachineID + `", "load_kw": 5, "duration_hours": 2, "earliest_start": "yesterday", "latest_end": "2026-03-02T13:00:00Z"}`, "earliest_start"},
		{`{"machine_id": "bad", "load_kw": 5, "duration_hours": 2, "earliest_start": "2026-03-02T13:00:00Z", "latest_end": "2026-03-02T18:00:00Z"}`, "not a UUID"},
	} {
		status, body := f.do(t, "POST", "/api/v1/forecast/optimal-schedule", "application/json", strings.NewReader(c.body), nil)
		msg := wantError(t, c.body, status, body, 400, CodeInvalid)
		if !strings.Contains(msg, c.mention) {
			t.Errorf("%s: message %q does not mention %q", c.body, msg, c.mention)
		}
	}
}

// insertSimHistory writes days of simulated 15-minute and hourly rollups
// (a weekday shape, a quiet weekend, AR(1) noise; seeded) from start.
func insertSimHistory(t testing.TB, pool *pgxpool.Pool, start time.Time, days int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 5))
	var q, h [][]any
	ar := 0.0
	for i := range days * 24 {
		hour := start.Add(time.Duration(i) * time.Hour)
		base := 40.0
		if wd := hour.Weekday(); wd != time.Saturday && wd != time.Sunday && hour.Hour() >= 6 && hour.Hour() < 18 {
			base = 100
		}
		var sum, peak float64
		for k := range 4 {
			ar = 0.7*ar + rng.NormFloat64()*3
			kw := base + ar
			sum += kw
			peak = max(peak, kw)
			q = append(q, []any{hour.Add(time.Duration(k) * 15 * time.Minute), fcMachineID, 1, kw, kw / 4})
		}
		h = append(h, []any{hour, fcMachineID, 4, sum, sum / 4, peak})
	}
	ctx := context.Background()
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"energy_readings_15min"},
		[]string{"bucket", "machine_id", "reading_count", "sum_power_kw", "total_energy_kwh"}, pgx.CopyFromRows(q)); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"energy_readings_1hour"},
		[]string{"bucket", "machine_id", "reading_count", "sum_power_kw", "total_energy_kwh", "peak_demand_kw"}, pgx.CopyFromRows(h)); err != nil {
		t.Fatal(err)
	}
}

// TestForecastRoutesServeIssuedForecasts: 60 days of history; the service
// closes the hour 23:00–24:00 UTC of 2026-03-05 (origin 2026-03-06T00:00Z =
// 01:00 in Berlin, not a local midnight, so no daily forecast) and the next
// two hours. /demand returns the latest
// origin's rows, /peak the hour with the largest predicted kW among them,
// /accuracy the scored first hours.
func TestForecastRoutesServeIssuedForecasts(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	seedForecastPlant(t, pool)
	f := serveStore(t, pool)
	st := store.New(pool)
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	insertSimHistory(t, pool, start, 62)
	svc := forecast.New(forecast.Config{Store: st})
	first := start.Add(60*24*time.Hour - time.Hour)
	for k := range 3 {
		if err := svc.HourClosed(context.Background(), fcMachineID, first.Add(time.Duration(k)*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	origin := first.Add(3 * time.Hour)
	latest, err := st.LatestForecast(context.Background(), fcMachineID, store.Resolution1Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		horizon string
		n       int
	}{{"1h", 4}, {"24h", 24}} {
		status, body := f.get(t, "/api/v1/forecast/demand?machine_id="+fcMachineID+"&horizon="+c.horizon)
		if status != 200 {
			t.Fatalf("%s: %d %v", c.horizon, status, body)
		}
		if got := str(t, body, "origin"); got != origin.Format(time.RFC3339) {
			t.Errorf("%s origin %s, want %s", c.horizon, got, origin.Format(time.RFC3339))
		}
		rows := body["forecast"].([]any)
		if len(rows) != c.n {
			t.Fatalf("%s: %d rows, want %d", c.horizon, len(rows), c.n)
		}
		r0 := rows[0].(map[string]any)
		if str(t, r0, "target_bucket") != origin.Format(time.RFC3339) {
			t.Errorf("%s: first target %v", c.horizon, r0["target_bucket"])
		}
		hours := map[string]float64{"1h": 0.25, "24h": 1}[c.horizon]
		// kW bounds are kWh bounds over the bucket's hours
		near(t, c.horizon+" upper_80_kw", num(t, r0, "upper_80_kw"), num(t, r0, "upper_80")/hours)
		if c.horizon == "24h" {
			near(t, "predicted_kwh h1", num(t, r0, "predicted_kwh"), latest[0].PredictedKWh)
		}
	}
	// 7d: no local midnight has closed, so no daily forecast: an empty list.
	status, body := f.get(t, "/api/v1/forecast/demand?machine_id="+fcMachineID+"&horizon=7d")
	if status != 200 || len(body["forecast"].([]any)) != 0 || body["origin"] != nil {
		t.Errorf("7d: %d %v, want 200 with an empty forecast", status, body)
	}

	want := latest[0]
	for _, r := range latest {
		if r.PredictedKW > want.PredictedKW {
			want = r
		}
	}
	status, body = f.get(t, "/api/v1/forecast/peak?machine_id="+fcMachineID)
	if status != 200 {
		t.Fatalf("peak: %d %v", status, body)
	}
	if got := str(t, body, "peak_time"); got != want.TargetBucket.Format(time.RFC3339) {
		t.Errorf("peak_time %s, want %s", got, want.TargetBucket.Format(time.RFC3339))
	}
	near(t, "peak_kw", num(t, body, "peak_kw"), want.PredictedKW)

	// Two hours after the first origin have closed: hourly step 1 has two
	// scored forecasts (origins first+1h and first+2h), step 2 one.
	status, body = f.get(t, "/api/v1/forecast/accuracy?machine_id="+fcMachineID+"&horizon=24h")
	if status != 200 {
		t.Fatalf("accuracy: %d %v", status, body)
	}
	acc := body["accuracy"].([]any)
	if len(acc) != 2 {
		t.Fatalf("accuracy rows %v, want steps 1 and 2", acc)
	}
	a1 := acc[0].(map[string]any)
	near(t, "step", num(t, a1, "step"), 1)
	near(t, "n", num(t, a1, "n"), 2)
	if c := num(t, a1, "coverage_80"); c < 0 || c > 1 || math.IsNaN(c) {
		t.Errorf("coverage_80 %v", c)
	}
	near(t, "step 2 n", num(t, acc[1].(map[string]any), "n"), 1)

	// Every response matches the OpenAPI document's schema for it.
	checkSchemas(t, f, []string{
		"/api/v1/forecast/demand?machine_id=" + fcMachineID + "&horizon=1h",
		"/api/v1/forecast/demand?machine_id=" + fcMachineID,
		"/api/v1/forecast/demand?machine_id=" + fcMachineID + "&horizon=7d", // empty, nulls
		"/api/v1/forecast/peak?machine_id=" + fcMachineID,
		"/api/v1/forecast/accuracy?machine_id=" + fcMachineID,
		"/api/v1/forecast/demand?machine_id=" + fcMachineID + "&horizon=2d", // the error schema
	})
}

// BenchmarkForecastDemand is GET /api/v1/forecast/demand?horizon=24h on a
// machine with 30 days of hourly forecasts stored (30 × 24 origins × 24
// rows = 17,280 rows), through the full handler stack (router, wrapper,
// store) without the TCP hop. Reports the mean and the 50th/99th
// percentile latency.
func BenchmarkForecastDemand(b *testing.B) {
	pool := testdb.New(b)
	seedForecastPlant(b, pool)
	st := store.New(pool)
	ctx := context.Background()
	o0 := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	for o := range 30 * 24 {
		origin := o0.Add(time.Duration(o) * time.Hour)
		rows := make([]store.ForecastRow, 24)
		for h := range rows {
			rows[h] = store.ForecastRow{MachineID: fcMachineID, Origin: origin, TargetBucket: origin.Add(time.Duration(h) * time.Hour),
				Resolution: store.Resolution1Hour, Horizon: h + 1, PredictedKWh: 50, PredictedKW: 50,
				Lower80: 45, Upper80: 55, Lower95: 40, Upper95: 60, Model: "bench"}
		}
		if err := st.UpsertForecasts(ctx, rows); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `ANALYZE energy_forecasts`); err != nil {
		b.Fatal(err)
	}
	srv := New(Config{Store: st, Logger: slog.New(slog.DiscardHandler)})
	path := "/api/v1/forecast/demand?machine_id=" + fcMachineID + "&horizon=24h"
	// The data is there: the latest origin's 24 hourly rows, or the loop
	// below would time an empty answer.
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	var d demandResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil || rec.Code != 200 || len(d.Forecast) != 24 ||
		d.Origin == nil || !d.Origin.Equal(o0.Add(30*24*time.Hour-time.Hour)) {
		b.Fatalf("latest forecast: %d, %v, %s", rec.Code, err, rec.Body)
	}
	var lat []time.Duration
	for b.Loop() {
		t0 := time.Now()
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		lat = append(lat, time.Since(t0))
		if rec.Code != 200 {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
