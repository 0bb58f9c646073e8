package listener

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/enms/enms-analytics/internal/workertest"
	"github.com/enms/enms-analytics/triggers"
)

// TestBacklogDrainedAfterStart: 1,000 events written while no worker runs
// are all handled once the worker starts, each once and in per-machine
// order, and the worker's own handler leaves the last closed hour per
// machine in analytics_machine_state.
func TestBacklogDrainedAfterStart(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ms := b.machines(t, 100)
	const nHours = 10 // 100 machines × 10 hours = 1,000 events
	if err := closeHours(ctx, b.pool, ms, hours(hour0, nHours)); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	rec := newRecorder()
	w := newWorker(t, b, Config{Registerer: reg})
	w.Handle(triggers.KindHourClosed, rec.handle)

	st, err := w.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Backlog != 1000 || st.Running || st.Ready || st.OldestPending <= 0 {
		t.Fatalf("status before start = %+v, want a backlog of 1000 with a positive age, not running", st)
	}

	workertest.Start(t, w)
	rec.waitFor(t, "1,000 events handled", func() bool { return rec.distinct() == 1000 })
	rec.checkOnceInOrder(t)
	eventuallyDB(t, "every event marked done", func() (bool, error) {
		st, err := w.Status(ctx)
		return st.Backlog == 0, err
	})
	// Counted after the events are marked done, so waited for too.
	eventuallyDB(t, "1,000 events counted processed", func() (bool, error) {
		return testutil.ToFloat64(w.metrics.processed.WithLabelValues("hour_closed")) == 1000, nil
	})
	// The last hour closed is hour0 + 9 h for every machine.
	n := scalar[int64](t, b.pool, `SELECT count(*) FROM analytics_machine_state WHERE last_closed_hour = $1`, hour0.Add((nHours-1)*time.Hour))
	if n != 100 {
		t.Errorf("%d machines have last_closed_hour = hour0+9h, want 100", n)
	}
	st, err = w.Status(ctx)
	if err != nil || !st.Connected || !st.Ready || !st.Running || st.LastNotification.IsZero() {
		t.Errorf("status after drain = %+v, %v; want connected, ready, running with a last notification", st, err)
	}
}

// TestTwoWorkersHandleEachEventOnce: two workers on one database, events
// written while both run: each event is handled exactly once in all, and the
// events of every machine in order.
func TestTwoWorkersHandleEachEventOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ms := b.machines(t, 50)
	rec := newRecorder()
	perWorker := [2]int{}
	var mu sync.Mutex
	for i := range 2 {
		w := newWorker(t, b, Config{Concurrency: 3, BatchSize: 7})
		w.Handle(triggers.KindHourClosed, func(ctx context.Context, ev triggers.Event) error {
			mu.Lock()
			perWorker[i]++
			mu.Unlock()
			return rec.handle(ctx, ev)
		})
		workertest.Start(t, w)
	}
	// 20 transactions, each closing one hour for all 50 machines: 1,000 events.
	const nHours = 20
	for h := range nHours {
		if err := closeHours(ctx, b.pool, ms, hours(hour0.Add(time.Duration(h)*time.Hour), 1)); err != nil {
			t.Fatal(err)
		}
	}
	rec.waitFor(t, "1,000 events handled", func() bool { return rec.distinct() == len(ms)*nHours })
	rec.checkOnceInOrder(t)
	t.Logf("events handled per worker: %v", perWorker)
}

