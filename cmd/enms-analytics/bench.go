package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	nethttp "net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/enms/enms-analytics/internal/embedpg"
	"github.com/enms/enms-analytics/migrations"
	"github.com/enms/enms-analytics/simulator"
	"github.com/enms/enms-analytics/triggers"
)

// benchOptions size a bench run. parseBenchFlags fills them from the command
// line; tests set them directly (smaller still, and the worker in-process).
type benchOptions struct {
	Quick    bool
	Machines int // simulated machines of the history
	Days     int // days of history
	// Step of the simulated history (per machine at least its sampling
	// interval).
	Step time.Duration
	// IngestBatches of 1,000 rows each are written to both ingest databases.
	IngestBatches int
	// LatencyHours: hours closed per machine for the idle hour-close latency
	// (samples = Machines × LatencyHours).
	LatencyHours int
	// BurstMachines close the same hour at once; BurstHistoryDays of hourly
	// rollups precede it so the handlers have history to work on.
	BurstMachines    int
	BurstHistoryDays int
	// TrainSamples training requests over TrainHours hourly samples.
	TrainSamples int
	TrainHours   int
	// APIRequests requests from APIClients concurrent clients.
	APIRequests int
	APIClients  int
	// InProcess runs the worker and API in this process instead of a child
	// `serve` (tests: the test binary cannot run `serve`).
	InProcess bool
}

func defaultBenchOptions(quick bool) benchOptions {
	if quick {
		return benchOptions{Quick: true, Machines: 5, Days: 2, Step: 5 * time.Minute, IngestBatches: 20,
			LatencyHours: 4, BurstMachines: 1000, BurstHistoryDays: 1, TrainSamples: 5, TrainHours: 2160,
			APIRequests: 400, APIClients: 16}
	}
	return benchOptions{Machines: 20, Days: 10, Step: 15 * time.Minute, IngestBatches: 100,
		LatencyHours: 5, BurstMachines: 1000, BurstHistoryDays: 7, TrainSamples: 20, TrainHours: 2160,
		APIRequests: 3000, APIClients: 32}
}

func parseBenchFlags(args []string, stderr io.Writer) (benchOptions, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "a small run (under a minute): fewer machines, days and samples")
	machines := fs.Int("machines", 0, "simulated machines of the history (default 20, quick 5)")
	days := fs.Int("days", 0, "days of simulated history (default 10, quick 2)")
	if err := fs.Parse(args); err != nil {
		return benchOptions{}, err
	}
	if fs.NArg() > 0 {
		return benchOptions{}, fmt.Errorf("bench: unexpected argument %q", fs.Arg(0))
	}
	o := defaultBenchOptions(*quick)
	if *machines < 0 || *days < 0 {
		return o, errors.New("bench: --machines and --days want positive numbers")
	}
	if *machines > 0 {
		o.Machines = *machines
	}
	if *days > 0 {
		o.Days = *days
	}
	return o, nil
}

// latencyMS is a latency distribution in milliseconds (nearest rank).
type latencyMS struct {
	P50     float64 `json:"p50"`
	P99     float64 `json:"p99"`
	Samples int     `json:"samples"`
}

func latencies(ds []time.Duration) latencyMS {
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(p int) float64 {
		if len(s) == 0 {
			return 0
		}
		i := min((len(s)*p+99)/100, len(s)) - 1
		return float64(s[max(i, 0)].Microseconds()) / 1000
	}
	return latencyMS{P50: at(50), P99: at(99), Samples: len(s)}
}

// benchReport is the JSON the bench prints. Its top-level keys are stable so
// results can be compared across commits.
type benchReport struct {
	IngestWithTriggers    float64 `json:"ingest_rows_per_s_with_triggers"`
	IngestWithoutTriggers float64 `json:"ingest_rows_per_s_without_triggers"`
	IngestRatio           float64 `json:"ingest_ratio"`
	IngestRows            int     `json:"ingest_rows"`
	IngestMethod          string  `json:"ingest_method"`

	HourCloseLatency         latencyMS `json:"hour_close_latency_ms"`
	HourCloseLatencyFromSend latencyMS `json:"hour_close_latency_from_send_ms"`

	Burst1000MachinesS float64 `json:"burst_1000_machines_s"`
	BurstMachines      int     `json:"burst_machines"`
	BurstEventsPerS    float64 `json:"burst_events_per_s"`
	// BurstHourCloseLatency: per machine, the INSERT's commit to its hour's
	// analytics done, under the burst.
	BurstHourCloseLatency latencyMS `json:"burst_hour_close_latency_ms"`

	BackfillMachineHoursPerS float64 `json:"backfill_machine_hours_per_s"`
	Backfill                 struct {
		MachineHours      int64   `json:"machine_hours"`
		Readings          int64   `json:"readings"`
		WriteS            float64 `json:"write_s"`
		TotalS            float64 `json:"total_s"`
		CatchUpAfterS     float64 `json:"catch_up_after_write_s"`
		EventsParked      int64   `json:"events_parked"`
		WorkerCPUS        float64 `json:"worker_cpu_s"`
		AnomalyHours      int64   `json:"anomaly_hours_scored"`
		AnomalyHoursTotal int64   `json:"anomaly_hours_rows"`
		// WriteAloneS is the same backfill written into a database no worker
		// serves: the ceiling the ingest path puts on the end-to-end figure
		// on this machine.
		WriteAloneS                float64 `json:"write_alone_s"`
		WriteAloneMachineHoursPerS float64 `json:"write_alone_machine_hours_per_s"`
		// Drain* is a worker started on that database once it is written:
		// how fast the worker alone works off the backlog.
		DrainS                float64 `json:"drain_s"`
		DrainMachineHoursPerS float64 `json:"drain_machine_hours_per_s"`
		DrainWorkerCPUS       float64 `json:"drain_worker_cpu_s"`
	} `json:"backfill"`

	TrainLatency     latencyMS `json:"train_latency_ms"`
	TrainHourSamples int       `json:"train_hour_samples"`

	APILatency     latencyMS `json:"api_latency_ms"`
	APIConcurrency int       `json:"api_concurrency"`
	APINon200      int64     `json:"api_non_200"`

	WorkerPeakRSSMB float64 `json:"worker_peak_rss_mb"`
	WorkerRSSSource string  `json:"worker_rss_source"`

	Machine struct {
		Cores           int    `json:"cores"`
		GoVersion       string `json:"go_version"`
		PostgresVersion string `json:"postgres_version"`
		OS              string `json:"os"`
		LoadAvgStart    string `json:"loadavg_start"`
		LoadAvgEnd      string `json:"loadavg_end"`
	} `json:"machine"`
	Params struct {
		Quick            bool   `json:"quick"`
		Machines         int    `json:"machines"`
		Days             int    `json:"days"`
		Step             string `json:"step"`
		IngestBatches    int    `json:"ingest_batches"`
		LatencySamples   int    `json:"latency_samples"`
		BurstHistoryDays int    `json:"burst_history_days"`
		TrainSamples     int    `json:"train_samples"`
		APIRequests      int    `json:"api_requests"`
		WorkerConc       int    `json:"worker_concurrency"`
		Database         string `json:"database"`
		Version          string `json:"version"`
	} `json:"params"`
	Notes    []string `json:"notes"`
	ElapsedS float64  `json:"elapsed_s"`
}

