package http

import (
	"encoding/json"
	"io"
	nethttp "net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bunrouter"
)

func TestRequestIDAndAccessLog(t *testing.T) {
	t.Parallel()
	f := setup(t)
	req, _ := nethttp.NewRequest("GET", f.ts.URL+"/api/v1/machines?type=pump", nil)
	req.Header.Set("X-Request-ID", "client-id-42")
	resp, err := f.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-ID"); got != "client-id-42" {
		t.Errorf("X-Request-ID %q, want the client's", got)
	}
	resp, err = f.ts.Client().Get(f.ts.URL + "/api/v1/machines/not-a-uuid")
	if err != nil {
		t.Fatal(err)
	}
	var body errorBody
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	generated := resp.Header.Get("X-Request-ID")
	if len(generated) != 24 || body.Error.RequestID != generated {
		t.Errorf("generated id %q, error body id %q", generated, body.Error.RequestID)
	}

	var found bool
	for _, line := range strings.Split(strings.TrimSpace(f.log.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["msg"] != "http request" || rec["request_id"] != "client-id-42" {
			continue
		}
		found = true
		for _, k := range []string{"method", "path", "route", "status", "duration_ms", "bytes", "remote_addr"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("access log lacks %q: %v", k, rec)
			}
		}
		if rec["route"] != "/api/v1/machines" || rec["status"] != float64(200) {
			t.Errorf("access log %v", rec)
		}
	}
	if !found {
		t.Errorf("no access log line for request client-id-42 in\n%s", f.log.String())
	}
}

func TestPanicRecovery(t *testing.T) {
	t.Parallel()
	f := setup(t)
	testRoutes(f.srv)
	resp, err := f.ts.Client().Get(f.ts.URL + "/api/v1/test/panic")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || !strings.Contains(string(raw), `"code":"internal"`) {
		t.Errorf("panic: %d %s", resp.StatusCode, raw)
	}
	if strings.Contains(string(raw), "deadbeef") || strings.Contains(string(raw), "goroutine") {
		t.Errorf("panic detail reached the client: %s", raw)
	}
	if !strings.Contains(f.log.String(), "deadbeef") {
		t.Error("the panic was not logged")
	}
	// The server still serves.
	if status, _ := f.get(t, "/health"); status != 200 {
		t.Errorf("after a panic /health = %d", status)
	}
}

func TestCORS(t *testing.T) {
	t.Parallel()
	preflight := func(f *fixture, origin string) nethttp.Header {
		req, _ := nethttp.NewRequest("OPTIONS", f.ts.URL+"/api/v1/machines", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "GET")
		resp, err := f.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header
	}
	simple := func(f *fixture, origin string) nethttp.Header {
		req, _ := nethttp.NewRequest("GET", f.ts.URL+"/api/v1/machines", nil)
		req.Header.Set("Origin", origin)
		resp, err := f.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header
	}
	// Default: no CORS headers at all.
	def := setup(t)
	if h := simple(def, "https://evil.example"); h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("default config sent CORS headers: %v", h)
	}
	// Listed origin: echoed, with credentials; other origins get nothing.
	listed := setup(t, func(c *Config) { c.CORSOrigins = []string{"https://portal.plant.example"} })
	h := preflight(listed, "https://portal.plant.example")
	if h.Get("Access-Control-Allow-Origin") != "https://portal.plant.example" || h.Get("Access-Control-Allow-Credentials") != "true" ||
		!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("listed origin preflight: %v", h)
	}
	if h := simple(listed, "https://other.example"); h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("unlisted origin allowed: %v", h)
	}
	// Wildcard: any origin, never with credentials.
	wild := setup(t, func(c *Config) { c.CORSOrigins = []string{"*"} })
	h = simple(wild, "https://anyone.example")
	if h.Get("Access-Control-Allow-Origin") != "*" || h.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("wildcard: %v", h)
	}
}

func TestBearerTokenOnMutatingRoutes(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *Config) { c.APIToken = "s3cret" })
	testRoutes(f.srv)
	body := func() io.Reader { return strings.NewReader(`{"hours": 1}`) }
	status, b := f.do(t, "POST", "/api/v1/test/echo", "application/json", body(), nil)
	wantError(t, "no token", status, b, 401, CodeUnauthorized)
	status, b = f.do(t, "POST", "/api/v1/test/echo", "application/json", body(), map[string]string{"Authorization": "Bearer wrong"})
	wantError(t, "wrong token", status, b, 401, CodeUnauthorized)
	status, _ = f.do(t, "POST", "/api/v1/test/echo", "application/json", body(), map[string]string{"Authorization": "Bearer s3cret"})
	if status != 200 {
		t.Errorf("right token: %d", status)
	}
	// Reads stay open.
	if status, _ := f.get(t, "/api/v1/machines"); status != 200 {
		t.Errorf("GET with a token configured: %d", status)
	}
}

func TestRouteTimeout(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.srv.register(Route{Method: "GET", Path: "/api/v1/test/slow", Timeout: 50 * time.Millisecond,
		Handler: func(w nethttp.ResponseWriter, req bunrouter.Request) error {
			// pg_sleep outlasts the route's 50 ms: the query is cancelled.
			_, err := f.pool.Exec(req.Context(), `SELECT pg_sleep(5)`)
			return err
		}})
	start := time.Now()
	status, b := f.get(t, "/api/v1/test/slow")
	wantError(t, "slow route", status, b, 503, CodeTimeout)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("timeout took %v, want about 50 ms", d)
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	f := setup(t, func(c *Config) { c.Metrics = reg })
	f.get(t, "/api/v1/machines")
	f.get(t, "/api/v1/machines/not-a-uuid")
	resp, err := f.ts.Client().Get(f.ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`enms_http_requests_total{method="GET",route="/api/v1/machines",status="200"} 1`,
		`enms_http_requests_total{method="GET",route="/api/v1/machines/{id}",status="400"} 1`,
		`enms_http_request_duration_seconds_bucket`,
	} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// A second server on the same registry shares the collectors.
	New(Config{Store: f.srv.cfg.Store, Logger: f.srv.cfg.Logger, Metrics: reg})
}
