package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	nethttp "net/http"
	neturl "net/url"
	"sync"
	"time"

	"github.com/enms/enms-analytics/migrations"
	"github.com/enms/enms-analytics/simulator"
	"github.com/enms/enms-analytics/store"
)

// devCmd is `enms-analytics dev` (= `make run`): the embedded cluster (or the
// configured database), migrations, the demo plant, history up to now (60
// days on a fresh database — the last week a reading a minute, older days
// every five minutes — and only the gap since the last reading on later
// runs), then live simulation and the service together until ctx is done.
func devCmd(ctx context.Context, cfg Config, logger *slog.Logger, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	days := fs.Int("days", 60, "days of history to have loaded")
	seed := fs.Uint64("seed", 1, "random seed of the simulated plant")
	speed := fs.Float64("speed", 1, "live simulation: simulated seconds per wall-clock second")
	rate := fs.Float64("incident-rate", simulator.DefaultIncidentRate, "expected injected incidents per machine-day")
	step := fs.Duration("history-step", simulator.DefaultHistoryStep, "step of the most recent week of history")
	archiveStep := fs.Duration("archive-step", 5*time.Minute, "step of history older than a week")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *days < 0 {
		return fmt.Errorf("dev: --days %d: want zero or more days", *days)
	}
	gen, err := simulator.New(simulator.Config{Seed: *seed, IncidentRate: *rate})
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	started := time.Now()

	url, stop, err := openDatabase(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer stop()
	if err := migrations.Up(url); err != nil {
		return err
	}
	pool, err := prepareDatabase(ctx, Config{MigrateOnStart: false}, logger, url, true)
	if err != nil {
		return err
	}
	defer pool.Close()
	machines, err := simulator.Machines(ctx, pool, simulator.DemoPlant.Names())
	if err != nil {
		return err
	}
	// History: the last week at --history-step (one reading a minute),
	// older days at --archive-step (five minutes): the same energy either
	// way, a third of the rows of a uniform minute, so a fresh `make run`
	// has 60 days loaded well within two minutes even on a busy machine.
	to := time.Now().Truncate(max(*step, *archiveStep))
	from := to.Add(-time.Duration(*days) * 24 * time.Hour)
	recent := to.Add(-7 * 24 * time.Hour)
	if recent.Before(from) {
		recent = from
	}
	starts := map[simulator.UUID]time.Time{}
	for _, part := range []struct {
		from, to time.Time
		step     time.Duration
	}{{from, recent, *archiveStep}, {recent, to, *step}} {
		if !part.to.After(part.from) {
			continue
		}
		res, err := runBackfill(ctx, pool, gen, machines, part.from, part.to, part.step, stdout)
		if err != nil {
			return err
		}
		starts = res.End
	}

	ln, err := net.Listen("tcp", fmt.Sprintf(":%d", cfg.APIPort))
	if err != nil {
		return fmt.Errorf("listen on API_PORT %d: %w", cfg.APIPort, err)
	}
	defer ln.Close() // serve closes it too; this covers serve failing before it serves
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	caughtUp := make(chan struct{})
	serveCfg := cfg
	serveCfg.MigrateOnStart = false
	wg.Add(3)
	go func() {
		defer wg.Done()
		errc <- serve(ctx, serveCfg, logger, serveOptions{DatabaseURL: url, Listener: ln, Ready: func(string) { close(caughtUp) }})
	}()
	go func() {
		defer wg.Done()
		errc <- simulator.Live(ctx, pool, gen, machines, simulator.LiveOptions{From: starts, Speed: *speed})
	}()
	go func() {
		defer wg.Done()
		addr := ln.Addr().String()
		if err := waitHealthy(ctx, addr); err != nil {
			return // stopping
		}
		printTryURLs(stdout, addr, url, machines, time.Since(started), *speed)
		select {
		case <-caughtUp:
			reportCatchUp(ctx, store.New(pool), stdout, started)
		case <-ctx.Done():
		}
	}()

	var result error
	select {
	case result = <-errc:
	case <-ctx.Done():
	}
	cancel()
	wg.Wait()
	close(errc)
	for err := range errc {
		result = errors.Join(result, err)
	}
	if result == nil || errors.Is(result, context.Canceled) {
		fmt.Fprintln(stdout, "dev: stopped")
		return nil
	}
	return result
}

// waitHealthy polls the API's /health until it answers 200 (every 100 ms;
// the service is starting in this process, so there is nothing to notify).
func waitHealthy(ctx context.Context, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	client := &nethttp.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := nethttp.NewRequestWithContext(ctx, "GET", "http://127.0.0.1:"+port+"/health", nil)
		if err != nil {
			return err
		}
		req.Close = true // no idle keep-alive connection left behind
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == nethttp.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// printTryURLs tells a new user what to open once the service answers.
func printTryURLs(w io.Writer, addr, dbURL string, machines []simulator.Machine, took time.Duration, speed float64) {
	port := "8001"
	if _, p, err := net.SplitHostPort(addr); err == nil {
		port = p
	}
	base := "http://localhost:" + port
	end := time.Now().UTC().Truncate(time.Hour)
	q := func(id simulator.UUID, extra string) string {
		return "machine_id=" + id.String() + extra
	}
	window := "&start=" + neturl.QueryEscape(end.Add(-24*time.Hour).Format(time.RFC3339)) + "&end=" + neturl.QueryEscape(end.Format(time.RFC3339))
	fmt.Fprintf(w, "\nenms-analytics dev is ready after %.1fs — the demo plant is live (%gx real time). Try:\n\n", took.Seconds(), speed)
	fmt.Fprintf(w, "  %s/health\n", base)
	fmt.Fprintf(w, "  %s/api/v1/ui/                  (UI)\n", base)
	fmt.Fprintf(w, "  %s/api/v1/docs                 (API documentation)\n", base)
	fmt.Fprintf(w, "  %s/api/v1/machines\n", base)
	if len(machines) > 0 {
		m := machines[0]
		fmt.Fprintf(w, "  %s/api/v1/machines/%s   (%s)\n", base, m.ID, m.Name)
		fmt.Fprintf(w, "  %s/api/v1/kpi/all?%s\n", base, q(m.ID, window))
		fmt.Fprintf(w, "  %s/api/v1/anomaly/recent\n", base)
		fmt.Fprintf(w, "  %s/api/v1/forecast/demand?%s\n", base, q(m.ID, "&horizon=24h"))
	}
	fmt.Fprintf(w, "  %s/metrics\n\n", base)
	fmt.Fprintf(w, "  psql %q\n", dbURL)
	fmt.Fprintf(w, "    SELECT * FROM simulator_labels ORDER BY start_time DESC LIMIT 5;   -- injected incidents\n\n")
	fmt.Fprintln(w, "Ctrl-C stops everything; `make run` again resumes with the same data.")
}

// reportCatchUp tells how much of the loaded history the worker still has to
// analyse, every 10 seconds, until nothing is pending.
func reportCatchUp(ctx context.Context, st *store.Store, stdout io.Writer, started time.Time) {
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		b, err := st.EventBacklog(ctx)
		pending := b.Pending
		if err != nil {
			return // stopping, or the database is gone: serve reports that
		}
		if pending == 0 {
			fmt.Fprintf(stdout, "dev: the worker has analysed the history (%.0fs after start)\n", time.Since(started).Seconds())
			return
		}
		fmt.Fprintf(stdout, "dev: the worker is analysing the history: %d machine-hours to go\n", pending)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
