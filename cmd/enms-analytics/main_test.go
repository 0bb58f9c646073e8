package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	nethttp "net/http"
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