// TestFailingMachineIsParkedOthersProceed: a handler that always fails for
// one machine: its event is tried MaxAttempts times, then parked with the
// error; the other machines' events, and the failing machine's next event,
// are handled.
func TestFailingMachineIsParkedOthersProceed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ms := b.machines(t, 5)
	bad := ms[0]
	const maxAttempts = 3
	rec := newRecorder()
	rec.fail = func(ev triggers.Event) error {
		if ev.MachineID == bad && ev.Bucket.Equal(hour0) {
			return errors.New("compressor model not found")
		}
		return nil
	}
	reg := prometheus.NewRegistry()
	w := newWorker(t, b, Config{MaxAttempts: maxAttempts, Registerer: reg})
	w.Handle(triggers.KindHourClosed, rec.handle)
	workertest.Start(t, w)
	if err := closeHours(ctx, b.pool, ms, hours(hour0, 3)); err != nil {
		t.Fatal(err)
	}
	// 5 machines × 3 hours = 15 events: 14 succeed at once, the bad one is
	// called 3 times: 17 calls, 15 distinct events.
	rec.waitFor(t, "all events tried", func() bool { return rec.distinct() == 15 && rec.total == 17 })

	eventuallyDB(t, "the failing event parked", func() (bool, error) {
		var parked bool
		err := b.pool.QueryRow(ctx, `SELECT parked_at IS NOT NULL FROM analytics_events WHERE machine_id = $1 AND bucket = $2`, bad, hour0).Scan(&parked)
		return parked, err
	})
	var attempts int
	var lastErr string
	if err := b.pool.QueryRow(ctx, `SELECT attempts, last_error FROM analytics_events WHERE machine_id = $1 AND bucket = $2`, bad, hour0).Scan(&attempts, &lastErr); err != nil {
		t.Fatal(err)
	}
	if attempts != maxAttempts || lastErr != "compressor model not found" {
		t.Errorf("parked event: attempts=%d last_error=%q; want %d and the handler's error", attempts, lastErr, maxAttempts)
	}
	rec.mu.Lock()
	badOrder := rec.order[bad]
	rec.mu.Unlock()
	// The bad machine: hour0 three times, then hour0+1h and hour0+2h.
	want := []time.Time{hour0, hour0, hour0, hour0.Add(time.Hour), hour0.Add(2 * time.Hour)}
	if len(badOrder) != len(want) {
		t.Fatalf("failing machine handled %d times, want %d", len(badOrder), len(want))
	}
	for i, ev := range badOrder {
		wantAttempt := 1 // the later hours succeed at once
		if i < maxAttempts {
			wantAttempt = i + 1
		}
		if !ev.Bucket.Equal(want[i]) || ev.Attempt != wantAttempt {
			t.Errorf("call %d on the failing machine: hour %s attempt %d; want hour %s attempt %d", i, ev.Bucket, ev.Attempt, want[i], wantAttempt)
		}
	}
	eventuallyDB(t, "the other 14 events done", func() (bool, error) {
		var n int
		err := b.pool.QueryRow(ctx, `SELECT count(*) FROM analytics_events WHERE done_at IS NOT NULL`).Scan(&n)
		return n == 14, err
	})
	if got := testutil.ToFloat64(w.metrics.parked.WithLabelValues("hour_closed")); got != 1 {
		t.Errorf("events_parked_total = %v, want 1", got)
	}
	if got := testutil.ToFloat64(w.metrics.failed.WithLabelValues("hour_closed")); got != maxAttempts {
		t.Errorf("events_failed_total = %v, want %d", got, maxAttempts)
	}
	parked, err := b.st.ParkedEvents(ctx, 10)
	if err != nil || len(parked) != 1 || parked[0].MachineID != bad || parked[0].LastError != "compressor model not found" {
		t.Errorf("ParkedEvents = %+v, %v; want the one parked event with its error", parked, err)
	}
}

// TestListenerConnectionKilled: the LISTEN connection is terminated
// repeatedly while events are written; with polling off, every event is
// still handled (LISTEN first, then drain, on every reconnect).
func TestListenerConnectionKilled(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ms := b.machines(t, 10)
	rec := newRecorder()
	w := newWorker(t, b, Config{})
	w.Handle(triggers.KindHourClosed, rec.handle)
	workertest.Start(t, w)

	const kills, nHours = 8, 40 // 10 machines × 40 hours = 400 events
	writerDone := make(chan error, 1)
	go func() {
		for h := range nHours {
			if err := closeHours(ctx, b.pool, ms, hours(hour0.Add(time.Duration(h)*time.Hour), 1)); err != nil {
				writerDone <- err
				return
			}
		}
		writerDone <- nil
	}()
	for k := range kills {
		epoch := w.listenEpoch.Load()
		var killed bool
		err := b.pool.QueryRow(ctx, `
			SELECT coalesce(bool_or(pg_terminate_backend(pid)), false) FROM pg_stat_activity
			 WHERE application_name = $1 AND datname = current_database()`, w.cfg.ApplicationName).Scan(&killed)
		if err != nil {
			t.Fatal(err)
		}
		if !killed {
			t.Fatalf("kill %d: no listener connection found", k)
		}
		eventuallyDB(t, fmt.Sprintf("reconnect after kill %d", k), func() (bool, error) {
			return w.listenEpoch.Load() > epoch, nil
		})
	}
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "400 events handled", func() bool { return rec.distinct() == len(ms)*nHours })
	rec.checkOnceInOrder(t)
	if got := testutil.ToFloat64(w.metrics.reconnects); got < kills+1 {
		t.Errorf("listener connected %v times, want at least %d", got, kills+1)
	}
}

