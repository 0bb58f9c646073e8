package listener

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/enms/enms-analytics/triggers"
)

// storeTimeout bounds the bookkeeping writes (complete, fail, release),
// which also run during shutdown after ctx is done.
const storeTimeout = 10 * time.Second

// runEvents is the claim loop of the outbox: it claims batches (one event
// or one run per machine) when woken by a notification, a completed event,
// a retry timer or the poll ticker, and feeds Concurrency handler
// goroutines, a run at a time.
func (w *Worker) runEvents(ctx, hctx context.Context) {
	runKinds := w.runKinds()
	work := make(chan []triggers.Event)
	succeeded := make(chan triggers.Event, w.cfg.BatchSize)
	completed := make(chan struct{}, 1)
	var wg sync.WaitGroup
	for range w.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for run := range work {
				w.processRun(ctx, hctx, run, succeeded, completed)
			}
		}()
	}
	completerDone := make(chan struct{})
	go func() {
		defer close(completerDone)
		w.completeEvents(hctx, succeeded, completed)
	}()

	poll := time.NewTicker(w.cfg.PollInterval)
	defer poll.Stop()
	var queue [][]triggers.Event
	dirty, drained := true, false
	for {
		if len(queue) == 0 && dirty && ctx.Err() == nil {
			dirty = false
			epoch := w.listenEpoch.Load()
			runs, err := w.st.ClaimRuns(ctx, w.cfg.Name, w.cfg.BatchSize, w.cfg.MaxRun, runKinds, w.cfg.LeaseDuration)
			switch {
			case err != nil && ctx.Err() == nil:
				w.log.Warn("claim events failed; retrying at the next wake-up or poll", "err", err)
			case err == nil:
				queue = runs
				if len(runs) == w.cfg.BatchSize {
					dirty = true // there may be more machines
				} else {
					w.markDrained(&drained, epoch)
				}
			}
		}
		var send chan []triggers.Event
		var next []triggers.Event
		if len(queue) > 0 {
			send, next = work, queue[0]
		}
		select {
		case <-ctx.Done():
			close(work)
			w.releaseEvents(hctx, slices.Concat(queue...))
			wg.Wait()
			close(succeeded)
			<-completerDone
			return
		case send <- next:
			queue = queue[1:]
		case <-w.eventWake:
			dirty = true
		case <-completed:
			dirty = true
		case <-poll.C:
			dirty = true
		}
	}
}

