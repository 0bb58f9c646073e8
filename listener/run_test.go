package listener

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/enms/enms-analytics/internal/workertest"
	"github.com/enms/enms-analytics/triggers"
)

// runRecorder is a RunHandler (run) and a Handler (event) that log every
// call per machine, as labels like "run 0-15" (hours of the run's events,
// from hour0) or "event status_changed", in call order.
type runRecorder struct {
	mu      sync.Mutex
	log     map[string][]string           // machine → calls
	runs    map[string][][]triggers.Event // machine → runs that succeeded, in order
	inRun   map[int64]bool                // events given to the run handler in a run that succeeded
	done    int                           // events of runs that succeeded
	bad     []string                      // per-event calls for an event no run had succeeded with
	changed chan struct{}
	fail    func(evs []triggers.Event) error // optional
}

func newRunRecorder() *runRecorder {
	return &runRecorder{log: map[string][]string{}, runs: map[string][][]triggers.Event{},
		inRun: map[int64]bool{}, changed: make(chan struct{}, 1)}
}

// hourSpan labels hour-kind events by their hours: "3" or "0-15".
func hourSpan(evs []triggers.Event) string {
	h := func(ev triggers.Event) int { return int(ev.Bucket.Sub(hour0) / time.Hour) }
	if len(evs) == 1 {
		return fmt.Sprint(h(evs[0]))
	}
	return fmt.Sprintf("%d-%d", h(evs[0]), h(evs[len(evs)-1]))
}

func (r *runRecorder) run(ctx context.Context, evs []triggers.Event) error {
	var err error
	if r.fail != nil {
		err = r.fail(evs)
	}
	r.mu.Lock()
	m := evs[0].MachineID
	r.log[m] = append(r.log[m], "run "+hourSpan(evs))
	if err == nil {
		r.runs[m] = append(r.runs[m], slices.Clone(evs))
		for _, ev := range evs {
			r.inRun[ev.ID] = true
		}
		r.done += len(evs)
	}
	r.mu.Unlock()
	wake(r.changed)
	return err
}

// event is a per-event handler: for a kind with a run handler it checks the
// run handler has succeeded with the event before.
func (r *runRecorder) event(withRuns bool) Handler {
	return func(ctx context.Context, ev triggers.Event) error {
		r.mu.Lock()
		label := "event " + string(ev.Kind)
		if withRuns {
			label = "event " + hourSpan([]triggers.Event{ev})
			if !r.inRun[ev.ID] {
				r.bad = append(r.bad, fmt.Sprintf("event %d handled before its run handler succeeded", ev.ID))
			}
		} else {
			r.done++
		}
		r.log[ev.MachineID] = append(r.log[ev.MachineID], label)
		r.mu.Unlock()
		wake(r.changed)
		return nil
	}
}

// waitFor waits until cond (called under the recorder's lock) holds.
func (r *runRecorder) waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	waitLocked(t, &r.mu, r.changed, what, cond)
}

// spans returns a machine's runs that succeeded, as "a-b" hour spans.
func (r *runRecorder) spans(m string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s []string
	for _, run := range r.runs[m] {
		s = append(s, hourSpan(run))
	}
	return s
}

