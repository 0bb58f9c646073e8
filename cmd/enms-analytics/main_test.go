package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	nethttp "net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/enms/enms-analytics/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// startServe runs the real serve wiring against a fresh database on a free
// port and returns the API's base URL; the service stops when the test ends.
func startServe(t *testing.T, env map[string]string) string {
	t.Helper()
	getenv := func(k string) string { return env[k] }
	cfg, err := LoadConfig(getenv)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	go func() {
		done <- serve(ctx, cfg, logger, serveOptions{Listener: ln, Ready: func(a string) { ready <- a }})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve returned %v", err)
		}
	})
	select {
	case addr := <-ready:
		return "http://" + addr
	case err := <-done:
		t.Fatalf("serve stopped before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve not ready within 30s")
	}
	return ""
}

func TestServeHealth(t *testing.T) {
	t.Parallel()
	base := startServe(t, map[string]string{"DATABASE_URL": testdb.URL(t)})
	for _, path := range []string{"/health", "/api/v1/health"} {
		resp, err := nethttp.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Status   string `json:"status"`
			Database struct {
				Status           string `json:"status"`
				MigrationVersion int64  `json:"migration_version"`
			} `json:"database"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s: decode: %v", path, err)
		}
		if resp.StatusCode != 200 || body.Status != "healthy" || body.Database.Status != "connected" || body.Database.MigrationVersion < 1 {
			t.Errorf("%s: status %d body %+v", path, resp.StatusCode, body)
		}
	}
}

func TestConfigRejectsMalformedValues(t *testing.T) {
	t.Parallel()
	for name, value := range map[string]string{
		"API_PORT": "eighty", "BASELINE_MIN_R2": "high", "HOUR_CLOSE_GRACE": "10", "MIGRATE_ON_START": "maybe",
		"ANOMALY_CONTAMINATION": "0", "LOG_LEVEL": "loud",
	} {
		_, err := LoadConfig(func(k string) string {
			if k == name {
				return value
			}
			return ""
		})
		if err == nil {
			t.Errorf("%s=%q accepted", name, value)
		}
	}
	cfg, err := LoadConfig(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	// Defaults from DESIGN §5 / the EnMS service.
	if cfg.APIPort != 8001 || cfg.BaselineMinSamples != 1000 || cfg.BaselineMinR2 != 0.80 || cfg.AnomalyContamination != 0.0005 || cfg.HourCloseGrace != 10*time.Minute || cfg.DatabaseURL != "" {
		t.Errorf("defaults: %+v", cfg)
	}
}

// TestServeRunsTheAnalytics drives the real wiring through the database
// only, as a plant would: ten days of hourly readings for one machine are
// written with plain SQL, and every closed hour must reach the anomaly
// scorer, the rolling baseline, the forecaster and the daily KPI snapshot;
// then a training request inserted with plain SQL must end done or
// rejected, never stay pending.
func TestServeRunsTheAnalytics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.URL(t)
	pool := testdb.Pool(t, url)
	const machine = "33333333-3333-3333-3333-333333333333"
	_, err := pool.Exec(ctx, `
		INSERT INTO factories (id, name, timezone) VALUES ('44444444-4444-4444-4444-444444444444', 'Wiring Plant', 'UTC');
		INSERT INTO machines (id, factory_id, name, type, rated_power_kw, data_interval_seconds)
		VALUES ('`+machine+`', '44444444-4444-4444-4444-444444444444', 'Press-1', 'pump', 45, 900);`)
	if err != nil {
		t.Fatal(err)
	}
	startServe(t, map[string]string{"DATABASE_URL": url, "POLL_INTERVAL": "200ms",
		"MODEL_STORAGE_PATH": t.TempDir(), "BASELINE_MIN_SAMPLES": "100"})

	// 10 days × 96 quarter-hour readings; one statement per day, so hours
	// close as a live plant's would, day by day. Power follows the hour of
	// day (20–40 kW) and production the power, so a baseline can be fitted.
	for day := 0; day < 10; day++ {
		for _, q := range []string{`
			INSERT INTO energy_readings (time, machine_id, power_kw)
			SELECT ts, $1, 30 + 10 * sin(extract(hour FROM ts) * pi() / 12) + (i % 3)
			FROM generate_series(0, 95) AS i, LATERAL (SELECT '2026-03-02T00:00:00Z'::timestamptz + ($2 * 96 + i) * interval '15 minutes' AS ts) t`, `
			INSERT INTO production_data (time, machine_id, production_count, operating_mode)
			SELECT ts, $1, (20 + 5 * sin(extract(hour FROM ts) * pi() / 12))::int + (i % 3), 'running'
			FROM generate_series(0, 95) AS i, LATERAL (SELECT '2026-03-02T00:00:00Z'::timestamptz + ($2 * 96 + i) * interval '15 minutes' AS ts) t`} {
			if _, err := pool.Exec(ctx, q, machine, day); err != nil {
				t.Fatalf("day %d: %v", day, err)
			}
		}
	}
	// 240 hours written, the last one stays open: 239 hour_closed events.
	waitFor(t, 2*time.Minute, "every closed hour processed", func() (bool, string) {
		var pending, done int
		err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE done_at IS NULL), count(*) FILTER (WHERE done_at IS NOT NULL AND kind = 'hour_closed')
			FROM analytics_events WHERE machine_id = $1`, machine).Scan(&pending, &done)
		if err != nil {
			return false, err.Error()
		}
		return pending == 0 && done == 239, fmt.Sprintf("pending=%d done=%d", pending, done)
	})
	var parked, scored, forecasts, days int
	var lastClosed time.Time
	err = pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM analytics_events WHERE parked_at IS NOT NULL),
		(SELECT count(*) FROM anomaly_hours WHERE machine_id = $1),
		(SELECT count(*) FROM energy_forecasts WHERE machine_id = $1),
		(SELECT count(*) FROM kpi_daily_snapshots WHERE machine_id = $1),
		(SELECT last_closed_hour FROM analytics_machine_state WHERE machine_id = $1)`, machine).
		Scan(&parked, &scored, &forecasts, &days, &lastClosed)
	if err != nil {
		t.Fatal(err)
	}
	if parked != 0 || scored != 239 || forecasts == 0 || days != 9 || !lastClosed.Equal(time.Date(2026, 3, 11, 22, 0, 0, 0, time.UTC)) {
		t.Errorf("after 239 closed hours: parked=%d anomaly hours=%d forecasts=%d daily snapshots=%d (want 9 closed days) last closed=%v",
			parked, scored, forecasts, days, lastClosed)
	}

	var id string
	err = pool.QueryRow(ctx, `INSERT INTO baseline_train_requests (machine_id, drivers, training_start, training_end)
		VALUES ($1, '{production_count}', '2026-03-02T00:00:00Z', '2026-03-11T00:00:00Z') RETURNING id`, machine).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the training request finishes", func() (bool, string) {
		var status string
		var msg *string
		if err := pool.QueryRow(ctx, `SELECT status, error FROM baseline_train_requests WHERE id = $1`, id).Scan(&status, &msg); err != nil {
			return false, err.Error()
		}
		if status == "failed" {
			t.Fatalf("training failed: %v", *msg)
		}
		return status == "done" || status == "rejected", status
	})

	// Late data for a closed hour: the revision is processed by every
	// handler (rolling model, re-score, forecasts' actuals, the day's
	// snapshot) without parking, and the day's snapshot sees the new energy.
	var before float64
	if err := pool.QueryRow(ctx, `SELECT total_energy_kwh FROM kpi_daily_snapshots WHERE machine_id = $1 AND day = '2026-03-04'`, machine).Scan(&before); err != nil {
		t.Fatal(err)
	}
	// Events before this point may include revisions of their own (the
	// worker can handle an hour between a day's energy and production
	// statements), so only events after it count.
	var lastEvent int64
	if err := pool.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM analytics_events`).Scan(&lastEvent); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO energy_readings (time, machine_id, power_kw) VALUES ('2026-03-04T10:07:00Z', $1, 400)`, machine); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the revision is processed", func() (bool, string) {
		var done, parked int
		err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE done_at IS NOT NULL), count(*) FILTER (WHERE parked_at IS NOT NULL)
			FROM analytics_events WHERE machine_id = $1 AND kind = 'hour_revised' AND id > $2
			AND bucket = '2026-03-04T10:00:00Z'`, machine, lastEvent).Scan(&done, &parked)
		if err != nil {
			return false, err.Error()
		}
		if parked > 0 {
			t.Fatalf("hour_revised parked")
		}
		return done == 1, fmt.Sprintf("done=%d", done)
	})
	var after float64
	if err := pool.QueryRow(ctx, `SELECT total_energy_kwh FROM kpi_daily_snapshots WHERE machine_id = $1 AND day = '2026-03-04'`, machine).Scan(&after); err != nil {
		t.Fatal(err)
	}
	// One more 400 kW reading standing for the machine's 900 s interval: +100 kWh.
	if diff := after - before; diff < 99.999 || diff > 100.001 {
		t.Errorf("daily snapshot changed by %v kWh after the late reading; want 100", diff)
	}
}

// waitFor polls cond until it holds or the timeout passes; it waits on a
// condition in the database, never for a fixed time.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		<-tick.C
	}
	t.Fatalf("%s: not within %s (last state: %s)", what, timeout, last)
}

// TestREADMEListsEveryVariable keeps the README's configuration table true:
// every variable the service reads is documented there.
func TestREADMEListsEveryVariable(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range Vars {
		if !strings.Contains(string(readme), "| `"+v.Name+"` |") {
			t.Errorf("README's configuration table has no row for %s", v.Name)
		}
	}
}