// TestShutdownFinishesOrReleases: at shutdown the event being handled is
// finished and the claimed events not yet started are released, their
// attempts not counted.
func TestShutdownFinishesOrReleases(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ms := b.machines(t, 6)
	started := make(chan triggers.Event, 1)
	release := make(chan struct{})
	rec := newRecorder()
	rec.before = func(ev triggers.Event) {
		started <- ev
		<-release
	}
	// One handler goroutine and a batch of 6: one event runs, five wait.
	w := newWorker(t, b, Config{Concurrency: 1, BatchSize: 6})
	w.Handle(triggers.KindHourClosed, rec.handle)
	stop := workertest.Start(t, w)
	if err := closeHours(ctx, b.pool, ms, hours(hour0, 1)); err != nil {
		t.Fatal(err)
	}
	first := receive(t, started, "the first event to start")
	stopped := make(chan struct{})
	go func() {
		stop()
		close(stopped)
	}()
	eventuallyDB(t, "unstarted events released", func() (bool, error) {
		var n int
		err := b.pool.QueryRow(ctx, `SELECT count(*) FROM analytics_events WHERE locked_until IS NULL AND attempts = 0 AND done_at IS NULL`).Scan(&n)
		return n == 5, err
	})
	close(release)
	receive(t, stopped, "the worker to stop")
	var done bool
	if err := b.pool.QueryRow(ctx, `SELECT done_at IS NOT NULL FROM analytics_events WHERE id = $1`, first.ID).Scan(&done); err != nil {
		t.Fatal(err)
	}
	if !done {
		t.Error("the event in flight at shutdown was not finished")
	}
}

// TestStatusChangeUpdatesMachineState: a machine_status upsert reaches the
// worker's own handler, which records the new status.
func TestStatusChangeUpdatesMachineState(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ms := b.machines(t, 1)
	rec := newRecorder()
	w := newWorker(t, b, Config{})
	w.Handle(triggers.KindStatusChanged, rec.handle)
	workertest.Start(t, w)
	at := hour0.Add(90 * time.Minute)
	if _, err := b.pool.Exec(ctx, `INSERT INTO machine_status (machine_id, is_running, current_mode, last_updated) VALUES ($1, false, 'maintenance', $2)`, ms[0], at); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "the status change handled", func() bool { return rec.distinct() == 1 })
	eventuallyDB(t, "machine state recorded", func() (bool, error) {
		var mode *string
		var running *bool
		var statusAt *time.Time
		err := b.pool.QueryRow(ctx, `SELECT last_status::text, last_running, last_status_at FROM analytics_machine_state WHERE machine_id = $1`, ms[0]).Scan(&mode, &running, &statusAt)
		if err != nil {
			return false, nil
		}
		return mode != nil && *mode == "maintenance" && running != nil && !*running && statusAt != nil && statusAt.Equal(at), nil
	})
}

// TestLostLeaseNotCountedProcessed: an event whose lease another worker took
// over while it was handled is not marked done by this worker, so it must not
// be counted processed either. Machine 0's hour_closed event has its lease
// taken by "thief" inside the handler; machine 1's status change, claimed
// after it (higher id) and handled after it (one handler goroutine), is
// completed normally. The completer writes in the order the events
// succeeded, so once the status change is counted the hour_closed event's
// batch has been written and counted too: 0 hour_closed, 1 status_changed.
func TestLostLeaseNotCountedProcessed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ms := b.machines(t, 2)
	insertOutbox(t, b, ms[0], outboxEvent{triggers.KindHourClosed, 0, 0})
	insertOutbox(t, b, ms[1], outboxEvent{triggers.KindStatusChanged, 0, 0})
	reg := prometheus.NewRegistry()
	w := newWorker(t, b, Config{Concurrency: 1, Registerer: reg})
	w.Handle(triggers.KindHourClosed, func(ctx context.Context, ev triggers.Event) error {
		_, err := b.pool.Exec(ctx, `UPDATE analytics_events SET locked_by = 'thief' WHERE id = $1`, ev.ID)
		return err
	})
	w.Handle(triggers.KindStatusChanged, func(context.Context, triggers.Event) error { return nil })
	workertest.Start(t, w)
	eventuallyDB(t, "the status change counted processed", func() (bool, error) {
		return testutil.ToFloat64(w.metrics.processed.WithLabelValues("status_changed")) == 1, nil
	})
	if got := testutil.ToFloat64(w.metrics.processed.WithLabelValues("hour_closed")); got != 0 {
		t.Errorf("events_processed_total{kind=hour_closed} = %v, want 0: its lease was lost, so it was not marked done", got)
	}
	if n := scalar[int64](t, b.pool, `SELECT count(*) FROM analytics_events WHERE kind = 'hour_closed' AND done_at IS NULL AND locked_by = 'thief'`); n != 1 {
		t.Errorf("the hour_closed event: %d left pending and held by the thief, want 1", n)
	}
}
