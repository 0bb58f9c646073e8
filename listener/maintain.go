package listener

import (
	"context"
	"errors"
	"time"

	"github.com/enms/enms-analytics/store"
)

// maintain runs the periodic chores: the sweeper (close hours with no newer
// data after HourCloseGrace, prune events older than EventRetention) every
// SweepInterval, and the queue gauges every PollInterval.
func (w *Worker) maintain(ctx context.Context) {
	sweep := time.NewTicker(w.cfg.SweepInterval)
	defer sweep.Stop()
	gauges := time.NewTicker(w.cfg.PollInterval)
	defer gauges.Stop()
	w.sweep(ctx)
	w.refreshGauges(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-sweep.C:
			w.sweep(ctx)
		case <-gauges.C:
			w.refreshGauges(ctx)
		}
	}
}

func (w *Worker) sweep(ctx context.Context) {
	n, err := w.st.CloseStaleHours(ctx, w.cfg.HourCloseGrace)
	switch {
	case errors.Is(err, store.ErrSweepUnavailable):
		w.sweepNotice.Do(func() {
			w.log.Info("hour sweeper disabled: the database has no analytics_close_stale_hours function")
		})
	case err != nil:
		if ctx.Err() == nil {
			w.log.Warn("close stale hours", "err", err)
		}
	case n > 0:
		w.log.Debug("closed stale hours", "hours", n)
		wake(w.eventWake)
	}
	pruned, err := w.st.PruneEvents(ctx, w.cfg.EventRetention)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("prune events", "err", err)
		}
		return
	}
	if pruned > 0 {
		w.log.Debug("pruned processed events", "events", pruned)
	}
}

func (w *Worker) refreshGauges(ctx context.Context) {
	b, err := w.st.EventBacklog(ctx)
	if err != nil {
		return
	}
	w.metrics.queueDepth.Set(float64(b.Pending))
	w.metrics.parkedDepth.Set(float64(b.Parked))
	w.metrics.lag.Set(b.OldestPending)
	if n, err := w.st.PendingTrainRequests(ctx); err == nil {
		w.metrics.trainPending.Set(float64(n))
	}
}

// renewLeases extends this worker's leases every third of LeaseDuration
// until ctx is done.
func (w *Worker) renewLeases(ctx context.Context) {
	t := time.NewTicker(w.cfg.LeaseDuration / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := w.st.RenewLeases(ctx, w.cfg.Name, w.cfg.LeaseDuration); err != nil && ctx.Err() == nil {
			w.log.Warn("renew leases", "err", err)
		}
	}
}