// runKinds are the kinds claimed in runs: those with a run handler, unless
// MaxRun turns runs off.
func (w *Worker) runKinds() []triggers.Kind {
	if w.cfg.MaxRun <= 1 {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	kinds := make([]triggers.Kind, 0, len(w.runs))
	for k := range w.runs {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	return kinds
}

// processRun handles a claimed run and sends the events it handled to
// succeeded. The run's leading events that may be handled (well formed,
// within the attempt limit) go to the handlers together when there are
// several; the others, or all of them when that fails, are handled one at a
// time, each as a run of one, until one fails: its failure is recorded
// (retry after backoff, or parked) by processEvent, and the events after it
// are released, their attempt given back, for a later claim (which takes
// them after the failed event is done or parked). A run interrupted by
// shutdown is released whole.
func (w *Worker) processRun(ctx, hctx context.Context, run []triggers.Event, succeeded chan<- triggers.Event, completed chan struct{}) {
	alone := run
	if n := w.runnable(run); n > 1 {
		err := w.runHandlers(hctx, run[:n])
		switch {
		case err == nil:
			for _, ev := range run[:n] {
				succeeded <- ev
			}
			alone = run[n:]
		case ctx.Err() != nil && errors.Is(err, context.Canceled):
			w.releaseEvents(hctx, run)
			return
		default:
			w.log.Info("run failed; handling its events one at a time", "kind", string(run[0].Kind),
				"machine_id", run[0].MachineID, "events", len(run), "first_event", run[0].ID, "err", err)
		}
	}
	for i, ev := range alone {
		if w.processEvent(ctx, hctx, ev) {
			succeeded <- ev
			continue
		}
		w.releaseRest(hctx, alone[i+1:])
		wake(completed)
		return
	}
}

// runnable is how many of the run's leading events may go to its handlers
// (see refusal). The others are for processEvent alone, which parks them.
func (w *Worker) runnable(run []triggers.Event) int {
	for i, ev := range run {
		if w.refusal(ev) != nil {
			return i
		}
	}
	return len(run)
}

// refusal says why ev may not reach a handler, or is nil when it may: an
// event past MaxAttempts (claims that never recorded an outcome: the worker
// was interrupted) or malformed is parked without being handled.
func (w *Worker) refusal(ev triggers.Event) error {
	if ev.Attempt > w.cfg.MaxAttempts {
		return fmt.Errorf("the worker was interrupted (stopped or lost its lease) %d times while handling this event", ev.Attempt-1)
	}
	return ev.Validate()
}

// releaseRest gives back the events of a run after the one that failed.
// It insists like untilStored: the worker renews every lease it holds, so
// an event left leased would block its machine for as long as it lives.
func (w *Worker) releaseRest(hctx context.Context, evs []triggers.Event) {
	if len(evs) == 0 {
		return
	}
	err := w.untilStored(hctx, "release the rest of a failed run", func(sctx context.Context) error {
		return w.st.ReleaseEvents(sctx, w.cfg.Name, eventIDs(evs))
	})
	if err != nil {
		w.log.Warn("release the rest of a failed run at shutdown; their lease will expire instead", "err", err, "events", len(evs))
	}
}

func eventIDs(evs []triggers.Event) []int64 {
	ids := make([]int64, len(evs))
	for i, ev := range evs {
		ids[i] = ev.ID
	}
	return ids
}

// releaseEvents gives back claimed events that were never started, or whose
// handling a shutdown interrupted. It runs on its own storeTimeout even
// after hctx ended (handlers cut off at ShutdownTimeout), so another worker
// can take the events at once instead of after their lease.
func (w *Worker) releaseEvents(hctx context.Context, evs []triggers.Event) {
	if len(evs) == 0 {
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(hctx), storeTimeout)
	defer cancel()
	if err := w.st.ReleaseEvents(sctx, w.cfg.Name, eventIDs(evs)); err != nil {
		w.log.Warn("release claimed events at shutdown; their lease will expire instead", "err", err, "events", len(evs))
	}
}

// completeEvents marks handled events done, batching whatever has queued up
// while the previous batch was written (so a lone event is written at once
// and a burst in few statements), then wakes the claim loop: the machines
// of the batch may have their next event ready.
func (w *Worker) completeEvents(hctx context.Context, succeeded <-chan triggers.Event, completed chan struct{}) {
	const maxBatch = 500
	for ev := range succeeded {
		batch := []triggers.Event{ev}
	more:
		for len(batch) < maxBatch {
			select {
			case ev, ok := <-succeeded:
				if !ok {
					break more
				}
				batch = append(batch, ev)
			default:
				break more
			}
		}
		var done []int64
		err := w.untilStored(hctx, "record events done", func(sctx context.Context) (err error) {
			done, err = w.st.CompleteEvents(sctx, w.cfg.Name, batch)
			return err
		})
		if err != nil {
			w.log.Warn("record events done at shutdown; they will be handled again when their lease expires", "events", len(batch), "err", err)
		}
		// Only the events still ours were marked done: one whose lease was
		// taken over is its new holder's to count.
		for _, ev := range batch {
			if slices.Contains(done, ev.ID) {
				w.metrics.processed.WithLabelValues(string(ev.Kind)).Inc()
				w.metrics.latency.Observe(max(time.Since(ev.CreatedAt).Seconds(), 0))
			}
		}
		wake(completed)
	}
}

// processEvent runs the handlers of one event (its kind's run handler with
// a run of one, then its per-event handlers) and reports whether they all
// succeeded (the caller then marks it done). Otherwise it records the
// outcome itself: retry after backoff, or parked after MaxAttempts; an event
// that a shutdown interrupted is released, not counted as failed.
func (w *Worker) processEvent(ctx, hctx context.Context, ev triggers.Event) bool {
	kind := string(ev.Kind)
	err := w.refusal(ev)
	refused := err != nil
	if !refused {
		err = w.runHandlers(hctx, []triggers.Event{ev})
	}
	if err == nil {
		return true
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		w.releaseEvents(hctx, []triggers.Event{ev})
		return false
	}
	park := refused || ev.Attempt >= w.cfg.MaxAttempts
	backoff := w.cfg.Backoff(ev.Attempt)
	if ferr := w.untilStored(hctx, "record event failure", func(sctx context.Context) error {
		return w.st.FailEvent(sctx, w.cfg.Name, ev.ID, err.Error(), backoff, park)
	}); ferr != nil {
		w.log.Warn("record event failure at shutdown; its lease will expire instead", "event", ev.ID, "err", ferr)
		return false
	}
	w.metrics.failed.WithLabelValues(kind).Inc()
	if park {
		w.metrics.parked.WithLabelValues(kind).Inc()
		w.log.Error("event parked", "event", ev.ID, "kind", kind, "machine_id", ev.MachineID, "attempts", ev.Attempt, "err", err)
		return false
	}
	w.log.Warn("event failed; will retry", "event", ev.ID, "kind", kind, "machine_id", ev.MachineID,
		"attempt", ev.Attempt, "retry_in", backoff, "err", err)
	time.AfterFunc(backoff, func() { wake(w.eventWake) })
	return false
}

// untilStored runs a store write that records an event's outcome, retrying
// with backoff (100 ms doubling to 5 s) while the database is unreachable,
// until it succeeds or hctx ends (shutdown). Giving up early is not an
// option: the worker renews the lease of every event it holds for as long
// as it lives, so an outcome left unrecorded would keep that event — and
// every later event of its machine — leased and untouched forever (seen
// after a PostgreSQL restart).
func (w *Worker) untilStored(hctx context.Context, what string, write func(context.Context) error) error {
	delay := 100 * time.Millisecond
	for {
		sctx, cancel := context.WithTimeout(hctx, storeTimeout)
		err := write(sctx)
		cancel()
		if err == nil || hctx.Err() != nil {
			return err
		}
		w.log.Warn(what+" failed; retrying", "err", err, "retry_in", delay)
		select {
		case <-hctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// runHandlers calls the handlers of a run's kind, all under one
// HandlerTimeout: the run handler with the whole run, then for each event in
// turn the per-event handlers in the order they were added. A panic becomes
// an error.
func (w *Worker) runHandlers(hctx context.Context, evs []triggers.Event) error {
	w.mu.Lock()
	rh := w.runs[evs[0].Kind]
	hs := w.handlers[evs[0].Kind]
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(hctx, w.cfg.HandlerTimeout)
	defer cancel()
	if rh != nil {
		w.metrics.runEvents.Observe(float64(len(evs)))
		if err := callRunHandler(ctx, rh, evs); err != nil {
			return err
		}
	}
	for _, ev := range evs {
		for _, h := range hs {
			if err := callHandler(ctx, h, ev); err != nil {
				return err
			}
		}
	}
	return nil
}

func callRunHandler(ctx context.Context, h RunHandler, evs []triggers.Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("run handler panicked: %v", p)
		}
	}()
	return h(ctx, evs)
}

func callHandler(ctx context.Context, h Handler, ev triggers.Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return h(ctx, ev)
}
