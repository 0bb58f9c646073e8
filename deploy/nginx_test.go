// Package deploy_test checks the deployment files: the nginx site config
// in front of the real service, and the Dockerfile and compose file against
// the configuration code.
package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	nethttp "net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	apihttp "github.com/enms/enms-analytics/http"
	"github.com/enms/enms-analytics/internal/testdb"
	"github.com/enms/enms-analytics/store"
)

func TestMain(m *testing.M) { testdb.Main(m) }

const nginxBinary = "/usr/sbin/nginx"

const (
	factoryID = "11111111-1111-4111-8111-111111111111"
	machineID = "aaaaaaaa-0000-4000-8000-000000000001"
)

// TestNginxProxy starts the real nginx with deploy/nginx/enms-analytics.conf
// (only the upstream address and the listen port replaced) in front of the
// API on loopback, and talks to the API through /api/analytics/.
func TestNginxProxy(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(nginxBinary); err != nil {
		t.Fatalf("nginx is not installed at %s: run `make deps`, which installs nginx-light (%v)", nginxBinary, err)
	}
	pool := testdb.New(t)
	ctx := context.Background()
	for _, q := range []string{
		`INSERT INTO factories (id, name) VALUES ('` + factoryID + `', 'Plant A')`,
		`INSERT INTO machines (id, factory_id, name, type) VALUES ('` + machineID + `', '` + factoryID + `', 'Compressor 1', 'compressor')`,
		// One hour at 30 kW: 60 readings summing to 1800 kW, 30 kWh.
		`INSERT INTO energy_readings_1hour (bucket, machine_id, reading_count, sum_power_kw, total_energy_kwh, peak_demand_kw, peak_demand_at)
		 VALUES ('2026-01-05T00:00:00Z', '` + machineID + `', 60, 1800, 30, 32, '2026-01-05T00:30:00Z')`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	api := apihttp.New(apihttp.Config{Store: store.New(pool), Logger: slog.New(slog.DiscardHandler), Version: "proxy-test"})
	upstream := httptest.NewServer(api)
	t.Cleanup(upstream.Close)

	base := startNginx(t, strings.TrimPrefix(upstream.URL, "http://")) + "/api/analytics/"
	client := &nethttp.Client{Timeout: 10 * time.Second}
	get := func(path string) (*nethttp.Response, []byte) {
		t.Helper()
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	decode := func(what string, body []byte) map[string]any {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("%s: not JSON: %v\n%s", what, err, body)
		}
		return m
	}

	resp, body := get("health")
	if h := decode("health", body); resp.StatusCode != 200 || h["status"] != "healthy" || h["version"] != "proxy-test" {
		t.Errorf("health through nginx: %d %s", resp.StatusCode, body)
	}
	// nginx's $request_id (32 hex digits) reaches the API, which echoes it.
	if id := resp.Header.Get("X-Request-ID"); !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
		t.Errorf("X-Request-ID through nginx = %q, want nginx's $request_id", id)
	}

	// A KPI, with a "+01:00" offset in the query that must survive the rewrite:
	// 01:00+01:00 to 02:00+01:00 is the hour 00:00–01:00 UTC of the fixture.
	resp, body = get("kpi/all?machine_id=" + machineID + "&start=2026-01-05T01:00:00%2B01:00&end=2026-01-05T02:00:00%2B01:00")
	k := decode("kpi", body)
	if resp.StatusCode != 200 {
		t.Fatalf("kpi through nginx: %d %s", resp.StatusCode, body)
	}
	totals := k["totals"].(map[string]any)
	if totals["total_energy_kwh"] != 30.0 || totals["avg_power_kw"] != 30.0 || k["start"] != "2026-01-05T00:00:00Z" {
		t.Errorf("kpi through nginx: %s", body)
	}

	// An error keeps its status and JSON body.
	resp, body = get("kpi/sec?machine_id=nope&start=2026-01-05&end=2026-01-06")
	e := decode("error", body)
	if resp.StatusCode != 400 || e["error"].(map[string]any)["code"] != "invalid" {
		t.Errorf("error through nginx: %d %s", resp.StatusCode, body)
	}

	// The docs page, and every link on it, resolved against the proxied URL.
	resp, body = get("docs")
	if resp.StatusCode != 200 || !strings.Contains(string(body), "/api/v1/kpi/all") {
		t.Fatalf("docs through nginx: %d", resp.StatusCode)
	}
	docsURL, _ := url.Parse(base + "docs")
	links := regexp.MustCompile(`(?:href|src)="([^"#][^"]*)"`).FindAllStringSubmatch(string(body), -1)
	if len(links) < 3 {
		t.Fatalf("docs page has only %d links", len(links))
	}
	for _, l := range links {
		ref, err := url.Parse(l[1])
		if err != nil {
			t.Fatal(err)
		}
		target := docsURL.ResolveReference(ref)
		if !strings.HasPrefix(target.Path, "/api/analytics/") {
			t.Errorf("docs link %q leaves the proxy prefix: %s", l[1], target.Path)
			continue
		}
		r, err := client.Get(target.String())
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != 200 {
			t.Errorf("docs link %q → %s → %d through nginx", l[1], target.Path, r.StatusCode)
		}
	}
	resp, body = get("openapi.json")
	if resp.StatusCode != 200 || decode("openapi", body)["openapi"] != "3.0.3" {
		t.Errorf("openapi through nginx: %d", resp.StatusCode)
	}

	// The service's Prometheus metrics, through the proxy: the text
	// exposition format with the API's request counter, which has counted
	// the KPI request above.
	resp, body = get("metrics")
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("metrics through nginx: %d %q, want 200 text/plain", resp.StatusCode, ct)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^# TYPE enms_http_requests_total counter$`),
		regexp.MustCompile(`(?m)^enms_http_requests_total\{method="GET",route="/api/v1/kpi/all",status="200"\} 1$`),
	} {
		if !want.Match(body) {
			t.Errorf("metrics through nginx lack %s:\n%s", want, body)
		}
	}

	// A redirect of the service (bunrouter drops a trailing slash) stays
	// under the prefix.
	noFollow := &nethttp.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*nethttp.Request, []*nethttp.Request) error { return nethttp.ErrUseLastResponse }}
	r, err := noFollow.Get(base + "machines/?active=true")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	loc, err := r.Location()
	if err != nil || r.StatusCode != 301 || loc.Host != docsURL.Host || loc.Path != "/api/analytics/machines" || loc.RawQuery != "active=true" {
		t.Errorf("redirect through nginx: %d Location %q, want the proxy's /api/analytics/machines?active=true",
			r.StatusCode, r.Header.Get("Location"))
	}

	// A body over client_max_body_size is refused by nginx in the API's
	// error format (the service's own limit is the same 1 MiB).
	r, err = client.Post(base+"forecast/optimal-schedule", "application/json", strings.NewReader(strings.Repeat(" ", 2<<20)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 413 || decode("413", body)["error"].(map[string]any)["code"] != "too_large" {
		t.Errorf("oversized body through nginx: %d %s", r.StatusCode, body)
	}

	// With the service gone, nginx answers in the API's error format.
	upstream.Close()
	resp, body = get("health")
	if resp.StatusCode != 502 || decode("502", body)["error"].(map[string]any)["code"] != "unavailable" {
		t.Errorf("service down: %d %s", resp.StatusCode, body)
	}

	// The rate limit: 20 r/s with a burst of 40, so 80 back-to-back requests
	// cannot all pass; the refused ones get 429 in the API's error format.
	limited := 0
	for range 80 {
		resp, body = get("health")
		if resp.StatusCode == 429 {
			limited++
			if decode("429", body)["error"].(map[string]any)["code"] != "rate_limited" {
				t.Errorf("429 body %s", body)
			}
		}
	}
	if limited == 0 {
		t.Error("80 back-to-back requests were all let through: no rate limit")
	}
}

// startNginx runs nginx with the site config pointing at upstream (host:port)
// and returns its base URL. nginx stops when the test ends.
func startNginx(t *testing.T, upstream string) string {
	t.Helper()
	dir := t.TempDir()
	site, err := os.ReadFile(filepath.Join("nginx", "enms-analytics.conf"))
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	conf := string(site)
	for old, repl := range map[string]string{
		"server analytics:8001;": "server " + upstream + ";",
		"listen 8080;":           fmt.Sprintf("listen 127.0.0.1:%d;", port),
	} {
		if strings.Count(conf, old) != 1 {
			t.Fatalf("enms-analytics.conf should contain %q exactly once", old)
		}
		conf = strings.Replace(conf, old, repl, 1)
	}
	sitePath := filepath.Join(dir, "site.conf")
	user := ""
	if os.Geteuid() == 0 {
		user = "user root root;" // workers may then read the test's private directory
	}
	main := fmt.Sprintf(`%s
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log info;
events { worker_connections 256; }
http {
    access_log %[2]s/access.log;
%[4]s    include %[3]s;
}
`, user, dir, sitePath, tempPaths(t, dir))
	mainPath := filepath.Join(dir, "nginx.conf")
	for p, c := range map[string]string{sitePath: conf, mainPath: main} {
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", mainPath}
	if out, err := exec.Command(nginxBinary, append(args, "-t")...).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t rejects the config: %v\n%s", err, out)
	}
	cmd := exec.Command(nginxBinary, append(args, "-g", "daemon off;")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT) // graceful shutdown
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitListening(t, addr, exited, dir)
	return "http://" + addr
}

// waitListening waits until addr accepts connections, nginx exits, or 10 s
// pass, checking every 20 ms.
func waitListening(t *testing.T, addr string, exited <-chan error, dir string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited before listening: %v\n%s", err, log)
		case <-deadline:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not listen on %s within 10 s\n%s", addr, log)
		case <-tick.C:
		}
	}
}

// tempPaths points every temporary directory this nginx was built with
// (nginx -V: --http-client-body-temp-path=…, --http-proxy-temp-path=…) into
// dir, so nginx needs no write access to /var/lib/nginx.
func tempPaths(t *testing.T, dir string) string {
	t.Helper()
	out, err := exec.Command(nginxBinary, "-V").CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -V: %v\n%s", err, out)
	}
	var b strings.Builder
	for _, m := range regexp.MustCompile(`--http-([a-z-]+)-temp-path=`).FindAllStringSubmatch(string(out), -1) {
		name := strings.ReplaceAll(m[1], "-", "_")
		fmt.Fprintf(&b, "    %s_temp_path %s;\n", name, filepath.Join(dir, name))
	}
	if !strings.Contains(b.String(), "proxy_temp_path") {
		fmt.Fprintf(&b, "    proxy_temp_path %s;\n", filepath.Join(dir, "proxy"))
	}
	return b.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
