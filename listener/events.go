package listener

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/enms/enms-analytics/triggers"
)

// storeTimeout bounds the bookkeeping writes (complete, fail, release),
// which also run during shutdown after ctx is done.
const storeTimeout = 10 * time.Second

// runEvents is the claim loop of the outbox: it claims batches (one event
// per machine) when woken by a notification, a completed event, a retry
// timer or the poll ticker, and feeds Concurrency handler goroutines.
func (w *Worker) runEvents(ctx, hctx context.Context) {
	work := make(chan triggers.Event)
	succeeded := make(chan triggers.Event, w.cfg.BatchSize)
	completed := make(chan struct{}, 1)
	var wg sync.WaitGroup
	for range w.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ev := range work {
				if w.processEvent(ctx, hctx, ev) {
					succeeded <- ev
				} else {
					wake(completed)
				}
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
	var queue []triggers.Event
	dirty, drained := true, false
	for {
		if len(queue) == 0 && dirty && ctx.Err() == nil {
			dirty = false
			epoch := w.listenEpoch.Load()
			evs, err := w.st.ClaimEvents(ctx, w.cfg.Name, w.cfg.BatchSize, w.cfg.LeaseDuration)
			switch {
			case err != nil && ctx.Err() == nil:
				w.log.Warn("claim events failed; retrying at the next wake-up or poll", "err", err)
			case err == nil:
				queue = evs
				if len(evs) == w.cfg.BatchSize {
					dirty = true // there may be more
				} else {
					w.markDrained(&drained, epoch)
				}
			}
		}
		var send chan triggers.Event
		var next triggers.Event
		if len(queue) > 0 {
			send, next = work, queue[0]
		}
		select {
		case <-ctx.Done():
			close(work)
			w.releaseEvents(hctx, queue)
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

// releaseEvents gives back claimed events that were never started.
func (w *Worker) releaseEvents(hctx context.Context, evs []triggers.Event) {
	if len(evs) == 0 {
		return
	}
	ids := make([]int64, len(evs))
	for i, ev := range evs {
		ids[i] = ev.ID
	}
	sctx, cancel := context.WithTimeout(hctx, storeTimeout)
	defer cancel()
	if err := w.st.ReleaseEvents(sctx, w.cfg.Name, ids); err != nil {
		w.log.Warn("release claimed events at shutdown; their lease will expire instead", "err", err, "events", len(ids))
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
		err := w.untilStored(hctx, "record events done", func(sctx context.Context) error {
			return w.st.CompleteEvents(sctx, w.cfg.Name, batch)
		})
		if err != nil {
			w.log.Warn("record events done at shutdown; they will be handled again when their lease expires", "events", len(batch), "err", err)
		} else {
			for _, ev := range batch {
				w.metrics.processed.WithLabelValues(string(ev.Kind)).Inc()
				w.metrics.latency.Observe(max(time.Since(ev.CreatedAt).Seconds(), 0))
			}
		}
		wake(completed)
	}
}

// processEvent runs the handlers of one event and reports whether they all
// succeeded (the caller then marks it done). Otherwise it records the
// outcome itself: retry after backoff, or parked after MaxAttempts; an event
// that a shutdown interrupted is released, not counted as failed.
func (w *Worker) processEvent(ctx, hctx context.Context, ev triggers.Event) bool {
	kind := string(ev.Kind)
	var err error
	switch {
	case ev.Attempt > w.cfg.MaxAttempts:
		err = fmt.Errorf("the worker was interrupted (stopped or lost its lease) %d times while handling this event", ev.Attempt-1)
	default:
		if err = ev.Validate(); err == nil {
			err = w.runHandlers(hctx, ev)
		}
	}
	if err == nil {
		return true
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		w.releaseEvents(hctx, []triggers.Event{ev})
		return false
	}
	park := ev.Attempt >= w.cfg.MaxAttempts || ev.Validate() != nil
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

// runHandlers calls the handlers of the event's kind in order, each under
// HandlerTimeout; a panic becomes an error.
func (w *Worker) runHandlers(hctx context.Context, ev triggers.Event) error {
	w.mu.Lock()
	hs := w.handlers[ev.Kind]
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(hctx, w.cfg.HandlerTimeout)
	defer cancel()
	for _, h := range hs {
		if err := callHandler(ctx, h, ev); err != nil {
			return err
		}
	}
	return nil
}

func callHandler(ctx context.Context, h Handler, ev triggers.Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return h(ctx, ev)
}