// benchCmd is `enms-analytics bench`: measure and print one JSON report.
func benchCmd(ctx context.Context, cfg Config, getenv func(string) string, args []string, stdout, stderr io.Writer) error {
	o, err := parseBenchFlags(args, stderr)
	if err != nil {
		return err
	}
	rep, err := runBench(ctx, cfg, getenv, o, stderr)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// benchEnv is the database server of a run: it creates databases and drops
// them at the end.
type benchEnv struct {
	adminURL string
	prefix   string
	template string // created databases are copies of this migrated one
	created  []string
	log      func(format string, a ...any)
}

func (e *benchEnv) createDB(ctx context.Context, name string) (string, error) {
	name = e.prefix + name
	conn, err := pgx.Connect(ctx, e.adminURL)
	if err != nil {
		return "", fmt.Errorf("connect to the bench's PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	id := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+id+" WITH (FORCE)"); err != nil {
		return "", fmt.Errorf("drop database %s: %w", name, err)
	}
	create := "CREATE DATABASE " + id
	if e.template != "" {
		create += " TEMPLATE " + pgx.Identifier{e.template}.Sanitize()
	}
	if _, err := conn.Exec(ctx, create); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	e.created = append(e.created, name)
	return e.dbURL(name)
}

// seededDB creates the database name with the simulated plant's factories
// and machines, and returns its URL, a pool on it (the caller closes it)
// and the machines.
func (e *benchEnv) seededDB(ctx context.Context, name string, plant simulator.Plant) (string, *pgxpool.Pool, []simulator.Machine, error) {
	url, err := e.createDB(ctx, name)
	if err != nil {
		return "", nil, nil, err
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return "", nil, nil, fmt.Errorf("bench: open pool on %s: %w", name, err)
	}
	if err := simulator.SeedPlant(ctx, pool, plant); err != nil {
		pool.Close()
		return "", nil, nil, err
	}
	machines, err := simulator.Machines(ctx, pool, plant.Names())
	if err != nil {
		pool.Close()
		return "", nil, nil, err
	}
	return url, pool, machines, nil
}

func (e *benchEnv) dbURL(name string) (string, error) {
	u, err := neturl.Parse(e.adminURL)
	if err != nil {
		return "", fmt.Errorf("bench database URL: %w", err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

// createTemplate creates the migrated database every other one is copied
// from (one migration run instead of one per database).
func (e *benchEnv) createTemplate(ctx context.Context) error {
	e.template = ""
	url, err := e.createDB(ctx, "template")
	if err != nil {
		return err
	}
	if err := migrations.Up(url); err != nil {
		return err
	}
	e.template = e.prefix + "template"
	return nil
}

func (e *benchEnv) dropAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, e.adminURL)
	if err != nil {
		e.log("drop bench databases: %v", err)
		return
	}
	defer conn.Close(ctx)
	for _, name := range slices.Backward(e.created) {
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			e.log("drop database %s: %v", name, err)
		}
	}
}

// runBench runs every measurement and returns the report; progress goes to
// stderr.
func runBench(ctx context.Context, cfg Config, getenv func(string) string, o benchOptions, stderr io.Writer) (*benchReport, error) {
	started := time.Now()
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "bench %5.1fs: %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, a...))
	}
	rep := &benchReport{}
	rep.Machine.Cores = runtime.NumCPU()
	rep.Machine.GoVersion = runtime.Version()
	rep.Machine.OS = runtime.GOOS + "/" + runtime.GOARCH
	rep.Machine.LoadAvgStart = loadAvg()
	p := &rep.Params
	p.Quick, p.Machines, p.Days, p.Step = o.Quick, o.Machines, o.Days, o.Step.String()
	p.IngestBatches, p.LatencySamples, p.BurstHistoryDays = o.IngestBatches, o.Machines*o.LatencyHours, o.BurstHistoryDays
	p.TrainSamples, p.APIRequests, p.Version = o.TrainSamples, o.APIRequests, version
	p.WorkerConc = cfg.WorkerConcurrency

	env := &benchEnv{prefix: fmt.Sprintf("enms_bench_%d_", os.Getpid()), log: logf}
	if u := strings.TrimSpace(getenv("BENCH_DATABASE_URL")); u != "" {
		env.adminURL = u
		p.Database = "BENCH_DATABASE_URL (databases " + env.prefix + "* created and dropped)"
	} else {
		dir, err := os.MkdirTemp("", "enms-bench-")
		if err != nil {
			return nil, fmt.Errorf("bench: temp dir: %w", err)
		}
		defer os.RemoveAll(dir)
		logf("starting embedded PostgreSQL in %s", dir)
		srv, err := embedpg.Start(ctx, embedpg.Config{DataDir: dir})
		if err != nil {
			return nil, err
		}
		defer srv.Stop()
		env.adminURL = srv.URL
		p.Database = "embedded cluster in a temp dir (fsync off, removed afterwards)"
	}
	defer env.dropAll()
	if err := env.createTemplate(ctx); err != nil {
		return nil, err
	}

	gen, err := simulator.New(simulator.Config{Seed: 1, IncidentRate: simulator.DefaultIncidentRate})
	if err != nil {
		return nil, err
	}
	plant := benchPlant(o.Machines)

	// 1. Raw ingest with and without the triggers.
	if err := benchIngest(ctx, env, gen, plant, o, rep, logf); err != nil {
		return nil, fmt.Errorf("bench ingest: %w", err)
	}

	// 2. The backfill written with no worker at all, for its ceiling.
	if err := benchWriteAlone(ctx, env, gen, plant, cfg, o, rep, stderr, logf); err != nil {
		return nil, fmt.Errorf("bench backfill without a worker: %w", err)
	}

	// 3. The service's database: the simulated plant, a training machine
	// and the burst machines with their history, then the worker.
	url, pool, machines, err := env.seededDB(ctx, "main", plant)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	if err := pool.QueryRow(ctx, `SHOW server_version`).Scan(&rep.Machine.PostgresVersion); err != nil {
		return nil, fmt.Errorf("bench: server version: %w", err)
	}
	from, to := backfillPeriod(o)
	burstHour := from.AddDate(0, 0, -30)
	trainStart := burstHour.Add(-time.Duration(o.TrainHours+24) * time.Hour)
	trainMachine, err := prepareTrainMachine(ctx, pool, trainStart, o.TrainHours)
	if err != nil {
		return nil, fmt.Errorf("bench train data: %w", err)
	}
	burstIDs, err := prepareBurst(ctx, pool, burstHour, o)
	if err != nil {
		return nil, fmt.Errorf("bench burst data: %w", err)
	}

	if pending, _, err := pendingEvents(ctx, pool); err != nil {
		return nil, err
	} else if pending > 0 {
		return nil, fmt.Errorf("bench: %d events pending before the worker starts; the measurements would include them", pending)
	}
	w, err := startBenchWorker(ctx, cfg, url, o, stderr)
	if err != nil {
		return nil, err
	}
	defer w.stop()
	logf("worker and API ready at %s (%s)", w.addr, w.mode)

	// 4. Backfill end to end: write the history while the worker runs,
	// until the worker has processed every event.
	cpu0, err := w.cpuTime()
	if err != nil {
		return nil, err
	}
	if err := benchBackfill(ctx, pool, gen, machines, from, to, o, rep, logf); err != nil {
		return nil, fmt.Errorf("bench backfill: %w", err)
	}
	cpu1, err := w.cpuTime()
	if err != nil {
		return nil, err
	}
	rep.Backfill.WorkerCPUS = round3((cpu1 - cpu0).Seconds())
	// 5. Hour-close latency with the worker idle.
	if err := benchHourClose(ctx, pool, gen, machines, to, o, rep, logf); err != nil {
		return nil, fmt.Errorf("bench hour close: %w", err)
	}
	// 6. 1,000 machines close the same hour.
	if err := benchBurst(ctx, pool, burstIDs, burstHour, rep, logf); err != nil {
		return nil, fmt.Errorf("bench burst: %w", err)
	}
	// 7. Training requests.
	if err := benchTrain(ctx, pool, trainMachine, trainStart, o, rep, logf); err != nil {
		return nil, fmt.Errorf("bench train: %w", err)
	}
	// 8. The API under concurrency.
	if err := benchAPI(ctx, w.addr, machines, from, to, o, rep, logf); err != nil {
		return nil, fmt.Errorf("bench API: %w", err)
	}
	rss, src, err := w.peakRSS()
	if err != nil {
		return nil, err
	}
	rep.WorkerPeakRSSMB, rep.WorkerRSSSource = rss, src
	rep.Machine.LoadAvgEnd = loadAvg()
	rep.ElapsedS = round3(time.Since(started).Seconds())
	rep.Notes = append(rep.Notes,
		"ingest: energy_readings only, COPY batches of 1,000 simulator readings (all machines, time order), alternating which database goes first; without = same schema with ALTER TABLE energy_readings DISABLE TRIGGER USER (foreign keys still checked)",
		"hour_close_latency_ms: worker idle; from the COMMIT acknowledgement of the transaction holding the first reading of the next hour (energy, production and environment rows, as the simulator writes them) to analytics_events.done_at of the hour_closed event (all handlers: anomaly score, rolling model, forecast, KPI day); _from_send_ms counts from before the write",
		"burst_1000_machines_s: one INSERT of a reading for each of the burst machines closes the same hour; from before the INSERT to the last hour_closed event's done_at (burst_hour_close_latency_ms: each machine's done_at from the INSERT's commit acknowledgement); each burst machine has burst_history_days of hourly energy and production rollups before that hour (written directly, not simulated), so this hour is also where each machine's rolling model is first built from that window",
		"backfill_machine_hours_per_s: hour_closed events processed / seconds from the start of the simulated backfill (COPY with triggers, the worker running alongside) until no event is pending; backfill.worker_cpu_s is the CPU time the worker process used meanwhile (/proc/PID/stat utime + stime), the rest of total_s went to PostgreSQL, the simulator and other load; backfill.write_alone_s is the same backfill written into a fresh database of the same cluster with no worker running (its machine-hours/s is the most the end-to-end figure can reach here); backfill.drain_s is a worker then started on that database, from before its process starts until no event is pending (drain_worker_cpu_s: its CPU time from when it answered /health)",
		"train_latency_ms: INSERT into baseline_train_requests to its baseline_train_done notification (status done checked), 6 drivers",
		"api_latency_ms: half /api/v1/kpi/all (random simulated machine, random 24 h window), half /api/v1/anomaly/recent (7-day window, half per machine), over loopback HTTP/1.1 keep-alive; each client sends one untimed request first, so connection setup is not in the figures",
		"HOUR_CLOSE_GRACE is set to 8760h for the worker so the periodic sweep never closes an hour the bench is about to close itself",
		"the machine is shared: compare figures with the load averages recorded in machine.loadavg_*")
	logf("done")
	return rep, nil
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// benchPlant is the demo plant's factories, tariffs and carbon factors with
// n machines cycling through the demo plant's seven kinds.
func benchPlant(n int) simulator.Plant {
	p := simulator.Plant{Factories: simulator.DemoPlant.Factories, Tariffs: simulator.DemoPlant.Tariffs,
		CarbonFactors: simulator.DemoPlant.CarbonFactors}
	for i := range n {
		m := simulator.DemoPlant.Machines[i%len(simulator.DemoPlant.Machines)]
		m.Name = fmt.Sprintf("%s-b%03d", m.Name, i)
		id, err := simulator.ParseUUID(fmt.Sprintf("be0c0a00-0000-4000-8000-%012d", i))
		if err != nil {
			panic(err) // a fixed, valid pattern
		}
		m.ID = id
		p.Machines = append(p.Machines, m)
	}
	return p
}

var benchIngestCols = []string{"time", "machine_id", "power_kw", "energy_kwh", "voltage_v", "current_a", "power_factor"}

func benchIngest(ctx context.Context, env *benchEnv, gen *simulator.Generator, plant simulator.Plant, o benchOptions, rep *benchReport, logf func(string, ...any)) error {
	type target struct {
		pool *pgxpool.Pool
		took time.Duration
	}
	var targets [2]*target // with, without
	var machines []simulator.Machine
	for i, name := range []string{"ingest_with", "ingest_without"} {
		_, pool, ms, err := env.seededDB(ctx, name, plant)
		if err != nil {
			return err
		}
		defer pool.Close()
		if i == 0 {
			machines = ms
		}
		if i == 1 {
			if _, err := pool.Exec(ctx, `ALTER TABLE energy_readings DISABLE TRIGGER USER`); err != nil {
				return err
			}
		}
		targets[i] = &target{pool: pool}
	}
	const batch = 1000
	need := o.IngestBatches * batch
	minutes := need/len(machines) + 2
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b, err := gen.Generate(machines, from, from.Add(time.Duration(minutes)*time.Minute), time.Minute)
	if err != nil {
		return err
	}
	rs := b.Readings
	slices.SortStableFunc(rs, func(a, b simulator.Reading) int { return a.Time.Compare(b.Time) })
	if len(rs) < need {
		return fmt.Errorf("generated %d readings, want %d", len(rs), need)
	}
	rows := make([][]any, need)
	for i := range rows {
		r := &rs[i]
		rows[i] = []any{r.Time, pgtype.UUID{Bytes: r.MachineID, Valid: true}, r.PowerKW, r.EnergyKWh, r.VoltageV, r.CurrentA, r.PowerFactor}
	}
	logf("ingest: %d batches of %d rows into two databases", o.IngestBatches, batch)
	conns := make([]*pgxpool.Conn, 2)
	for i, t := range targets {
		if conns[i], err = t.pool.Acquire(ctx); err != nil {
			return err
		}
		defer conns[i].Release()
	}
	for i := range o.IngestBatches {
		order := []int{0, 1}
		if i%2 == 1 {
			order = []int{1, 0}
		}
		for _, k := range order {
			start := time.Now()
			if _, err := conns[k].CopyFrom(ctx, pgx.Identifier{"energy_readings"}, benchIngestCols,
				pgx.CopyFromRows(rows[i*batch:(i+1)*batch])); err != nil {
				return fmt.Errorf("batch %d: %w", i, err)
			}
			targets[k].took += time.Since(start)
		}
	}
	n := float64(need)
	rep.IngestWithTriggers = math.Round(n / targets[0].took.Seconds())
	rep.IngestWithoutTriggers = math.Round(n / targets[1].took.Seconds())
	rep.IngestRatio = round3(targets[1].took.Seconds() / targets[0].took.Seconds())
	rep.IngestRows = need
	rep.IngestMethod = "COPY, 1,000-row batches"
	logf("ingest: %.0f rows/s with triggers, %.0f without (ratio %.2f)", rep.IngestWithTriggers, rep.IngestWithoutTriggers, rep.IngestRatio)
	return nil
}

// benchFactory is the demo plant's first factory (the bench's extra machines
// live there).
var benchFactory = simulator.DemoPlant.Factories[0].ID.String()

// prepareTrainMachine adds a machine with hours of hourly rollups from t0
// whose six drivers vary independently (simulator.WriteTrainingHours, the
// baseline benchmark's data).
func prepareTrainMachine(ctx context.Context, pool *pgxpool.Pool, t0 time.Time, hours int) (string, error) {
	var m string
	if err := pool.QueryRow(ctx, `INSERT INTO machines (factory_id, name, type) VALUES ($1, 'bench-train', 'compressor') RETURNING id::text`,
		benchFactory).Scan(&m); err != nil {
		return "", err
	}
	return m, simulator.WriteTrainingHours(ctx, pool, m, t0, hours)
}

// prepareBurst creates o.BurstMachines machines with o.BurstHistoryDays of
// hourly rollups before hour, and one raw reading in hour (so a reading in
// the next hour closes it).
func prepareBurst(ctx context.Context, pool *pgxpool.Pool, hour time.Time, o benchOptions) ([]string, error) {
	rows, err := pool.Query(ctx, `INSERT INTO machines (factory_id, name, type, rated_power_kw)
		SELECT $1, 'burst-' || lpad(i::text, 4, '0'), 'motor', 30 FROM generate_series(1, $2) i RETURNING id::text`,
		benchFactory, o.BurstMachines)
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	// The raw reading first: it opens the hour without closing any (the
	// machines have no data yet). The history written into the rollups
	// afterwards fires no trigger, so the next hour's reading closes exactly
	// one hour per machine.
	if _, err := pool.Exec(ctx, `INSERT INTO energy_readings (time, machine_id, power_kw, energy_kwh)
		SELECT $1, m::uuid, 25, 25 FROM unnest($2::text[]) m`, hour, ids); err != nil {
		return nil, err
	}
	start := hour.AddDate(0, 0, -o.BurstHistoryDays)
	if _, err := pool.Exec(ctx, `
		INSERT INTO energy_readings_1hour (bucket, machine_id, reading_count, sum_power_kw, min_power_kw, max_power_kw,
		                                   total_energy_kwh, peak_demand_kw, peak_demand_at)
		SELECT h, m::uuid, 60, 60 * p, p * 0.8, p * 1.3, p, p * 1.2, h + interval '15 minutes'
		FROM unnest($3::text[]) m, generate_series($1::timestamptz, $2::timestamptz - interval '1 hour', interval '1 hour') h,
		     LATERAL (SELECT 20 + 10 * sin(extract(epoch FROM h) / 3600 / 24 * 2 * pi()) + random() * 5 AS p) x`,
		start, hour, ids); err != nil {
		return nil, err
	}
	if _, err := pool.Exec(ctx, `
		INSERT INTO production_data_1hour (bucket, machine_id, reading_count, total_production_count, running_seconds)
		SELECT h, m::uuid, 60, 100 + (random() * 20)::int, 3600
		FROM unnest($3::text[]) m, generate_series($1::timestamptz, $2::timestamptz - interval '1 hour', interval '1 hour') h`,
		start, hour, ids); err != nil {
		return nil, err
	}
	_, err = pool.Exec(ctx, `ANALYZE`) // as autovacuum would after a bulk load
	return ids, err
}

// pendingEvents counts events not yet done (parked ones excluded).
func pendingEvents(ctx context.Context, pool *pgxpool.Pool) (pending, parked int64, err error) {
	err = pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE done_at IS NULL AND parked_at IS NULL),
		count(*) FILTER (WHERE parked_at IS NOT NULL) FROM analytics_events`).Scan(&pending, &parked)
	return pending, parked, err
}

// waitIdle waits until no event is pending, polling every interval.
func waitIdle(ctx context.Context, pool *pgxpool.Pool, interval, timeout time.Duration) (parked int64, err error) {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		pending, parked, err := pendingEvents(ctx, pool)
		if err != nil {
			return 0, err
		}
		if pending == 0 {
			return parked, nil
		}
		if time.Now().After(deadline) {
			return parked, fmt.Errorf("%d events still pending after %s", pending, timeout)
		}
		select {
		case <-ctx.Done():
			return parked, ctx.Err()
		case <-tick.C:
		}
	}
}

// benchWriteAlone writes the backfill benchBackfill writes, over the same
// period, into a database of its own that no worker serves, then starts a
// worker on it and times how fast the worker alone drains the backlog.
func benchWriteAlone(ctx context.Context, env *benchEnv, gen *simulator.Generator, plant simulator.Plant, cfg Config, o benchOptions, rep *benchReport, stderr io.Writer, logf func(string, ...any)) error {
	url, pool, machines, err := env.seededDB(ctx, "write_alone", plant)
	if err != nil {
		return err
	}
	defer pool.Close()
	from, to := backfillPeriod(o)
	start := time.Now()
	if _, err := simulator.Backfill(ctx, pool, gen, machines, simulator.BackfillOptions{From: from, To: to, Step: o.Step}); err != nil {
		return err
	}
	wrote := time.Since(start)
	var hours int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM analytics_events WHERE kind = 'hour_closed'`).Scan(&hours); err != nil {
		return err
	}
	bf := &rep.Backfill
	bf.WriteAloneS = round3(wrote.Seconds())
	bf.WriteAloneMachineHoursPerS = math.Round(float64(hours)/wrote.Seconds()*10) / 10
	logf("backfill without a worker: %d machine-hours written in %.1fs (%.0f/s)", hours, wrote.Seconds(), bf.WriteAloneMachineHoursPerS)

	// The drain counts from before the worker process starts (its start is
	// in the figure) until no event is pending.
	start = time.Now()
	w, err := startBenchWorker(ctx, cfg, url, o, stderr)
	if err != nil {
		return err
	}
	defer w.stop()
	cpu0, err := w.cpuTime()
	if err != nil {
		return err
	}
	parked, err := waitIdle(ctx, pool, 50*time.Millisecond, 30*time.Minute)
	if err != nil {
		return err
	}
	drained := time.Since(start)
	cpu1, err := w.cpuTime()
	if err != nil {
		return err
	}
	if parked > 0 {
		return fmt.Errorf("%d events parked while the worker drained the backlog", parked)
	}
	bf.DrainS = round3(drained.Seconds())
	bf.DrainMachineHoursPerS = math.Round(float64(hours)/drained.Seconds()*10) / 10
	bf.DrainWorkerCPUS = round3((cpu1 - cpu0).Seconds())
	logf("backfill without a worker: a worker started afterwards drained it in %.1fs (%.0f/s)", drained.Seconds(), bf.DrainMachineHoursPerS)
	return nil
}

