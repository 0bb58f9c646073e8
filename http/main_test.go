package http

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	nethttp "net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/enms/enms-analytics/internal/testdb"
	"github.com/enms/enms-analytics/store"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// Fixture ids.
const (
	plantID   = "11111111-1111-4111-8111-111111111111" // UTC plant, flat tariff 0.20 EUR/kWh
	berlinID  = "22222222-2222-4222-8222-222222222222" // Europe/Berlin plant, no tariff
	m1ID      = "aaaaaaaa-0000-4000-8000-000000000001" // compressor with 4 hours of data
	m2ID      = "aaaaaaaa-0000-4000-8000-000000000002" // pump without data, inactive
	m3ID      = "aaaaaaaa-0000-4000-8000-000000000003" // Berlin motor with daily data
	unknownID = "aaaaaaaa-0000-4000-8000-0000000000ff"
)

// window0 is the 4-hour window of m1's data: 2026-01-05 00:00–04:00 UTC.
var window0 = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

// lockedBuffer collects the access log.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type fixture struct {
	pool *pgxpool.Pool
	srv  *Server
	ts   *httptest.Server
	log  *lockedBuffer
}

// seed writes the fixture plant. m1's hours h = 0..3 from window0 have mean
// power P_h = 10·(h+1) kW over 60 readings (sum_power_kw = 60·P_h), energy
// P_h kWh, a 15-minute peak of P_h + 5 kW at bucket + 15 min, and 100 units
// produced. Totals over the window (hand computed):
//
//	energy = 10+20+30+40 = 100 kWh          units = 400
//	avg power = 60·100 / 240 = 25 kW       peak = 45 kW at 03:15
//	SEC = 100/400 = 0.25 kWh/unit          load factor = 25/45
//	cost = 100 × 0.20 = 20 EUR             CO₂ = 100 × 0.5 = 50 kg (region 'default')
func seed(t testing.TB, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, q, args...); err != nil {
			t.Fatalf("seed: %v\n%s", err, q)
		}
	}
	exec(`INSERT INTO factories (id, name, timezone) VALUES ($1, 'Plant A', 'UTC'), ($2, 'Berlin Works', 'Europe/Berlin')`, plantID, berlinID)
	exec(`INSERT INTO machines (id, factory_id, name, type, rated_power_kw, data_interval_seconds, is_active)
	      VALUES ($1, $4, 'Compressor 1', 'compressor', 55, 60, true),
	             ($2, $4, 'Pump 7', 'pump', NULL, 60, false),
	             ($3, $5, 'Motor B', 'motor', 11, 60, true)`, m1ID, m2ID, m3ID, plantID, berlinID)
	exec(`INSERT INTO energy_tariffs (factory_id, name, rate_per_kwh, currency, is_time_of_use) VALUES ($1, 'flat', 0.20, 'EUR', false)`, plantID)
	exec(`INSERT INTO carbon_factors (region, emission_factor_kg_co2_per_kwh) VALUES ('default', 0.5)`)
	for h := range 4 {
		p := float64(10 * (h + 1))
		b := window0.Add(time.Duration(h) * time.Hour)
		exec(`INSERT INTO energy_readings_1hour (bucket, machine_id, reading_count, sum_power_kw, min_power_kw, max_power_kw,
		        total_energy_kwh, peak_demand_kw, peak_demand_at)
		      VALUES ($1, $2, 60, $3, $4, $5, $6, $7, $8)`, b, m1ID, 60*p, p-2, p+8, p, p+5, b.Add(15*time.Minute))
		exec(`INSERT INTO production_data_1hour (bucket, machine_id, reading_count, total_production_count, running_seconds)
		      VALUES ($1, $2, 60, 100, 3600)`, b, m1ID)
	}
}

func setup(t *testing.T, mutate ...func(*Config)) *fixture {
	t.Helper()
	pool := testdb.New(t)
	seed(t, pool)
	return serveStore(t, pool, mutate...)
}

func serveStore(t *testing.T, pool *pgxpool.Pool, mutate ...func(*Config)) *fixture {
	t.Helper()
	logBuf := &lockedBuffer{}
	cfg := Config{Store: store.New(pool), Logger: slog.New(slog.NewJSONHandler(logBuf, nil)), Version: "test-1"}
	for _, m := range mutate {
		m(&cfg)
	}
	srv := New(cfg)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return &fixture{pool: pool, srv: srv, ts: ts, log: logBuf}
}

// get requests path and decodes the JSON body into a map.
func (f *fixture) get(t *testing.T, path string) (int, map[string]any) {
	t.Helper()
	return f.do(t, "GET", path, "", nil, nil)
}

func (f *fixture) do(t *testing.T, method, path, contentType string, body io.Reader, header map[string]string) (int, map[string]any) {
	t.Helper()
	req, err := nethttp.NewRequest(method, f.ts.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := f.ts.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/json") {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("%s %s: body is not JSON: %v\n%s", method, path, err, raw)
		}
	}
	return resp.StatusCode, m
}

// num returns the JSON number at the dotted path, failing on anything that
// is not a JSON number (a numeric string or null included).
func num(t *testing.T, m map[string]any, path string) float64 {
	t.Helper()
	v := at(t, m, path)
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%s = %#v, want a JSON number", path, v)
	}
	f, err := n.Float64()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func str(t *testing.T, m map[string]any, path string) string {
	t.Helper()
	v := at(t, m, path)
	s, ok := v.(string)
	if !ok {
		t.Fatalf("%s = %#v, want a string", path, v)
	}
	return s
}

func at(t *testing.T, m map[string]any, path string) any {
	t.Helper()
	var cur any = m
	for _, k := range strings.Split(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("%s: %q is not inside an object", path, k)
		}
		if cur, ok = obj[k]; !ok {
			t.Fatalf("%s: no key %q in %v", path, k, obj)
		}
	}
	return cur
}

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// wantError checks a JSON error body with the status and code.
func wantError(t *testing.T, what string, status int, body map[string]any, wantStatus int, wantCode string) string {
	t.Helper()
	if status != wantStatus {
		t.Errorf("%s: status %d, want %d (body %v)", what, status, wantStatus, body)
	}
	if body == nil {
		t.Fatalf("%s: no JSON body", what)
	}
	if code := str(t, body, "error.code"); code != wantCode {
		t.Errorf("%s: code %q, want %q", what, code, wantCode)
	}
	msg := str(t, body, "error.message")
	if len(msg) < 15 {
		t.Errorf("%s: message %q is too short to help anyone", what, msg)
	}
	return msg
}

func kpiPath(route, machine string, start, end time.Time) string {
	return "/api/v1/kpi/" + route + "?machine_id=" + machine + "&start=" + start.Format(time.RFC3339) + "&end=" + end.Format(time.RFC3339)
}
