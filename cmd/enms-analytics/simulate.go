package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/enms/enms-analytics/migrations"
	"github.com/enms/enms-analytics/simulator"
)

// simulateFlags are the options of `simulate` (and, in part, `dev`).
type simulateFlags struct {
	days         int
	from, to     string
	machines     string
	seed         uint64
	incidentRate float64
	live         bool
	speed        float64
	step         time.Duration
	seedPlant    bool
}

func parseSimulateFlags(args []string, stderr io.Writer) (simulateFlags, error) {
	var f simulateFlags
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&f.days, "days", 0, "backfill this many days ending now (default 7 unless --from or --live is given)")
	fs.StringVar(&f.from, "from", "", "backfill from this time (RFC 3339 or YYYY-MM-DD, UTC)")
	fs.StringVar(&f.to, "to", "", "backfill up to this time (default now)")
	fs.StringVar(&f.machines, "machines", "", "comma-separated machine names (default: the demo plant's seven)")
	fs.Uint64Var(&f.seed, "seed", 1, "random seed; the same seed gives the same telemetry")
	fs.Float64Var(&f.incidentRate, "incident-rate", simulator.DefaultIncidentRate, "expected injected incidents per machine-day (0 = none)")
	fs.BoolVar(&f.live, "live", false, "after any backfill, keep writing readings as (simulated) time passes")
	fs.Float64Var(&f.speed, "speed", 1, "live: simulated seconds per wall-clock second")
	fs.DurationVar(&f.step, "step", 0, "reading step (default: 1m for backfills, each machine's sampling interval live)")
	fs.BoolVar(&f.seedPlant, "seed-plant", false, "load the demo plant first (idempotent)")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("simulate: unexpected argument %q", fs.Arg(0))
	}
	return f, nil
}

// period resolves --days/--from/--to against now; ok is false when there is
// nothing to backfill.
func (f simulateFlags) period(now time.Time) (from, to time.Time, ok bool, err error) {
	to = now
	if f.to != "" {
		if to, err = parseWhen(f.to); err != nil {
			return from, to, false, fmt.Errorf("--to: %w", err)
		}
	}
	switch {
	case f.from != "" && f.days != 0:
		return from, to, false, errors.New("give either --days or --from, not both")
	case f.from != "":
		if from, err = parseWhen(f.from); err != nil {
			return from, to, false, fmt.Errorf("--from: %w", err)
		}
	case f.days < 0:
		return from, to, false, fmt.Errorf("--days %d: want a positive number of days", f.days)
	case f.days > 0:
		from = to.Add(-time.Duration(f.days) * 24 * time.Hour)
	case f.live:
		return from, to, false, nil
	default:
		from = to.Add(-7 * 24 * time.Hour)
	}
	if !to.After(from) {
		return from, to, false, fmt.Errorf("the period %s – %s is empty; want --from before --to", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	return from, to, true, nil
}

func parseWhen(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time; want RFC 3339 (2026-11-01T00:00:00Z) or a date (2026-11-01)", s)
}

func (f simulateFlags) names() []string {
	if strings.TrimSpace(f.machines) == "" {
		return simulator.DemoPlant.Names()
	}
	var out []string
	for _, n := range strings.Split(f.machines, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// simulateCmd is `enms-analytics simulate`: backfill a period and/or run live.
func simulateCmd(ctx context.Context, cfg Config, logger *slog.Logger, args []string, stdout, stderr io.Writer) error {
	f, err := parseSimulateFlags(args, stderr)
	if err != nil {
		return err
	}
	from, to, backfill, err := f.period(time.Now())
	if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	gen, err := simulator.New(simulator.Config{Seed: f.seed, IncidentRate: f.incidentRate})
	if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	url, stop, err := openDatabase(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer stop()
	pool, err := prepareDatabase(ctx, cfg, logger, url, f.seedPlant)
	if err != nil {
		return err
	}
	defer pool.Close()
	machines, err := simulator.Machines(ctx, pool, f.names())
	if err != nil {
		return err
	}
	var starts map[simulator.UUID]time.Time
	if backfill {
		res, err := runBackfill(ctx, pool, gen, machines, from, to, f.step, stdout)
		if err != nil {
			return err
		}
		starts = res.End
	}
	if !f.live {
		return nil
	}
	fmt.Fprintf(stdout, "live: %d machines at %gx real time (Ctrl-C stops)\n", len(machines), f.speed)
	return simulator.Live(ctx, pool, gen, machines, simulator.LiveOptions{From: starts, Step: f.step, Speed: f.speed})
}

// prepareDatabase migrates (unless MIGRATE_ON_START=false), opens a pool and
// optionally loads the demo plant.
func prepareDatabase(ctx context.Context, cfg Config, logger *slog.Logger, url string, seedPlant bool) (*pgxpool.Pool, error) {
	if cfg.MigrateOnStart {
		if err := migrations.Up(url); err != nil {
			return nil, err
		}
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("open database pool: %w", err)
	}
	if seedPlant {
		if err := simulator.SeedPlant(ctx, pool, simulator.DemoPlant); err != nil {
			pool.Close()
			return nil, err
		}
		logger.Info("demo plant loaded", "factories", len(simulator.DemoPlant.Factories), "machines", len(simulator.DemoPlant.Machines))
	}
	return pool, nil
}

// runBackfill backfills [from, to) and prints progress at most every two
// seconds, and a summary.
func runBackfill(ctx context.Context, pool *pgxpool.Pool, gen *simulator.Generator, machines []simulator.Machine, from, to time.Time, step time.Duration, stdout io.Writer) (simulator.BackfillResult, error) {
	var lastPrint time.Time
	days := func(d time.Duration) float64 { return d.Hours() / 24 }
	res, err := simulator.Backfill(ctx, pool, gen, machines, simulator.BackfillOptions{
		From: from, To: to, Step: step,
		Progress: func(p simulator.Progress) {
			if time.Since(lastPrint) < 2*time.Second && p.Done < p.Total {
				return
			}
			lastPrint = time.Now()
			fmt.Fprintf(stdout, "backfill: %5.1f of %.1f days, %d rows, %.0f rows/s\n",
				days(p.Done), days(p.Total), p.Rows, float64(p.Rows)/p.Elapsed.Seconds())
		},
	})
	if err != nil {
		return res, err
	}
	if res.Machines == 0 {
		fmt.Fprintf(stdout, "backfill: nothing to do, %d machines already have data up to %s\n", len(machines), to.UTC().Format(time.RFC3339))
		return res, nil
	}
	fmt.Fprintf(stdout, "backfill: %d machines, %d readings (%d rows) in %.1fs (%.0f rows/s), seed %d\n",
		res.Machines, res.Readings, res.Rows, res.Elapsed.Seconds(), float64(res.Rows)/res.Elapsed.Seconds(), gen.Seed())
	return res, nil
}

// seedCmd is `enms-analytics seed`: load the demo plant (idempotent).
func seedCmd(ctx context.Context, cfg Config, logger *slog.Logger, stdout io.Writer) error {
	url, stop, err := openDatabase(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer stop()
	pool, err := prepareDatabase(ctx, cfg, logger, url, true)
	if err != nil {
		return err
	}
	pool.Close()
	p := simulator.DemoPlant
	fmt.Fprintf(stdout, "demo plant loaded: %d factories, %d machines, %d tariffs, %d carbon factors\n",
		len(p.Factories), len(p.Machines), len(p.Tariffs), len(p.CarbonFactors))
	return nil
}
