package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	nethttp "net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/enms/enms-analytics/baseline"
	apihttp "github.com/enms/enms-analytics/http"
	"github.com/enms/enms-analytics/internal/testdb"
	"github.com/enms/enms-analytics/internal/workertest"
	"github.com/enms/enms-analytics/listener"
	"github.com/enms/enms-analytics/store"
)

// bundle is one test's database, worker, API server and browser.
type bundle struct {
	pool *pgxpool.Pool
	st   *store.Store
	url  string // the API's base URL, http://127.0.0.1:port
}

// setup starts the worker (with the baseline trainer) and the API (its
// Config changed by mutate), with the API also reachable under nginx's
// prefix: /api/analytics/x → /api/v1/x.
func setup(t testing.TB, mutate ...func(*apihttp.Config)) *bundle {
	t.Helper()
	chromiumPath(t) // fail before the database work when there is no browser
	pool := testdb.New(t)
	st := store.New(pool)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	w, err := listener.New(listener.Config{Store: st, Logger: logger, PollInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	w.HandleTrain(baseline.New(baseline.DefaultConfig(st)).TrainHandler())
	workertest.Start(t, w)

	cfg := apihttp.Config{Store: st, Logger: logger}
	for _, m := range mutate {
		m(&cfg)
	}
	api := apihttp.New(cfg)
	mux := nethttp.NewServeMux()
	mux.Handle("/", api)
	mux.HandleFunc("/api/analytics/", func(w nethttp.ResponseWriter, r *nethttp.Request) {
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/api/v1/" + strings.TrimPrefix(r.URL.Path, "/api/analytics/")
		r2.URL.RawPath = ""
		api.ServeHTTP(w, r2)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &nethttp.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("shutdown API: %v", err)
		}
		<-served
	})
	return &bundle{pool: pool, st: st, url: "http://" + ln.Addr().String()}
}

// chromiumPath is the browser the tests drive.
func chromiumPath(t testing.TB) string {
	t.Helper()
	p := os.Getenv("CHROMIUM_PATH")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if fi, err := os.Stat(p); err != nil || fi.IsDir() {
		t.Fatalf("Chromium is not installed at %s, and these end-to-end tests need it: run `make deps` (it installs the chromium package), or set CHROMIUM_PATH", p)
	}
	return p
}

// page is one browser tab with what it logged.
type page struct {
	ctx context.Context
	mu  sync.Mutex
	// problems are console errors and warnings, uncaught exceptions and
	// browser log errors (failed loads).
	problems []string
	requests []string
}

// newBrowser starts a fresh headless Chromium (own profile) and opens a tab.
func newBrowser(t testing.TB) *page {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		acancel()
	})
	p := &page{ctx: ctx}
	// Listen starts the browser on ctx (no timeout: it would bound the
	// browser's life) and records what the tab reports.
	err := chromedp.Listen(ctx, func(ev any) {
		p.mu.Lock()
		defer p.mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeWarning || e.Type == runtime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range e.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				p.problems = append(p.problems, fmt.Sprintf("console.%s: %s", e.Type, strings.Join(args, " ")))
			}
		case *runtime.EventExceptionThrown:
			msg := e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil {
				msg += " " + e.ExceptionDetails.Exception.Description
			}
			p.problems = append(p.problems, "exception: "+msg)
		case *cdplog.EventEntryAdded:
			if e.Entry.Level == cdplog.EntryLevelError {
				p.problems = append(p.problems, fmt.Sprintf("log (%s): %s %s", e.Entry.Source, e.Entry.Text, e.Entry.URL))
			}
		case *network.EventRequestWillBeSent:
			p.requests = append(p.requests, e.Request.URL)
		}
	})
	if err != nil {
		t.Fatalf("start Chromium (%s): %v", chromiumPath(t), err)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("enable network events: %v", err)
	}
	return p
}

// reset forgets what the tab logged so far.
func (p *page) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.problems, p.requests = nil, nil
}

func (p *page) logged() (problems, requests []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.problems...), append([]string(nil), p.requests...)
}

