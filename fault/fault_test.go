package fault_test

import (
	"context"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/enms/enms-analytics/internal/embedpg"
	"github.com/enms/enms-analytics/internal/testdb"
	"github.com/enms/enms-analytics/migrations"
)

// listenerApp is the application_name of the worker's LISTEN connection
// (listener.Config's default, which serve keeps).
const listenerApp = "enms-analytics-listener"

// TestSIGKILLDuringBackfill kills the worker process with SIGKILL five times
// at seeded-random points while the backfill is written and processed,
// restarting it each time; the state it finally leaves equals that of one
// uninterrupted worker, every closed hour scored exactly once.
func TestSIGKILLDuringBackfill(t *testing.T) {
	t.Parallel()
	ref := reference(t)
	ctx := context.Background()
	url := testdb.URL(t)
	pool := testdb.Pool(t, url)
	seedPlant(t, pool)

	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("FAULT_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("FAULT_SEED=%q: %v", s, err)
		}
	}
	t.Logf("kill points drawn with FAULT_SEED=%d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	// Five kill points: numbers of processed machine-hours drawn from
	// [1, closedHours-10], so each kill lands while work remains.
	const kills = 5
	points := make([]int, kills)
	for i := range points {
		points[i] = 1 + rng.IntN(closedHours-10)
	}
	slices.Sort(points)

	env := workerEnv(t, url)
	writeErr := make(chan error, 1)
	go func() { writeErr <- writeBackfill(ctx, pool, nil) }()
	for k, point := range points {
		w := startWorker(t, env)
		var at progress
		waitUntil(t, waitTimeout, "worker reaches kill point "+strconv.Itoa(point), func() (bool, error) {
			w.checkAlive(t)
			p, err := readProgress(ctx, pool)
			at = p
			return err == nil && p.closedHoursDone >= point, err
		})
		w.kill()
		t.Logf("kill %d: SIGKILL after %d of %d machine-hours (%d events done, %d pending)",
			k+1, at.closedHoursDone, closedHours, at.done, at.pending)
	}
	if err := <-writeErr; err != nil {
		t.Fatal(err)
	}
	w := startWorker(t, env)
	waitAllDone(t, pool, w.checkAlive)
	w.stop(t)
	checkComplete(t, pool)
	compareWithReference(t, ref, dumpState(t, pool))
}

// TestPostgresRestart stops PostgreSQL (its own cluster, so no other test
// is disturbed) while the worker is a third of the way through the
// backfill and starts it again on the same port: the worker's LISTEN
// connection is back within 10 s of the server, and it completes the work
// with the same result as an uninterrupted run.
func TestPostgresRestart(t *testing.T) {
	t.Parallel()
	ref := reference(t)
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "enms-fault-pg-")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := embedpg.Start(ctx, embedpg.Config{DataDir: dir})
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	current := srv
	t.Cleanup(func() {
		if err := current.Stop(); err != nil {
			t.Error(err)
		}
		os.RemoveAll(dir)
	})
	if err := migrations.Up(srv.URL); err != nil {
		t.Fatal(err)
	}
	pool := testdb.Pool(t, srv.URL)
	seedPlant(t, pool)
	if err := writeBackfill(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	w := startWorker(t, workerEnv(t, srv.URL))

	const restartAt = closedHours / 3 // 72 machine-hours processed
	waitUntil(t, waitTimeout, "a third of the backfill processed", func() (bool, error) {
		w.checkAlive(t)
		p, err := readProgress(ctx, pool)
		return err == nil && p.closedHoursDone >= restartAt, err
	})
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if current, err = embedpg.Start(ctx, embedpg.Config{DataDir: dir, Port: srv.Port}); err != nil {
		current = srv // stopped already; Stop again is a no-op
		t.Fatalf("restart PostgreSQL on port %d: %v", srv.Port, err)
	}
	back := time.Now()
	// The pool's connections died with the server; pgxpool drops them on
	// their first error, so the condition retries.
	waitUntil(t, 10*time.Second, "the worker's LISTEN connection back within 10 s", func() (bool, error) {
		w.checkAlive(t)
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		var n int
		err := pool.QueryRow(qctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, listenerApp).Scan(&n)
		return err == nil && n > 0, err
	})
	t.Logf("worker listening again %v after PostgreSQL accepted connections", time.Since(back).Round(time.Millisecond))
	waitAllDone(t, pool, w.checkAlive)
	w.stop(t)
	checkComplete(t, pool)
	compareWithReference(t, ref, dumpState(t, pool))
}