// backfillPeriod is the simulated period of the backfill.
func backfillPeriod(o benchOptions) (from, to time.Time) {
	to = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	return to.AddDate(0, 0, -o.Days), to
}

func benchBackfill(ctx context.Context, pool *pgxpool.Pool, gen *simulator.Generator, machines []simulator.Machine, from, to time.Time, o benchOptions, rep *benchReport, logf func(string, ...any)) error {
	var before int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM analytics_events WHERE kind = 'hour_closed' AND done_at IS NOT NULL`).Scan(&before); err != nil {
		return err
	}
	logf("backfill: %d machines × %d days at %s, worker running", len(machines), o.Days, o.Step)
	start := time.Now()
	res, err := simulator.Backfill(ctx, pool, gen, machines, simulator.BackfillOptions{From: from, To: to, Step: o.Step})
	if err != nil {
		return err
	}
	wrote := time.Since(start)
	logf("backfill: written in %.1fs (%d readings); waiting for the worker", wrote.Seconds(), res.Readings)
	parked, err := waitIdle(ctx, pool, 50*time.Millisecond, 30*time.Minute)
	if err != nil {
		return err
	}
	total := time.Since(start)
	var after int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM analytics_events WHERE kind = 'hour_closed' AND done_at IS NOT NULL`).Scan(&after); err != nil {
		return err
	}
	bf := &rep.Backfill
	bf.MachineHours = after - before
	bf.Readings = res.Readings
	bf.WriteS = round3(wrote.Seconds())
	bf.TotalS = round3(total.Seconds())
	bf.CatchUpAfterS = round3((total - wrote).Seconds())
	bf.EventsParked = parked
	if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status IN ('normal', 'anomalous')), count(*) FROM anomaly_hours`).
		Scan(&bf.AnomalyHours, &bf.AnomalyHoursTotal); err != nil {
		return err
	}
	if bf.MachineHours == 0 {
		return errors.New("the backfill closed no hour")
	}
	rep.BackfillMachineHoursPerS = math.Round(float64(bf.MachineHours)/total.Seconds()*10) / 10
	logf("backfill: %d machine-hours in %.1fs end to end (%.0f/s), %d parked", bf.MachineHours, total.Seconds(), rep.BackfillMachineHoursPerS, parked)
	return nil
}

// eventDone waits for the hour_closed event of (machine, hour) to be done and
// returns its done_at.
func eventDone(ctx context.Context, pool *pgxpool.Pool, machine simulator.UUID, hour time.Time, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		var done time.Time
		err := pool.QueryRow(ctx, `SELECT done_at FROM analytics_events
			WHERE kind = 'hour_closed' AND machine_id = $1 AND bucket = $2 AND done_at IS NOT NULL LIMIT 1`,
			pgtype.UUID{Bytes: machine, Valid: true}, hour).Scan(&done)
		if err == nil {
			return done, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return done, err
		}
		if time.Now().After(deadline) {
			return done, fmt.Errorf("hour_closed of %s at %s not done after %s", machine, hour.Format(time.RFC3339), timeout)
		}
		select {
		case <-ctx.Done():
			return done, ctx.Err()
		case <-tick.C:
		}
	}
}

// benchHourClose closes LatencyHours more hours of every machine, one at a
// time with the worker idle: the first reading of hour h+1 is written alone
// (it closes hour h), then, once the hour's analytics are done, the rest of
// hour h+1.
func benchHourClose(ctx context.Context, pool *pgxpool.Pool, gen *simulator.Generator, machines []simulator.Machine, to time.Time, o benchOptions, rep *benchReport, logf func(string, ...any)) error {
	b, err := gen.Generate(machines, to, to.Add(time.Duration(o.LatencyHours)*time.Hour), o.Step)
	if err != nil {
		return err
	}
	type key struct {
		m simulator.UUID
		h time.Time
	}
	byHour := map[key][]simulator.Reading{}
	for _, r := range b.Readings {
		k := key{r.MachineID, r.Time.Truncate(time.Hour)}
		byHour[k] = append(byHour[k], r)
	}
	wr := simulator.NewWriter(pool, gen.Seed())
	logf("hour close: %d samples, worker idle", len(machines)*o.LatencyHours)
	var fromAck, fromSend []time.Duration
	for j := range o.LatencyHours {
		h := to.Add(time.Duration(j) * time.Hour)
		for _, m := range machines {
			rs := byHour[key{m.ID, h}]
			if len(rs) == 0 {
				return fmt.Errorf("no simulated readings of %s in %s", m.Name, h.Format(time.RFC3339))
			}
			sent := time.Now()
			if _, err := wr.Write(ctx, &simulator.Batch{Readings: rs[:1]}); err != nil {
				return err
			}
			acked := time.Now()
			done, err := eventDone(ctx, pool, m.ID, h.Add(-time.Hour), time.Minute)
			if err != nil {
				return err
			}
			fromSend = append(fromSend, max(done.Sub(sent), 0))
			fromAck = append(fromAck, max(done.Sub(acked), 0))
			if len(rs) > 1 {
				if _, err := wr.Write(ctx, &simulator.Batch{Readings: rs[1:]}); err != nil {
					return err
				}
			}
		}
	}
	rep.HourCloseLatency = latencies(fromAck)
	rep.HourCloseLatencyFromSend = latencies(fromSend)
	logf("hour close: p50 %.1f ms, p99 %.1f ms", rep.HourCloseLatency.P50, rep.HourCloseLatency.P99)
	// the rest of the last hours wrote nothing that closes an hour; let any
	// status events drain before the next measurement
	_, err = waitIdle(ctx, pool, 20*time.Millisecond, time.Minute)
	return err
}

func benchBurst(ctx context.Context, pool *pgxpool.Pool, ids []string, hour time.Time, rep *benchReport, logf func(string, ...any)) error {
	logf("burst: %d machines close %s", len(ids), hour.Format(time.RFC3339))
	sent := time.Now()
	if _, err := pool.Exec(ctx, `INSERT INTO energy_readings (time, machine_id, power_kw, energy_kwh)
		SELECT $1, m::uuid, 25, 25 FROM unnest($2::text[]) m`, hour.Add(time.Hour), ids); err != nil {
		return err
	}
	acked := time.Now()
	if _, err := waitIdle(ctx, pool, 20*time.Millisecond, 10*time.Minute); err != nil {
		return err
	}
	rows, err := pool.Query(ctx, `SELECT done_at FROM analytics_events
		WHERE kind = 'hour_closed' AND bucket = $1 AND machine_id = ANY($2::uuid[]) AND done_at IS NOT NULL`, hour, ids)
	if err != nil {
		return err
	}
	dones, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	if err != nil {
		return err
	}
	lat := make([]time.Duration, len(dones))
	for i, d := range dones {
		lat[i] = max(d.Sub(acked), 0)
	}
	rep.BurstHourCloseLatency = latencies(lat)
	n := int64(len(dones))
	if n == 0 || n != int64(len(ids)) {
		return fmt.Errorf("%d of %d burst hours were processed", n, len(ids))
	}
	took := slices.MaxFunc(dones, time.Time.Compare).Sub(sent).Seconds()
	rep.Burst1000MachinesS = round3(took)
	rep.BurstMachines = len(ids)
	rep.BurstEventsPerS = math.Round(float64(n) / took)
	logf("burst: %d events in %.2fs", n, took)
	return nil
}

func benchTrain(ctx context.Context, pool *pgxpool.Pool, machine string, t0 time.Time, o benchOptions, rep *benchReport, logf func(string, ...any)) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer func() {
		conn.Conn().Close(ctx) // the connection LISTENs: do not hand it back
		conn.Release()
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+string(triggers.ChannelTrainDone)); err != nil {
		return err
	}
	logf("train: %d requests over %d hourly samples", o.TrainSamples, o.TrainHours)
	end := t0.Add(time.Duration(o.TrainHours) * time.Hour)
	var lat []time.Duration
	for range o.TrainSamples {
		began := time.Now()
		var id string
		if err := conn.QueryRow(ctx, `INSERT INTO baseline_train_requests (machine_id, drivers, training_start, training_end)
			VALUES ($1, $2, $3, $4) RETURNING id::text`, machine, simulator.TrainingDrivers, t0, end).Scan(&id); err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		for {
			n, err := conn.Conn().WaitForNotification(wctx)
			if err != nil {
				cancel()
				return fmt.Errorf("wait for training request %s: %w", id, err)
			}
			if n.Payload == id {
				break
			}
		}
		cancel()
		lat = append(lat, time.Since(began))
		var status string
		var msg *string
		if err := conn.QueryRow(ctx, `SELECT status, error FROM baseline_train_requests WHERE id = $1`, id).Scan(&status, &msg); err != nil {
			return err
		}
		if status != "done" {
			return fmt.Errorf("training request ended %s: %v", status, msg)
		}
	}
	rep.TrainLatency = latencies(lat)
	rep.TrainHourSamples = o.TrainHours
	logf("train: p50 %.1f ms, p99 %.1f ms", rep.TrainLatency.P50, rep.TrainLatency.P99)
	return nil
}

func benchAPI(ctx context.Context, addr string, machines []simulator.Machine, from, to time.Time, o benchOptions, rep *benchReport, logf func(string, ...any)) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	base := "http://127.0.0.1:" + port
	transport := &nethttp.Transport{MaxIdleConnsPerHost: o.APIClients, MaxConnsPerHost: o.APIClients}
	defer transport.CloseIdleConnections()
	client := &nethttp.Client{Transport: transport, Timeout: time.Minute}
	hours := int(to.Sub(from) / time.Hour)
	next := func(rng *rand.Rand, i int64) string {
		if i%2 == 0 {
			m := machines[rng.IntN(len(machines))]
			s := from.Add(time.Duration(rng.IntN(max(hours-24, 0)+1)) * time.Hour)
			return base + "/api/v1/kpi/all?machine_id=" + m.ID.String() + "&start=" + s.Format(time.RFC3339) +
				"&end=" + s.Add(24*time.Hour).Format(time.RFC3339)
		}
		s := from.Add(time.Duration(rng.IntN(hours+1)) * time.Hour).Add(-7 * 24 * time.Hour)
		q := "start=" + s.Format(time.RFC3339) + "&end=" + s.AddDate(0, 0, 7).Format(time.RFC3339)
		if rng.IntN(2) == 0 {
			q += "&machine_id=" + machines[rng.IntN(len(machines))].ID.String()
		}
		return base + "/api/v1/anomaly/recent?" + q
	}
	// Both routes answer before anything is timed.
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range int64(2) {
		req, err := nethttp.NewRequestWithContext(ctx, "GET", next(rng, i), nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != nethttp.StatusOK {
			return fmt.Errorf("GET %s: %d %s", req.URL, resp.StatusCode, body)
		}
	}
	logf("API: %d requests from %d clients (after one untimed request each)", o.APIRequests, o.APIClients)
	lat := make([]time.Duration, o.APIRequests)
	sent := make([]bool, o.APIRequests) // a request that could not be built has no latency
	var issued, non200 atomic.Int64
	var wg, warm sync.WaitGroup
	warm.Add(o.APIClients)
	for c := range o.APIClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			// Warm up: this client's HTTP connection, and the server's
			// database connections, exist before anything is timed.
			if req, err := nethttp.NewRequestWithContext(ctx, "GET", next(rng, int64(c)), nil); err == nil {
				if resp, err := client.Do(req); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
			warm.Done()
			warm.Wait()
			for {
				i := issued.Add(1) - 1
				if i >= int64(o.APIRequests) {
					return
				}
				req, err := nethttp.NewRequestWithContext(ctx, "GET", next(rng, i), nil)
				if err != nil {
					non200.Add(1)
					continue
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				lat[i], sent[i] = time.Since(t0), true
				if err != nil || resp.StatusCode != nethttp.StatusOK {
					non200.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	var measured []time.Duration
	for i, d := range lat {
		if sent[i] {
			measured = append(measured, d)
		}
	}
	rep.APILatency = latencies(measured)
	rep.APIConcurrency = o.APIClients
	rep.APINon200 = non200.Load()
	logf("API: p50 %.1f ms, p99 %.1f ms, %d not 200", rep.APILatency.P50, rep.APILatency.P99, rep.APINon200)
	if rep.APINon200 > int64(o.APIRequests)/10 {
		return fmt.Errorf("%d of %d API requests failed", rep.APINon200, o.APIRequests)
	}
	return nil
}

// benchWorker is the service under measurement: a child `serve` process, or
// serve in this process.
type benchWorker struct {
	addr string
	mode string
	cmd  *exec.Cmd
	done chan error
	stop func()
}

func (w *benchWorker) statusPath(file string) string {
	if w.cmd != nil {
		return fmt.Sprintf("/proc/%d/%s", w.cmd.Process.Pid, file)
	}
	return "/proc/self/" + file
}

// cpuTime is the CPU time (user + system, all threads) the worker's process
// has used so far: /proc/PID/stat utime and stime, in USER_HZ ticks (100 per
// second on Linux).
func (w *benchWorker) cpuTime() (time.Duration, error) {
	b, err := os.ReadFile(w.statusPath("stat"))
	if err != nil {
		return 0, fmt.Errorf("read worker CPU time: %w", err)
	}
	// the command name in parentheses may hold spaces: fields start after it
	k := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[k+1:]))
	if k < 0 || len(f) < 13 {
		return 0, fmt.Errorf("read worker CPU time: unexpected %q", b)
	}
	var ticks int64
	for _, v := range f[11:13] { // utime, stime (fields 14 and 15 of stat)
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("read worker CPU time: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / 100), nil
}

func (w *benchWorker) peakRSS() (float64, string, error) {
	path, src := "/proc/self/status", "in-process VmHWM of the bench process (worker, API and the bench's own generator and clients)"
	if w.cmd != nil {
		path = fmt.Sprintf("/proc/%d/status", w.cmd.Process.Pid)
		src = "VmHWM of the child `enms-analytics serve` process (worker + API)"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, "", fmt.Errorf("read peak RSS: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			kb, err := strconv.ParseFloat(f[0], 64)
			if err != nil || len(f) < 2 || f[1] != "kB" {
				return 0, "", fmt.Errorf("read peak RSS: unexpected %q", line)
			}
			return math.Round(kb/1024*10) / 10, src, nil
		}
	}
	return 0, "", fmt.Errorf("read peak RSS: no VmHWM in %s", path)
}

// benchServeEnv is what the bench changes in the worker's configuration.
var benchServeEnv = map[string]string{
	"MIGRATE_ON_START": "false",
	"LOG_LEVEL":        "warn",
	"HOUR_CLOSE_GRACE": "8760h",
}

func startBenchWorker(ctx context.Context, cfg Config, url string, o benchOptions, stderr io.Writer) (*benchWorker, error) {
	models, err := os.MkdirTemp("", "enms-bench-models-")
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	w := &benchWorker{addr: addr, done: make(chan error, 1)}
	if o.InProcess {
		getenv := func(k string) string {
			switch k {
			case "MODEL_STORAGE_PATH":
				return models
			case "DATABASE_URL":
				return url
			}
			return benchServeEnv[k]
		}
		scfg, err := LoadConfig(getenv)
		if err != nil {
			ln.Close()
			return nil, err
		}
		scfg.WorkerConcurrency = cfg.WorkerConcurrency
		sctx, cancel := context.WithCancel(ctx)
		ready := make(chan struct{})
		logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		go func() {
			w.done <- serve(sctx, scfg, logger, serveOptions{DatabaseURL: url, Listener: ln, Ready: func(string) { close(ready) }})
		}()
		w.mode = "in-process"
		w.stop = func() {
			cancel()
			<-w.done
			os.RemoveAll(models)
		}
		select {
		case <-ready:
		case err := <-w.done:
			cancel()
			os.RemoveAll(models)
			return nil, fmt.Errorf("bench worker: %w", err)
		}
		return w, benchWaitHealthy(ctx, addr, 2*time.Minute)
	}
	ln.Close() // the child listens on the port
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(exe, "serve")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+url, "API_PORT="+port, "MODEL_STORAGE_PATH="+models,
		"WORKER_CONCURRENCY="+strconv.Itoa(cfg.WorkerConcurrency))
	for k, v := range benchServeEnv {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start `serve`: %w", err)
	}
	go func() { w.done <- cmd.Wait() }()
	w.cmd, w.mode = cmd, "child process `serve`, pid "+strconv.Itoa(cmd.Process.Pid)
	w.stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-w.done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-w.done
		}
		os.RemoveAll(models)
	}
	if err := benchWaitHealthy(ctx, addr, 2*time.Minute); err != nil {
		w.stop()
		return nil, fmt.Errorf("bench: `serve` did not become healthy: %w", err)
	}
	return w, nil
}

// benchWaitHealthy polls /health until it answers 200. Unlike dev's
// waitHealthy each request may take long: on a loaded machine the health
// check's database round trip can exceed dev's two seconds.
func benchWaitHealthy(ctx context.Context, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &nethttp.Client{Timeout: 30 * time.Second}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		req, err := nethttp.NewRequestWithContext(ctx, "GET", "http://"+addr+"/health", nil)
		if err != nil {
			return err
		}
		req.Close = true
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == nethttp.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("/health did not answer 200 within %s (last: %s)", timeout, last)
		case <-tick.C:
		}
	}
}
