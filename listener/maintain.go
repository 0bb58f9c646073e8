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
	w.analyzeGrown(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-sweep.C:
			w.sweep(ctx)
		case <-gauges.C:
			w.refreshGauges(ctx)
			w.analyzeGrown(ctx)
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

// analyzeGrown gathers statistics on tables that have at least doubled
// since their last ANALYZE (and changed by 1,000 rows or more), so that the
// statements the worker prepared while they were small are planned again
// (store.AnalyzeGrown says why autovacuum alone is too late for that).
func (w *Worker) analyzeGrown(ctx context.Context) {
	tables, err := w.st.AnalyzeGrown(ctx, 1000, 1)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("analyze grown tables", "err", err)
		}
		return
	}
	if len(tables) > 0 {
		w.log.Debug("analyzed grown tables", "tables", tables)
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