// TestThreeReplicas runs three worker processes on one database while the
// backfill is written: together they leave the state one worker leaves.
func TestThreeReplicas(t *testing.T) {
	t.Parallel()
	ref := reference(t)
	url := testdb.URL(t)
	pool := testdb.Pool(t, url)
	seedPlant(t, pool)
	env := workerEnv(t, url)
	ws := []*proc{startWorker(t, env), startWorker(t, env), startWorker(t, env)}
	if err := writeBackfill(context.Background(), pool, nil); err != nil {
		t.Fatal(err)
	}
	waitAllDone(t, pool, func(t *testing.T) {
		for _, w := range ws {
			w.checkAlive(t)
		}
	})
	for _, w := range ws {
		w.stop(t)
	}
	var owners int
	if err := pool.QueryRow(context.Background(), `SELECT count(DISTINCT locked_by) FROM analytics_events`).Scan(&owners); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d of 3 replicas completed events", owners)
	checkComplete(t, pool)
	compareWithReference(t, ref, dumpState(t, pool))
}

// TestListenerKilledEndToEnd is the end-to-end form of listener's
// TestListenerConnectionKilled (which proves, with a recording handler,
// that every event is handled once): through the real serve process and
// every analytics handler, the LISTEN backend is terminated again and again
// while the backfill is written — at least once between any two days — and
// polling is off, so only LISTEN-then-drain on reconnect can pick up what
// was written while it was down. The final state equals the uninterrupted
// run's.
func TestListenerKilledEndToEnd(t *testing.T) {
	t.Parallel()
	ref := reference(t)
	ctx := context.Background()
	url := testdb.URL(t)
	pool := testdb.Pool(t, url)
	seedPlant(t, pool)
	w := startWorker(t, workerEnv(t, url, "POLL_INTERVAL=1h"))

	var kills atomic.Int64
	stopKiller := make(chan struct{})
	killerDone := make(chan error, 1)
	go func() { killerDone <- killListenerRepeatedly(ctx, pool, &kills, stopKiller) }()
	err := writeBackfill(ctx, pool, func(day int) error {
		// At least one kill between two days: wait for the killer.
		want := int64(day + 1)
		deadline := time.Now().Add(waitTimeout)
		for kills.Load() < want {
			if time.Now().After(deadline) {
				t.Errorf("no listener kill within %s after day %d", waitTimeout, day)
				return nil
			}
			select {
			case <-time.After(10 * time.Millisecond):
			case err := <-killerDone:
				killerDone <- err
				return err
			}
		}
		return nil
	})
	close(stopKiller)
	if kerr := <-killerDone; kerr != nil {
		t.Fatalf("killing the listener: %v", kerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("listener connection terminated %d times during the backfill", kills.Load())
	waitAllDone(t, pool, w.checkAlive)
	w.stop(t)
	checkComplete(t, pool)
	compareWithReference(t, ref, dumpState(t, pool))
}

// killListenerRepeatedly terminates the LISTEN backend of the pool's
// database, waits for the worker to open a new one, and repeats until stop
// is closed.
func killListenerRepeatedly(ctx context.Context, pool *pgxpool.Pool, kills *atomic.Int64, stop <-chan struct{}) error {
	var last int
	for {
		var pid int
		for {
			select {
			case <-stop:
				return nil
			case <-time.After(10 * time.Millisecond):
			}
			err := pool.QueryRow(ctx, `
				SELECT coalesce(max(pid), 0) FROM pg_stat_activity
				 WHERE application_name = $1 AND datname = current_database()`, listenerApp).Scan(&pid)
			if err != nil {
				return err
			}
			if pid != 0 && pid != last {
				break
			}
		}
		var ok bool
		if err := pool.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, pid).Scan(&ok); err != nil {
			return err
		}
		if ok {
			kills.Add(1)
			last = pid
		}
	}
}
