// Package fault_test is the fault suite of issue 9: the real worker binary
// (`enms-analytics serve`) is SIGKILLed, its database restarted, run as
// three replicas and cut off from its LISTEN connection while a backfill is
// written and processed, and every time the final analytics state must equal
// that of one uninterrupted worker: no duplicates, no missing hours.
package fault_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/enms/enms-analytics/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// waitTimeout bounds every wait for the worker to finish; a healthy run on
// an idle machine needs a few seconds of it.
const waitTimeout = 90 * time.Second

// The backfill every test writes: three machines × three days of
// quarter-hour readings, plus one reading at the start of day four so that
// the last hour of day three closes by data, not by the sweeper (whose
// timing would differ between runs).
const (
	nMachines = 3
	nDays     = 3
	// closedHours is every hour written except the open one of day four.
	closedHours = nMachines * nDays * 24 // 216
)

var (
	factoryID  = "f0000000-0000-4000-8000-000000000001"
	machineIDs = []string{
		"a0000000-0000-4000-8000-000000000001",
		"a0000000-0000-4000-8000-000000000002",
		"a0000000-0000-4000-8000-000000000003",
	}
	day0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC) // a Monday
)

// ---- the worker binary ----

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds cmd/enms-analytics once per test binary. The output path is
// fixed under the temporary directory, so repeated runs overwrite it rather
// than pile up copies.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir := filepath.Join(os.TempDir(), "enms-fault-bin")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			buildErr = err
			return
		}
		// Built under a name of its own, then renamed into place: a
		// concurrent test run's processes keep the file they started.
		binPath = filepath.Join(dir, "enms-analytics")
		tmp := fmt.Sprintf("%s.%d", binPath, os.Getpid())
		cmd := exec.Command("go", "build", "-o", tmp, "./cmd/enms-analytics")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/enms-analytics: %v\n%s", err, out)
			return
		}
		buildErr = os.Rename(tmp, binPath)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// moduleRoot is the nearest directory above the working directory that
// holds go.mod (go test runs in the package directory).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// proc is one `enms-analytics serve` process.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  *syncBuffer
}

// workerEnv is the configuration every worker process runs with.
func workerEnv(t *testing.T, url string, extra ...string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"DATABASE_URL=" + url,
		"API_PORT=0", // serve listens on ":0": any free port
		"MIGRATE_ON_START=false",
		"LOG_LEVEL=warn",
		"MODEL_STORAGE_PATH=" + t.TempDir(),
		// Scoring starts after one day of normal hours instead of a week,
		// so the three days produce scored hours and anomalies.
		"ANOMALY_MIN_HISTORY_HOURS=24",
		// No hour may close by the sweeper: which hours it closes depends
		// on when it runs. Data time is in the past, so only a grace longer
		// than the data's age keeps it out.
		"HOUR_CLOSE_GRACE=87600h",
		// A killed worker's claimed events are taken over after the lease.
		"WORKER_LEASE_DURATION=3s",
		"LISTENER_RECONNECT_DELAY=100ms",
		"POLL_INTERVAL=500ms",
	}
	return append(env, extra...)
}

// startWorker starts `enms-analytics serve` with env. The process is killed
// if the test ends first (and, through Pdeathsig, if the test binary dies).
func startWorker(t *testing.T, env []string) *proc {
	t.Helper()
	p := &proc{done: make(chan struct{}), log: &syncBuffer{}}
	p.cmd = exec.Command(binary(t), "serve")
	p.cmd.Env = env
	p.cmd.Stdout = p.log
	p.cmd.Stderr = p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("worker %d log:\n%s", p.cmd.Process.Pid, p.log.tail(30))
		}
	})
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop asks the process to shut down gracefully and fails unless it exits
// cleanly.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Errorf("worker did not stop within 30 s of SIGTERM")
		p.kill()
	}
	if p.err != nil {
		t.Errorf("worker exited with %v; log:\n%s", p.err, p.log.tail(30))
	}
}

