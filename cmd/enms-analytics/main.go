// Command enms-analytics is the EnMS analytics and ML worker.
//
//	enms-analytics serve            worker + API
//	enms-analytics migrate up|down [N]|version
//	enms-analytics dev              embedded PostgreSQL + demo plant + live simulation + serve
//	enms-analytics bench [--quick]  measure ingest, latency, throughput and memory; print JSON
//
// Configuration comes from the environment (see Vars, and the README).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "enms-analytics:", err)
		os.Exit(1)
	}
}

const usage = `usage: enms-analytics <command>

commands:
  serve                 run the worker and the API (connects, migrates, listens)
  migrate up            apply all migrations
  migrate down [N]      revert N migrations (all when N is omitted)
  migrate version       print the applied migration version
  seed                  load the demo plant (two factories, seven machines, tariffs, carbon factors); idempotent
  simulate [flags]      write simulated telemetry: backfill (--days N | --from T [--to T]) and/or --live
                        [--speed X]; --machines a,b --seed N --incident-rate R --step D --seed-plant
  dev [flags]           make run: embedded PostgreSQL, demo plant, 60 days of history, live simulation, serve
                        (--days 60 --seed 1 --speed 1 --incident-rate R --history-step 1m --archive-step 5m)
  bench [flags]         make bench: its own PostgreSQL (or BENCH_DATABASE_URL), a simulated plant, the worker;
                        prints a JSON report (--quick: under a minute; --machines N --days D)
  help                  this text

Configuration is read from the environment; see README.md.
`

// run is main without the process: arguments, environment and output are
// parameters so tests can drive the real wiring.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	cfg, err := LoadConfig(getenv)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	switch args[0] {
	case "serve":
		return serve(ctx, cfg, logger, serveOptions{})
	case "migrate":
		return migrateCmd(ctx, cfg, logger, args[1:], stdout)
	case "seed":
		return seedCmd(ctx, cfg, logger, stdout)
	case "simulate":
		return simulateCmd(ctx, cfg, logger, args[1:], stdout, stderr)
	case "dev":
		return devCmd(ctx, cfg, logger, args[1:], stdout, stderr)
	case "bench":
		return benchCmd(ctx, cfg, getenv, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}
