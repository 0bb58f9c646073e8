package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	nethttp "net/http"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	apihttp "github.com/enms/enms-analytics/http"
	"github.com/enms/enms-analytics/listener"
	"github.com/enms/enms-analytics/migrations"
	"github.com/enms/enms-analytics/store"
)

// serveOptions are knobs for tests and for `dev`.
type serveOptions struct {
	// Listener, when set, is used instead of listening on API_PORT.
	Listener net.Listener
	// Ready, when set, is called with the API's address once it serves and
	// the worker listens.
	Ready func(addr string)
	// DatabaseURL, when set, overrides the configured database (dev passes
	// the embedded cluster it already started).
	DatabaseURL string
}

// serve runs the API (and, as they land, the worker) until ctx is done.
func serve(ctx context.Context, cfg Config, logger *slog.Logger, opt serveOptions) error {
	url := opt.DatabaseURL
	if url == "" {
		var stop func()
		var err error
		if url, stop, err = openDatabase(ctx, cfg, logger); err != nil {
			return err
		}
		defer stop()
	}
	if cfg.MigrateOnStart {
		if err := migrations.Up(url); err != nil {
			return err
		}
		logger.Info("migrations applied")
	}
	pool, apiPool, err := openPools(ctx, url, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	defer apiPool.Close()
	st := store.New(pool)

	metrics := prometheus.NewRegistry()
	worker, err := listener.New(listener.Config{
		Store:          st,
		Logger:         logger.With("component", "worker"),
		Registerer:     metrics,
		Concurrency:    cfg.WorkerConcurrency,
		MaxAttempts:    cfg.WorkerMaxAttempts,
		MaxRun:         cfg.WorkerMaxRun,
		LeaseDuration:  cfg.WorkerLeaseDuration,
		ReconnectDelay: cfg.ListenerReconnectDelay,
		PollInterval:   cfg.PollInterval,
		HourCloseGrace: cfg.HourCloseGrace,
		EventRetention: cfg.EventRetention,
	})
	if err != nil {
		return err
	}
	an, err := registerHandlers(worker, st, cfg, logger)
	if err != nil {
		return err
	}

	api := apihttp.New(apihttp.Config{Store: store.New(apiPool), Logger: logger, Version: version,
		Metrics: metrics, WorkerStatus: workerStatus(worker),
		APIToken: cfg.APIToken, CORSOrigins: cfg.CORSOrigins, Anomaly: an})
	ln := opt.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", fmt.Sprintf(":%d", cfg.APIPort)); err != nil {
			return fmt.Errorf("listen on API_PORT %d: %w", cfg.APIPort, err)
		}
	}
	srv := &nethttp.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second}

	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, nethttp.ErrServerClosed) {
			errc <- fmt.Errorf("serve API: %w", err)
		}
	}()
	workerCtx, stopWorker := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWorker()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := worker.Run(workerCtx); err != nil {
			errc <- fmt.Errorf("run worker: %w", err)
		}
	}()
	logger.Info("API listening", "addr", ln.Addr().String())
	if opt.Ready != nil {
		// Ready means the whole service: the API serves and the worker
		// listens (else /health would report it degraded).
		select {
		case <-worker.Ready():
		case <-ctx.Done():
		}
		opt.Ready(ln.Addr().String())
	}

	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if shutErr := srv.Shutdown(shutdownCtx); shutErr != nil {
		logger.Error("API shutdown", "err", shutErr)
	}
	stopWorker() // finishes or releases its claimed events
	wg.Wait()
	logger.Info("stopped")
	return err
}

// workerStatus adapts the worker's status to what /health reports.
func workerStatus(w *listener.Worker) func() apihttp.WorkerStatus {
	return func() apihttp.WorkerStatus {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, _ := w.Status(ctx) // on error the connection fields are still set
		ws := apihttp.WorkerStatus{
			Connected:               s.Connected,
			Backlog:                 s.Backlog,
			OldestPendingAgeSeconds: s.OldestPending.Seconds(),
			Parked:                  s.Parked,
		}
		if !s.LastNotification.IsZero() {
			ws.LastNotification = &s.LastNotification
		}
		return ws
	}
}

// openPools opens the worker's pool and the API's. Separate pools keep a
// burst of API requests from taking the connections the worker needs, and a
// busy worker from starving the API; and the API's pool is small on
// purpose: with more backends running KPI queries than there are cores,
// requests only wait longer (make bench, 32 API clients, 2 cores: p99
// 137 ms with one shared pool of 24 connections; see the README for the
// figure with the API's own pool). The worker's pool: 2 per handler
// goroutine plus 8 for claims, completions, leases and the sweeper, unless
// the URL sets pool_max_conns. The API's: API_DB_MAX_CONNS, else 2 per CPU
// core and at least 4.
func openPools(ctx context.Context, url string, cfg Config) (worker, api *pgxpool.Pool, err error) {
	open := func(what string, size int, urlWins bool) (*pgxpool.Pool, error) {
		pc, err := pgxpool.ParseConfig(url)
		if err != nil {
			return nil, fmt.Errorf("parse database URL: %w", err)
		}
		if !urlWins || !strings.Contains(url, "pool_max_conns") {
			pc.MaxConns = int32(size)
		}
		pool, err := pgxpool.NewWithConfig(ctx, pc)
		if err != nil {
			return nil, fmt.Errorf("open the %s database pool: %w", what, err)
		}
		return pool, nil
	}
	if worker, err = open("worker's", 2*cfg.WorkerConcurrency+8, true); err != nil {
		return nil, nil, err
	}
	size := cfg.APIDBMaxConns
	if size == 0 {
		size = max(4, 2*runtime.NumCPU())
	}
	if api, err = open("API's", size, false); err != nil {
		worker.Close()
		return nil, nil, err
	}
	return worker, api, nil
}
