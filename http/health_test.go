package http

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/enms/enms-analytics/internal/testdb"
)

func TestHealth(t *testing.T) {
	t.Parallel()
	last := time.Date(2026, 1, 5, 7, 0, 0, 0, time.FixedZone("CET", 3600))
	var connected atomic.Bool
	connected.Store(true)
	f := setup(t, func(c *Config) {
		c.Started = time.Now().Add(-time.Minute)
		c.WorkerStatus = func() WorkerStatus {
			return WorkerStatus{Connected: connected.Load(), LastNotification: &last, Backlog: 3,
				OldestPendingAgeSeconds: 1.5, ModelsLoaded: 2, Parked: 4}
		}
	})
	for _, path := range []string{"/health", "/api/v1/health"} {
		status, b := f.get(t, path)
		if status != 200 || str(t, b, "status") != "healthy" {
			t.Fatalf("%s: %d %v", path, status, b)
		}
		if str(t, b, "version") != "test-1" || str(t, b, "database.status") != "connected" {
			t.Errorf("%s: %v", path, b)
		}
		if num(t, b, "database.migration_version") < 8 {
			t.Errorf("%s: migration_version %v, want ≥ 8", path, at(t, b, "database.migration_version"))
		}
		if up := num(t, b, "uptime_seconds"); up < 60 {
			t.Errorf("%s: uptime %v, want ≥ 60 (started a minute ago)", path, up)
		}
		if str(t, b, "worker.status") != "running" || at(t, b, "worker.connected") != true {
			t.Errorf("%s: worker %v", path, b["worker"])
		}
		near(t, "backlog", num(t, b, "worker.backlog"), 3)
		near(t, "models_loaded", num(t, b, "worker.models_loaded"), 2)
		near(t, "parked", num(t, b, "worker.parked"), 4)
		near(t, "oldest_pending_age_seconds", num(t, b, "worker.oldest_pending_age_seconds"), 1.5)
		if str(t, b, "worker.last_notification") != "2026-01-05T06:00:00Z" {
			t.Errorf("last_notification %v, want UTC RFC 3339", at(t, b, "worker.last_notification"))
		}
	}
	connected.Store(false)
	status, b := f.get(t, "/api/v1/health")
	if status != 200 || str(t, b, "status") != "degraded" || str(t, b, "worker.status") != "listener_disconnected" {
		t.Errorf("listener down: %d %v", status, b)
	}
}

// TestHealthWithoutWorker: an API-only process reports the worker as not
// running, with zeros, not nulls.
func TestHealthWithoutWorker(t *testing.T) {
	t.Parallel()
	f := setup(t)
	status, b := f.get(t, "/health")
	if status != 200 || str(t, b, "worker.status") != "not_running" || num(t, b, "worker.backlog") != 0 {
		t.Errorf("%d %v", status, b)
	}
}

// TestDatabaseUnreachable: a closed pool and a dead port both give 503 with
// code unavailable on /health and on a KPI route, and no driver detail.
func TestDatabaseUnreachable(t *testing.T) {
	t.Parallel()
	closed := testdb.New(t)
	closed.Close()

	cfg, err := pgxpool.ParseConfig("postgres://enms@127.0.0.1:1/enms?connect_timeout=1&sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	dead, err := pgxpool.NewWithConfig(context.Background(), cfg) // connects lazily
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dead.Close)

	for name, pool := range map[string]*pgxpool.Pool{"closed pool": closed, "dead port": dead} {
		f := serveStore(t, pool)
		status, b := f.get(t, "/api/v1/health")
		if status != 503 || str(t, b, "status") != "unhealthy" || str(t, b, "database.status") != "unreachable" {
			t.Errorf("%s: health %d %v", name, status, b)
		}
		status, b = f.get(t, kpiPath("all", m1ID, window0, window0.Add(time.Hour)))
		msg := wantError(t, name+": kpi", status, b, 503, CodeUnavailable)
		if strings.Contains(msg, "127.0.0.1") || strings.Contains(msg, "closed pool") {
			t.Errorf("%s: message leaks driver detail: %q", name, msg)
		}
		status, b = f.get(t, "/api/v1/machines")
		wantError(t, name+": machines", status, b, 503, CodeUnavailable)
	}
}

// TestConnectionKilled: when PostgreSQL terminates the API's connection (a
// restart, an administrator), the request in flight gets 503, not 500, and
// the next request is served on a fresh connection.
func TestConnectionKilled(t *testing.T) {
	t.Parallel()
	url := testdb.URL(t)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	// Never ping on acquire: the query itself must meet the dead connection.
	cfg.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	seed(t, pool)
	f := serveStore(t, pool)
	var pid int
	if err := pool.QueryRow(t.Context(), `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	admin := testdb.Pool(t, url)
	if _, err := admin.Exec(t.Context(), `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	status, b := f.get(t, "/api/v1/machines")
	wantError(t, "killed connection", status, b, 503, CodeUnavailable)
	if status, b := f.get(t, "/api/v1/machines"); status != 200 {
		t.Errorf("after reconnecting: %d %v", status, b)
	}
}