// TestRunsFormed: 3 machines × 50 pending hour_closed events, MaxRun 16.
// Each machine's events reach the run handler exactly once, in order, in
// runs of 16, 16, 16 and 2: all 50 are untried consecutive hours, so each
// claim takes the machine's head and its next 15 (MaxRun); the next claim
// of the machine waits until the run is done (its head stays leased), and
// 50 = 3 × 16 + 2. The per-event handler sees each event once, after the
// run handler succeeded with it; the machine state ends at the last hour.
func TestRunsFormed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ms := b.machines(t, 3)
	const nHours, maxRun = 50, 16
	if err := closeHours(ctx, b.pool, ms, hours(hour0, nHours)); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	w := newWorker(t, b, Config{MaxRun: maxRun, Registerer: reg})
	rr := newRunRecorder()
	rec := newRecorder()
	w.HandleRun(triggers.KindHourClosed, rr.run)
	w.Handle(triggers.KindHourClosed, rr.event(true))
	w.Handle(triggers.KindHourClosed, rec.handle)
	workertest.Start(t, w)

	rec.waitFor(t, "150 events handled per event", func() bool { return rec.distinct() == len(ms)*nHours })
	rec.checkOnceInOrder(t)
	eventuallyDB(t, "every event done", func() (bool, error) {
		st, err := w.Status(ctx)
		return st.Backlog == 0, err
	})
	want := []string{"0-15", "16-31", "32-47", "48-49"}
	for i, m := range ms {
		if got := rr.spans(m); !slices.Equal(got, want) {
			t.Errorf("machine %d: runs %q, want %q", i, got, want)
		}
	}
	rr.mu.Lock()
	if len(rr.bad) > 0 {
		t.Errorf("per-event handler out of turn: %q", rr.bad)
	}
	rr.mu.Unlock()
	// Counted after the events are marked done, so waited for too.
	eventuallyDB(t, "150 events counted processed", func() (bool, error) {
		return testutil.ToFloat64(w.metrics.processed.WithLabelValues("hour_closed")) == float64(len(ms)*nHours), nil
	})
	// 4 runs per machine, 150 events in all.
	if n, sum := histogram(t, reg, "enms_analytics_worker_run_events"); n != 12 || sum != 150 {
		t.Errorf("run_events: %d runs of %v events in all, want 12 runs of 150", n, sum)
	}
	if n := scalar[int64](t, b.pool, `SELECT count(*) FROM analytics_machine_state WHERE last_closed_hour = $1`, hour0.Add((nHours-1)*time.Hour)); n != 3 {
		t.Errorf("%d machines have last_closed_hour = hour0 + 49 h, want 3", n)
	}
	if n := scalar[int64](t, b.pool, `SELECT count(*) FROM analytics_events WHERE attempts <> 1`); n != 0 {
		t.Errorf("%d events were claimed other than once", n)
	}
}

// histogram returns the sample count and sum of the histogram name in reg.
func histogram(t testing.TB, reg *prometheus.Registry, name string) (uint64, float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			h := mf.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0, 0
}

// outboxEvent is an event to write as is: its kind, its hour (from hour0;
// for status_changed, the time of the change) and its attempts so far.
type outboxEvent struct {
	kind     triggers.Kind
	hour     int
	attempts int
}