// exited fails the test when the process has exited on its own.
func (p *proc) checkAlive(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("worker exited on its own (%v); log:\n%s", p.err, p.log.tail(30))
	default:
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	lines := strings.Split(strings.TrimRight(b.buf.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ---- the plant and its backfill ----

// seedPlant creates the factory and its machines (UTC, 15-minute data).
func seedPlant(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO factories (id, name, timezone) VALUES ($1, 'Fault Plant', 'UTC')`, factoryID)
	if err == nil {
		_, err = pool.Exec(ctx, `
			INSERT INTO machines (id, factory_id, name, type, rated_power_kw, data_interval_seconds)
			SELECT m::uuid, $1, 'Machine-' || i, 'compressor', 60, 900
			  FROM unnest($2::text[]) WITH ORDINALITY AS u (m, i)`, factoryID, machineIDs)
	}
	if err != nil {
		t.Fatalf("seed plant: %v", err)
	}
}

// writeDay writes one day of every machine in one transaction, as a
// gateway flushing a day's buffer would: 96 energy readings and 96
// production records per machine. Power follows the hour of day around a
// level of its own per machine (30, 40, 50 kW), with a 3-step sawtooth of
// noise; machine 1 draws twice its power from 09:00 to 12:00 on day 2 (the
// anomaly the scorer must find identically in every run). Production
// follows power. With day = nDays only the first reading of the next day is
// written, which closes the last hour of the backfill.
func writeDay(ctx context.Context, pool *pgxpool.Pool, day int) error {
	n := 96
	if day == nDays {
		n = 1
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for i, m := range machineIDs {
			if _, err := tx.Exec(ctx, `
				INSERT INTO energy_readings (time, machine_id, power_kw)
				SELECT ts, $1, ($4 + 10 * sin(extract(hour FROM ts) * pi() / 12) + (q % 3))
				             * CASE WHEN $5 AND $2 = 2 AND extract(hour FROM ts) BETWEEN 9 AND 11 THEN 2 ELSE 1 END
				  FROM generate_series(0, $3 - 1) AS q,
				       LATERAL (SELECT $6::timestamptz + ($2 * 96 + q) * interval '15 minutes' AS ts) t`,
				m, day, n, 30+10*i, i == 0, day0); err != nil {
				return fmt.Errorf("energy of machine %d day %d: %w", i+1, day, err)
			}
			if _, err := tx.Exec(ctx, `
				INSERT INTO production_data (time, machine_id, production_count, operating_mode)
				SELECT ts, $1, (20 + 5 * sin(extract(hour FROM ts) * pi() / 12))::int + (q % 3), 'running'
				  FROM generate_series(0, $3 - 1) AS q,
				       LATERAL (SELECT $4::timestamptz + ($2 * 96 + q) * interval '15 minutes' AS ts) t`,
				m, day, n, day0); err != nil {
				return fmt.Errorf("production of machine %d day %d: %w", i+1, day, err)
			}
		}
		return nil
	})
}

// writeBackfill writes every day; between days it calls between (if set).
func writeBackfill(ctx context.Context, pool *pgxpool.Pool, between func(day int) error) error {
	for day := 0; day <= nDays; day++ {
		if err := writeDay(ctx, pool, day); err != nil {
			return err
		}
		if between != nil {
			if err := between(day); err != nil {
				return err
			}
		}
	}
	return nil
}

// ---- progress and completion ----

// progress is the state of the outbox.
type progress struct {
	done, pending, parked int
	closedHoursDone       int // distinct machine-hours whose hour_closed is done
	lastError             string
}

func readProgress(ctx context.Context, pool *pgxpool.Pool) (progress, error) {
	var p progress
	err := pool.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE done_at IS NOT NULL),
		       count(*) FILTER (WHERE done_at IS NULL AND parked_at IS NULL),
		       count(*) FILTER (WHERE parked_at IS NOT NULL),
		       (SELECT count(*) FROM (SELECT DISTINCT machine_id, bucket FROM analytics_events
		                               WHERE kind = 'hour_closed' AND done_at IS NOT NULL) d),
		       coalesce(max(last_error) FILTER (WHERE parked_at IS NOT NULL), '')
		  FROM analytics_events`).Scan(&p.done, &p.pending, &p.parked, &p.closedHoursDone, &p.lastError)
	return p, err
}

// waitUntil polls cond every 20 ms until it holds, failing after timeout.
// Polling the database is the condition here: the worker is another
// process and reports nothing else.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Logf("%s: %v (retrying)", what, err)
		}
		if ok {
			return
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
	}
}

