package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	nethttp "net/http"
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
	pool, err := openPool(ctx, url, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	st := store.New(pool)

	metrics := prometheus.NewRegistry()
	worker, err := listener.New(listener.Config{
		Store:          st,
		Logger:         logger.With("component", "worker"),
		Registerer:     metrics,
		Concurrency:    cfg.WorkerConcurrency,
		MaxAttempts:    cfg.WorkerMaxAttempts,
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

	api := apihttp.New(apihttp.Config{Store: st, Logger: logger, Version: version,
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
		}
		if !s.LastNotification.IsZero() {
			ws.LastNotification = &s.LastNotification
		}
		return ws
	}
}

// openPool sizes the pool for the worker and the API together: pgxpool's
// default (the larger of 4 and the CPU count) let a busy worker starve the
// API on a 2-core machine. A pool_max_conns in the URL wins.
func openPool(ctx context.Context, url string, cfg Config) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		pc.MaxConns = int32(2*cfg.WorkerConcurrency + 16)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open database pool: %w", err)
	}
	return pool, nil
}