// insertOutbox writes events for one machine in the order given (ids
// follow it), without a wake-up: the tests write them before the worker
// starts, which drains the backlog.
func insertOutbox(t testing.TB, b bundle, machine string, evs ...outboxEvent) {
	t.Helper()
	ctx := context.Background()
	for _, e := range evs {
		var bucket *time.Time
		payload := `{}`
		if e.kind == triggers.KindStatusChanged {
			payload = fmt.Sprintf(`{"old_mode": null, "new_mode": "idle", "old_running": null, "new_running": false, "at": %q}`, hour0.Add(time.Duration(e.hour)*time.Hour).Format(time.RFC3339))
		} else {
			h := hour0.Add(time.Duration(e.hour) * time.Hour)
			bucket = &h
		}
		if _, err := b.pool.Exec(ctx, `INSERT INTO analytics_events (kind, machine_id, bucket, payload, attempts) VALUES ($1, $2, $3, $4, $5)`,
			string(e.kind), machine, bucket, payload, e.attempts); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRunStops: a run ends before an event of another kind and before an
// event tried before (attempts > 0), which then goes alone as its
// machine's head. Machine 0: hour_closed 0, 1, status_changed (hour 2),
// hour_closed 3 → runs [0 1], the status change through its per-event
// handler (status_changed has no run handler), run [3]. Machine 1:
// hour_closed 0, 1, 2 (attempts 1), 3 → runs [0 1], [2], [3].
func TestRunStops(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ms := b.machines(t, 2)
	hc, sc := triggers.KindHourClosed, triggers.KindStatusChanged
	insertOutbox(t, b, ms[0], outboxEvent{hc, 0, 0}, outboxEvent{hc, 1, 0}, outboxEvent{sc, 2, 0}, outboxEvent{hc, 3, 0})
	insertOutbox(t, b, ms[1], outboxEvent{hc, 0, 0}, outboxEvent{hc, 1, 0}, outboxEvent{hc, 2, 1}, outboxEvent{hc, 3, 0})
	w := newWorker(t, b, Config{})
	rr := newRunRecorder()
	w.HandleRun(hc, rr.run)
	w.Handle(sc, rr.event(false))
	workertest.Start(t, w)
	// 8 events in all.
	rr.waitFor(t, "8 events handled", func() bool { return rr.done == 8 })
	want := map[string][]string{
		ms[0]: {"run 0-1", "event status_changed", "run 3"},
		ms[1]: {"run 0-1", "run 2", "run 3"},
	}
	rr.mu.Lock()
	defer rr.mu.Unlock()
	for i, m := range ms {
		if !slices.Equal(rr.log[m], want[m]) {
			t.Errorf("machine %d: calls %q, want %q", i, rr.log[m], want[m])
		}
	}
}

// TestPoisonEventInRun: one machine, hours 0–9 pending, MaxAttempts 3; the
// run handler fails every run holding hour 4. The run of 10 fails, so the
// hours go one at a time: 0–3 succeed, 4 fails and 5–9 are released. Hour 4,
// tried before, is then claimed alone twice more and parked after its third
// failure; then 5–9, untried again, come as one run. Asserted: that exact
// call sequence; hours 0–3 and 5–9 done with attempts = 1 (0–3 claimed once;
// 5–9 claimed twice, the first claim given back on release); hour 4 parked
// with attempts = 3 and the handler's error; 3 failures and 1 parked event
// counted, 9 events processed.
func TestPoisonEventInRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ms := b.machines(t, 1)
	if err := closeHours(ctx, b.pool, ms, hours(hour0, 10)); err != nil {
		t.Fatal(err)
	}
	poison := hour0.Add(4 * time.Hour)
	reg := prometheus.NewRegistry()
	w := newWorker(t, b, Config{MaxAttempts: 3, Registerer: reg})
	rr := newRunRecorder()
	rr.fail = func(evs []triggers.Event) error {
		for _, ev := range evs {
			if ev.Bucket.Equal(poison) {
				return errors.New("meter reading out of range")
			}
		}
		return nil
	}
	w.HandleRun(triggers.KindHourClosed, rr.run)
	workertest.Start(t, w)

	rr.waitFor(t, "the 9 innocent hours handled", func() bool { return rr.done == 9 })
	eventuallyDB(t, "9 events done and 1 parked", func() (bool, error) {
		var done, parked int
		err := b.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE done_at IS NOT NULL), count(*) FILTER (WHERE parked_at IS NOT NULL) FROM analytics_events`).Scan(&done, &parked)
		return done == 9 && parked == 1, err
	})
	want := []string{"run 0-9", "run 0", "run 1", "run 2", "run 3", "run 4", "run 4", "run 4", "run 5-9"}
	rr.mu.Lock()
	got := rr.log[ms[0]]
	rr.mu.Unlock()
	if !slices.Equal(got, want) {
		t.Errorf("run handler calls %q, want %q", got, want)
	}
	if n := scalar[int64](t, b.pool, `SELECT count(*) FROM analytics_events WHERE done_at IS NOT NULL AND attempts = 1`); n != 9 {
		t.Errorf("%d done events with attempts = 1, want 9", n)
	}
	var attempts int
	var lastErr string
	if err := b.pool.QueryRow(ctx, `SELECT attempts, last_error FROM analytics_events WHERE bucket = $1 AND parked_at IS NOT NULL`, poison).Scan(&attempts, &lastErr); err != nil {
		t.Fatal(err)
	}
	if attempts != 3 || lastErr != "meter reading out of range" {
		t.Errorf("poison event: attempts %d, last_error %q; want 3 and the handler's error", attempts, lastErr)
	}
	for _, c := range []struct {
		name string
		got  float64
		want float64
	}{
		{"events_failed_total", testutil.ToFloat64(w.metrics.failed.WithLabelValues("hour_closed")), 3},
		{"events_parked_total", testutil.ToFloat64(w.metrics.parked.WithLabelValues("hour_closed")), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	eventuallyDB(t, "9 events counted processed", func() (bool, error) {
		return testutil.ToFloat64(w.metrics.processed.WithLabelValues("hour_closed")) == 9, nil
	})
}

// TestTwoWorkersRuns: two workers with runs (MaxRun 8) on one database, a
// backlog of 20 machines × 20 hours written before they start and 20 more
// hours written while they run: every event reaches a run handler exactly
// once in all, each machine's in order. The first claim of each machine
// finds 20 untried consecutive hours, so it takes a run of MaxRun = 8: the
// longest run is 8.
func TestTwoWorkersRuns(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ms := b.machines(t, 20)
	const backlog, live, maxRun = 20, 20, 8
	if err := closeHours(ctx, b.pool, ms, hours(hour0, backlog)); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	var mu sync.Mutex
	longest := 0
	perWorker := [2]int{}
	for i := range 2 {
		w := newWorker(t, b, Config{Concurrency: 3, BatchSize: 7, MaxRun: maxRun})
		w.HandleRun(triggers.KindHourClosed, func(ctx context.Context, evs []triggers.Event) error {
			mu.Lock()
			longest = max(longest, len(evs))
			perWorker[i] += len(evs)
			mu.Unlock()
			for _, ev := range evs {
				if err := rec.handle(ctx, ev); err != nil {
					return err
				}
			}
			return nil
		})
		workertest.Start(t, w)
	}
	for h := range live {
		if err := closeHours(ctx, b.pool, ms, hours(hour0.Add(time.Duration(backlog+h)*time.Hour), 1)); err != nil {
			t.Fatal(err)
		}
	}
	want := len(ms) * (backlog + live) // 800
	rec.waitFor(t, "800 events handled", func() bool { return rec.distinct() == want })
	rec.checkOnceInOrder(t)
	rec.mu.Lock()
	if rec.total != want {
		t.Errorf("%d events handed to run handlers, want each of the %d once", rec.total, want)
	}
	for m, evs := range rec.order {
		if len(evs) != backlog+live {
			t.Errorf("machine %s: %d events handled, want %d", m, len(evs), backlog+live)
		}
	}
	rec.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if longest != maxRun {
		t.Errorf("longest run %d events, want MaxRun = %d", longest, maxRun)
	}
	t.Logf("events handled per worker: %v", perWorker)
}

// TestRunCutBeforeMalformedEvent: hours 0, 1, then an hour_closed event
// whose bucket is 2:30 (not the start of an hour; the claim still takes it,
// as 2:30 is later than 1:00), then hours 3 and 4, all pending. The run
// handler gets [0 1] only; the malformed event is parked at once by the
// one-at-a-time path, without reaching a handler; 3 and 4, released after
// it, come back as the run [3 4].
func TestRunCutBeforeMalformedEvent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ms := b.machines(t, 1)
	for _, at := range []time.Duration{0, time.Hour, 150 * time.Minute, 3 * time.Hour, 4 * time.Hour} {
		if _, err := b.pool.Exec(ctx, `INSERT INTO analytics_events (kind, machine_id, bucket) VALUES ('hour_closed', $1, $2)`, ms[0], hour0.Add(at)); err != nil {
			t.Fatal(err)
		}
	}
	w := newWorker(t, b, Config{})
	rr := newRunRecorder()
	w.HandleRun(triggers.KindHourClosed, rr.run)
	workertest.Start(t, w)
	rr.waitFor(t, "4 well-formed events handled", func() bool { return rr.done == 4 })
	rr.mu.Lock()
	got := rr.log[ms[0]]
	rr.mu.Unlock()
	if want := []string{"run 0-1", "run 3-4"}; !slices.Equal(got, want) {
		t.Errorf("run handler calls %q, want %q", got, want)
	}
	eventuallyDB(t, "the malformed event parked", func() (bool, error) {
		var parked bool
		err := b.pool.QueryRow(ctx, `SELECT parked_at IS NOT NULL FROM analytics_events WHERE bucket = $1`, hour0.Add(150*time.Minute)).Scan(&parked)
		return parked, err
	})
}

// TestShutdownReleasesRuns: two machines with 5 pending hours each, one
// handler goroutine. The first run starts and holds on until its context
// ends; the second waits in the queue. At shutdown the waiting run is
// released whole at once; the running one is cut off after ShutdownTimeout
// (its handler returns context.Canceled) and released whole too. All 10
// events end unleased with attempts 0.
func TestShutdownReleasesRuns(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ms := b.machines(t, 2)
	started := make(chan []triggers.Event, 2)
	w := newWorker(t, b, Config{Concurrency: 1, BatchSize: 3, ShutdownTimeout: 100 * time.Millisecond})
	w.HandleRun(triggers.KindHourClosed, func(ctx context.Context, evs []triggers.Event) error {
		started <- evs
		<-ctx.Done()
		return ctx.Err()
	})
	stop := workertest.Start(t, w)
	// One transaction: the first claim after it finds all 10 events.
	if err := closeHours(ctx, b.pool, ms, hours(hour0, 5)); err != nil {
		t.Fatal(err)
	}
	first := receive(t, started, "the first run to start")
	if len(first) != 5 {
		t.Fatalf("first run holds %d events, want the machine's 5 hours", len(first))
	}
	stop()
	if n := scalar[int64](t, b.pool, `SELECT count(*) FROM analytics_events WHERE locked_until IS NULL AND locked_by IS NULL AND attempts = 0 AND done_at IS NULL`); n != 10 {
		t.Errorf("%d of 10 events released after shutdown", n)
	}
	select {
	case evs := <-started:
		t.Errorf("the queued run of %d events was started during shutdown", len(evs))
	default:
	}
}