// waitAllDone waits until every hour of the backfill has been processed
// and nothing is pending; a parked event fails at once (with a fault
// injected by the test, no event may fail for good).
func waitAllDone(t *testing.T, pool *pgxpool.Pool, alive func(*testing.T)) {
	t.Helper()
	ctx := context.Background()
	var last progress
	start := time.Now()
	logged := false
	waitUntil(t, waitTimeout, "every closed hour processed", func() (bool, error) {
		if alive != nil {
			alive(t)
		}
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		p, err := readProgress(qctx, pool)
		if err != nil {
			return false, err
		}
		if p.parked > 0 {
			t.Fatalf("%d events parked; one failed with: %s", p.parked, p.lastError)
		}
		last = p
		if p.pending == 0 && p.closedHoursDone == closedHours {
			return true, nil
		}
		if !logged && time.Since(start) > waitTimeout-time.Second {
			logPending(t, pool) // about to time out: say what is stuck
			logged = true
		}
		return false, nil
	})
	t.Logf("outbox: %d events done (%d machine-hours)", last.done, last.closedHoursDone)
}

// logPending logs the first pending events.
func logPending(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT format('%s %s %s %s attempts=%s locked_until=%s by=%s run_after=%s err=%s', id, kind, machine_id, bucket,
		              attempts, locked_until, locked_by, run_after, last_error)
		  FROM analytics_events WHERE done_at IS NULL ORDER BY id LIMIT 10`)
	if err != nil {
		t.Logf("pending events: %v", err)
		return
	}
	lines, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	t.Logf("now %s; pending events:\n%s", time.Now().UTC().Format(time.RFC3339Nano), strings.Join(lines, "\n"))
}

// ---- the state compared ----

// resultTables are the worker's results, each with the columns left out of
// the comparison: wall-clock times (created_at, updated_at, scored_at,
// issued_at, computed_at), random ids, and anomaly_machine_state.generation,
// which counts scoring passes (a pass redone after a kill counts again)
// rather than describing a result.
var resultTables = []struct{ table, omit string }{
	{"anomalies", "{id,created_at}"},
	{"anomaly_hours", "{scored_at}"},
	{"anomaly_machine_state", "{generation,updated_at}"},
	{"baseline_rolling_state", "{updated_at,source_baseline,last_published_id}"},
	{"baseline_rolling_hours", "{}"},
	{"baseline_rolling_kept_out", "{}"},
	{"energy_baselines", "{id,created_at}"},
	{"energy_forecasts", "{issued_at,created_at}"},
	{"kpi_daily_snapshots", "{computed_at}"},
	{"analytics_machine_state", "{updated_at}"},
}

// state is the canonical dump of the result tables: per table, its rows as
// JSON objects (without the omitted columns) in text order.
type state map[string][]string

func dumpState(t *testing.T, pool *pgxpool.Pool) state {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := state{}
	for _, rt := range resultTables {
		rows, err := pool.Query(ctx, fmt.Sprintf(
			`SELECT r::text FROM (SELECT to_jsonb(t) - $1::text[] AS r FROM %s t) s ORDER BY r::text`,
			pgx.Identifier{rt.table}.Sanitize()), rt.omit)
		if err != nil {
			t.Fatalf("dump %s: %v", rt.table, err)
		}
		s[rt.table], err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("dump %s: %v", rt.table, err)
		}
	}
	return s
}

// checkComplete fails unless the state covers the whole backfill exactly
// once: every closed machine-hour scored once, one daily snapshot per
// machine and day, and no two anomaly rows for one machine, type and start.
func checkComplete(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	var hours, distinctHours, snapshots, anomalies, distinctAnomalies int
	err := pool.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM anomaly_hours),
		       (SELECT count(DISTINCT (machine_id, bucket)) FROM anomaly_hours),
		       (SELECT count(*) FROM kpi_daily_snapshots),
		       (SELECT count(*) FROM anomalies),
		       (SELECT count(DISTINCT (machine_id, anomaly_type, detected_at)) FROM anomalies)`).
		Scan(&hours, &distinctHours, &snapshots, &anomalies, &distinctAnomalies)
	if err != nil {
		t.Fatal(err)
	}
	if hours != closedHours || distinctHours != closedHours {
		t.Errorf("anomaly_hours has %d rows (%d distinct machine-hours), want %d: every closed hour once", hours, distinctHours, closedHours)
	}
	if snapshots != nMachines*nDays {
		t.Errorf("%d daily KPI snapshots, want %d (machines × closed days)", snapshots, nMachines*nDays)
	}
	if anomalies != distinctAnomalies {
		t.Errorf("%d anomaly rows for %d distinct (machine, type, detected_at): duplicates", anomalies, distinctAnomalies)
	}
}