// run runs steps with a timeout.
func (p *page) run(t testing.TB, what string, timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// get runs one action that returns a value, with a timeout.
func get[T any](t testing.TB, p *page, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// open navigates to url and waits for the page's body[data-ready]; it
// returns the page's own figure of when it was ready (ms after navigation
// start, performance.now()).
func (p *page) open(t testing.TB, url string) float64 {
	t.Helper()
	p.run(t, "open "+url, 45*time.Second, // generous: a loaded CI machine, not a speed check
		chromedp.Navigate(url),
		chromedp.WaitReady(chromedp.CSS("body[data-ready]")))
	return get(t, p, "ready time", chromedp.Evaluate[float64](`window.__readyMs`))
}

// text returns the text of the first visible node matching sel.
func (p *page) text(t testing.TB, sel string) string {
	t.Helper()
	return strings.TrimSpace(get(t, p, "read "+sel, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible)))
}

// count returns how many nodes match sel now (without waiting).
func (p *page) count(t testing.TB, sel string) int {
	t.Helper()
	q, _ := json.Marshal(sel)
	return get(t, p, "count "+sel, chromedp.Evaluate[int](`document.querySelectorAll(`+string(q)+`).length`))
}

var artifactsOnce sync.Once
var artifactsDir string

// screenshot writes a full-page PNG and logs its path.
func (p *page) screenshot(t testing.TB, name string) string {
	t.Helper()
	artifactsOnce.Do(func() {
		base := os.Getenv("ARTIFACTS_DIR")
		if base == "" {
			base = filepath.Join(os.TempDir(), "enms-e2e-artifacts")
		} else {
			base = filepath.Join(base, "e2e")
		}
		artifactsDir = base
	})
	if err := os.MkdirAll(artifactsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	png := get(t, p, "screenshot "+name, chromedp.FullScreenshot(100))
	path := filepath.Join(artifactsDir, regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(name, "_")+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	return path
}

// plant is a factory with machines.
type plant struct {
	factoryID string
	machines  map[string]string // name → id
}

func (b *bundle) plant(t testing.TB, factory string, machines map[string]string) plant {
	t.Helper()
	ctx := context.Background()
	p := plant{machines: map[string]string{}}
	if err := b.pool.QueryRow(ctx, `INSERT INTO factories (name, timezone) VALUES ($1, 'UTC') RETURNING id::text`, factory).Scan(&p.factoryID); err != nil {
		t.Fatal(err)
	}
	for name, typ := range machines {
		var id string
		err := b.pool.QueryRow(ctx, `INSERT INTO machines (factory_id, name, type, rated_power_kw, data_interval_seconds)
			VALUES ($1, $2, $3, 150, 60) RETURNING id::text`, p.factoryID, name, typ).Scan(&id)
		if err != nil {
			t.Fatal(err)
		}
		p.machines[name] = id
	}
	return p
}

// pagesMachine gives every UI page something to draw: a factory with a
// compressor and a pump, the compressor with 90 days of hourly data ending
// at the current hour, an active baseline trained on all of it, an open
// 3-hour critical episode ending in the last hour (inside the anomaly
// page's default 7-day window) and a 24-hour forecast from the data's end.
// It returns the compressor's id and the episode's.
func (b *bundle) pagesMachine(t testing.TB, factory string) (machineID, anomalyID string) {
	t.Helper()
	m := b.plant(t, factory, map[string]string{"Compressor 1": "compressor", "Pump 2": "pump"}).machines["Compressor 1"]
	end := time.Now().UTC().Truncate(time.Hour)
	b.insertHours(t, m, end, 90*24, 1)
	if row := b.train(t, m, []string{"production_count"}, end.Add(-90*24*time.Hour), end); row.Status != "done" {
		t.Fatalf("training on 90 days: %s %v", row.Status, row.Error)
	}
	anomalyID = b.anomaly(t, m, end.Add(-time.Hour), 3, "critical")
	b.forecast(t, m, end)
	return m, anomalyID
}

// insertHours writes n running hours ending at end (exclusive) straight into
// the hourly rollups: units ~ U(0, 100), kWh = 12 + 0.8·units + N(0, 2²).
// The seed makes the data the same on every run.
func (b *bundle) insertHours(t testing.TB, machineID string, end time.Time, n int, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	var energy, prod [][]any
	for i := range n {
		h := end.Add(-time.Duration(n-i) * time.Hour)
		units := float64(rng.IntN(101))
		kwh := 12 + 0.8*units + 2*rng.NormFloat64()
		energy = append(energy, []any{h, machineID, 60, 60 * kwh, kwh, kwh, kwh})
		prod = append(prod, []any{h, machineID, 60, int64(units), 3600.0, "running"})
	}
	ctx := context.Background()
	if _, err := b.pool.CopyFrom(ctx, pgx.Identifier{"energy_readings_1hour"},
		[]string{"bucket", "machine_id", "reading_count", "sum_power_kw", "total_energy_kwh", "max_power_kw", "peak_demand_kw"},
		pgx.CopyFromRows(energy)); err != nil {
		t.Fatalf("copy energy_readings_1hour: %v", err)
	}
	if _, err := b.pool.CopyFrom(ctx, pgx.Identifier{"production_data_1hour"},
		[]string{"bucket", "machine_id", "reading_count", "total_production_count", "running_seconds", "dominant_mode"},
		pgx.CopyFromRows(prod)); err != nil {
		t.Fatalf("copy production_data_1hour: %v", err)
	}
}

// anomaly inserts an open episode of hours hours ending at last.
func (b *bundle) anomaly(t testing.TB, machineID string, last time.Time, hours int, severity string) string {
	t.Helper()
	var id string
	err := b.pool.QueryRow(context.Background(), `
		INSERT INTO anomalies (machine_id, detected_at, last_hour, hour_count, anomaly_type, severity,
			metric_name, metric_value, expected_value, deviation_percent, deviation_std_dev, detection_method, confidence_score)
		VALUES ($1, $2, $3, $4, 'energy_spike', $5, 'total_energy_kwh', 140, 60, 133.3, 4.2, 'rolling_baseline', 0.99)
		RETURNING id::text`, machineID, last.Add(-time.Duration(hours-1)*time.Hour), last, hours, severity).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// forecast inserts a 24-hour hourly forecast made at origin: 60 kWh per
// hour with ±8 (80 %) and ±14 (95 %) kWh bands and a peak of 90 kWh at
// hour 6.
func (b *bundle) forecast(t testing.TB, machineID string, origin time.Time) {
	t.Helper()
	var rows [][]any
	for h := 1; h <= 24; h++ {
		kwh := 60.0
		if h == 6 {
			kwh = 90
		}
		rows = append(rows, []any{machineID, origin, origin.Add(time.Duration(h-1) * time.Hour), "1hour", h,
			kwh, kwh, kwh - 8, kwh + 8, kwh - 14, kwh + 14, "seasonal_naive"})
	}
	_, err := b.pool.CopyFrom(context.Background(), pgx.Identifier{"energy_forecasts"},
		[]string{"machine_id", "origin", "target_bucket", "resolution", "horizon", "predicted_kwh", "predicted_kw",
			"lower_80", "upper_80", "lower_95", "upper_95", "model"}, pgx.CopyFromRows(rows))
	if err != nil {
		t.Fatalf("copy energy_forecasts: %v", err)
	}
}

// train queues a training request the way an SQL client does and waits for
// the worker's answer.
func (b *bundle) train(t testing.TB, machineID string, drivers []string, start, end time.Time) store.TrainRequestRow {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	id, err := b.st.InsertTrainRequest(ctx, store.NewTrainRequest{MachineID: machineID, Drivers: drivers,
		TrainingStart: start, TrainingEnd: end, RequestedBy: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	row, err := b.st.WaitTrainRequest(ctx, id)
	if err != nil {
		t.Fatalf("wait for training request %s: %v", id, err)
	}
	return row
}