// compareState fails with the first differences of each table.
func compareState(t *testing.T, got, want state) {
	t.Helper()
	for _, rt := range resultTables {
		g, w := got[rt.table], want[rt.table]
		if len(g) != len(w) {
			t.Errorf("%s: %d rows, the uninterrupted run has %d", rt.table, len(g), len(w))
		}
		shown := 0
		for i := 0; i < len(g) || i < len(w); i++ {
			var gi, wi string
			if i < len(g) {
				gi = g[i]
			}
			if i < len(w) {
				wi = w[i]
			}
			if gi != wi {
				t.Errorf("%s row %d differs:\n got %s\nwant %s", rt.table, i, gi, wi)
				if shown++; shown == 3 {
					break
				}
			}
		}
	}
}

// ---- the reference ----

var (
	refOnce  sync.Once
	refState state
)

// reference starts computing, once per test binary, the state one
// uninterrupted worker leaves after processing the backfill while it is
// written, and returns where it will be delivered (nil when that run
// failed, which is then reported by its own subtest). Tests start it first
// and read it last, so the reference runs alongside their faulty run.
func reference(t *testing.T) <-chan state {
	ch := make(chan state, 1)
	finished := make(chan struct{})
	// The reference runs as a subtest of t: t must not end before it does,
	// even when t fails early.
	t.Cleanup(func() { <-finished })
	go func() {
		defer close(finished)
		refOnce.Do(func() {
			t.Run("reference", func(t *testing.T) {
				url := testdb.URL(t)
				pool := testdb.Pool(t, url)
				seedPlant(t, pool)
				w := startWorker(t, workerEnv(t, url))
				if err := writeBackfill(context.Background(), pool, nil); err != nil {
					t.Fatal(err)
				}
				waitAllDone(t, pool, w.checkAlive)
				w.stop(t)
				checkComplete(t, pool)
				st := dumpState(t, pool)
				// A comparison of empty tables would prove nothing: the
				// backfill must have produced every kind of result.
				for _, table := range []string{"anomalies", "anomaly_hours", "baseline_rolling_state", "energy_forecasts", "kpi_daily_snapshots", "analytics_machine_state"} {
					if len(st[table]) == 0 {
						t.Errorf("the uninterrupted run left %s empty", table)
					}
				}
				if !t.Failed() {
					refState = st
				}
			})
		})
		ch <- refState
	}()
	return ch
}

// compareWithReference waits for the reference and compares st with it.
func compareWithReference(t *testing.T, ref <-chan state, st state) {
	t.Helper()
	want := <-ref
	if want == nil {
		t.Fatal("the uninterrupted reference run failed (see its subtest)")
	}
	compareState(t, st, want)
}
