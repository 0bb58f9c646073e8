// Package forecast issues energy forecasts as a machine's hours close: it
// reads the history through store, chooses and fits models through
// analytics, and writes the forecasts and their accuracy through store.
//
// On every closed hour of a machine it forecasts, from origin = the end of
// that hour (data time, never the wall clock), the next 24 hours hourly and
// the next hour in 15-minute steps; when the hour closes a local day of the
// factory, also the next 7 days. It then records the actuals of forecast
// targets that have closed, which is what the accuracy view reads. Once a
// day it deletes the machine's forecasts older than Config.Retention.
//
// Models are refitted once per UTC day of data time: the model used at
// origin O is the one chosen and fitted on the history before the midnight
// M ≤ O, then fed the buckets in [M, O). That makes a forecast a function of
// the data alone — a warm cache, a cold start after a restart, and a
// re-processed hour all write the same rows — while the work with a warm
// cache is two round trips (read the new buckets; prune, upsert and score in
// one batch) and a few O(horizon) predictions per hour. A backfill closes
// runs of hours at once (HoursClosed): the same two round trips for the
// whole run, plus a read of history for each refit (a UTC midnight) and
// each daily forecast (a local midnight) inside it.
package forecast

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/enms/enms-analytics/analytics"
	"github.com/enms/enms-analytics/store"
	"github.com/enms/enms-analytics/triggers"
)

// Config configures a Service. Store is required; zero values of the other
// fields take the defaults shown.
type Config struct {
	Store  *store.Store
	Logger *slog.Logger // default: discard
	// HourlyHistory is the history the hourly model is fitted on (90 days).
	HourlyHistory time.Duration
	// QuarterHourHistory is the history of the 15-minute model (35 days).
	QuarterHourHistory time.Duration
	// DailyDays is the number of days the daily model is fitted on (180).
	DailyDays int
	// Retention is how long forecasts (and so the accuracy record) are kept,
	// by target bucket in data time; older rows are deleted once a day, at
	// the machine's local midnight (90 days). Negative: kept forever.
	Retention time.Duration
}

// Service issues forecasts. It is safe for concurrent use; calls for one
// machine are serialised.
type Service struct {
	cfg      Config
	mu       sync.Mutex
	machines map[string]*machineState
	fits     atomic.Int64
}

type machineState struct {
	mu     sync.Mutex
	loc    *time.Location
	tz     string
	models map[string]*cachedModel // by resolution
}

// cachedModel is a chosen model fitted on the history before anchor and fed
// the buckets since.
type cachedModel struct {
	anchor time.Time
	choice *analytics.ForecastChoice // nil: too little history at anchor
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HourlyHistory <= 0 {
		cfg.HourlyHistory = 90 * 24 * time.Hour
	}
	if cfg.QuarterHourHistory <= 0 {
		cfg.QuarterHourHistory = 35 * 24 * time.Hour
	}
	if cfg.DailyDays <= 0 {
		cfg.DailyDays = 180
	}
	if cfg.Retention == 0 {
		cfg.Retention = 90 * 24 * time.Hour
	}
	return &Service{cfg: cfg, machines: map[string]*machineState{}}
}

// Fits reports how many models the service has chosen and fitted since it
// started (cache misses), for metrics and tests.
func (s *Service) Fits() int64 { return s.fits.Load() }

// HandleEvent is the listener handler: hour_closed issues forecasts,
// hour_revised rescores the targets that overlap the revised hour. Other
// kinds are ignored.
func (s *Service) HandleEvent(ctx context.Context, ev triggers.Event) error {
	switch ev.Kind {
	case triggers.KindHourClosed:
		return s.HourClosed(ctx, ev.MachineID, ev.Bucket)
	case triggers.KindHourRevised:
		return s.HourRevised(ctx, ev.MachineID, ev.Bucket)
	}
	return nil
}

// spec is one forecast resolution.
type spec struct {
	resolution string
	step       time.Duration
	plan       func() analytics.ForecastPlan
}

var (
	hourly  = spec{store.Resolution1Hour, time.Hour, analytics.HourlyForecastPlan}
	quarter = spec{store.Resolution15Min, 15 * time.Minute, analytics.QuarterHourForecastPlan}
)

// state returns the machine's state LOCKED (the caller unlocks it), loading
// its factory's time zone on first use; an unknown zone falls back to UTC
// with a warning.
func (s *Service) state(ctx context.Context, machineID string) (*machineState, error) {
	s.mu.Lock()
	m, ok := s.machines[machineID]
	if !ok {
		m = &machineState{models: map[string]*cachedModel{}}
		s.machines[machineID] = m
	}
	s.mu.Unlock()
	m.mu.Lock()
	if m.loc == nil {
		mc, err := s.cfg.Store.Machine(ctx, machineID)
		if err != nil {
			m.mu.Unlock()
			return nil, fmt.Errorf("look up machine: %w", err)
		}
		loc, err := time.LoadLocation(mc.FactoryTimezone)
		if err != nil {
			s.cfg.Logger.Warn("factory time zone unknown; forecasting in UTC",
				"machine_id", machineID, "timezone", mc.FactoryTimezone, "err", err)
			loc = time.UTC
			mc.FactoryTimezone = "UTC"
		}
		m.loc, m.tz = loc, mc.FactoryTimezone
	}
	return m, nil
}

// HourClosed issues the forecasts from the end of hour (the start of the
// closed hour) and scores the targets that have closed by then. Calling it
// again for the same hour writes the same rows. It is HoursClosed of one
// hour.
func (s *Service) HourClosed(ctx context.Context, machineID string, hour time.Time) error {
	return s.HoursClosed(ctx, machineID, []time.Time{hour})
}

// HoursClosed is HourClosed for each of hours in order (strictly increasing
// starts of hours of one machine, as a backfill closes them), leaving exactly
// the rows HourClosed hour by hour would have left: it reads the new buckets
// of the whole run in one round trip and feeds the models hour by hour in
// memory (a refit at a UTC midnight inside the run and a daily forecast at a
// local midnight still read their history), then writes every row, the
// actuals of the targets that closed within the run and the retention prune
// of the run's latest local midnight in one round trip. On error nothing of
// the run is written.
func (s *Service) HoursClosed(ctx context.Context, machineID string, hours []time.Time) error {
	if len(hours) == 0 {
		return nil
	}
	origins := make([]time.Time, len(hours))
	for i, hour := range hours {
		if !hour.Equal(hour.Truncate(time.Hour)) {
			return fmt.Errorf("forecast: %s is not the start of an hour", hour.Format(time.RFC3339Nano))
		}
		if i > 0 && !hour.After(hours[i-1]) {
			return fmt.Errorf("forecast: closed hours must be in increasing order, but %s follows %s",
				hour.Format(time.RFC3339), hours[i-1].Format(time.RFC3339))
		}
		origins[i] = hour.Add(time.Hour).UTC()
	}
	first, last := origins[0], origins[len(origins)-1]
	m, err := s.state(ctx, machineID)
	if err != nil {
		return fmt.Errorf("forecast %s at %s: %w", machineID, first.Format(time.RFC3339), err)
	}
	defer m.mu.Unlock()
	read, err := s.readRun(ctx, m, machineID, first, last)
	if err != nil {
		return fmt.Errorf("forecast %s at %s…%s: %w", machineID, first.Format(time.RFC3339), last.Format(time.RFC3339), err)
	}
	var rows []store.ForecastRow
	var pruneBefore time.Time
	for _, origin := range origins {
		for _, sp := range []spec{hourly, quarter} {
			r, err := s.issue(ctx, m, machineID, sp, origin, read[sp.resolution])
			if err != nil {
				return fmt.Errorf("forecast %s %s at %s: %w", machineID, sp.resolution, origin.Format(time.RFC3339), err)
			}
			rows = append(rows, r...)
		}
		if local := origin.In(m.loc); local.Hour() == 0 && local.Minute() == 0 {
			r, err := s.issueDaily(ctx, m, machineID, origin)
			if err != nil {
				return fmt.Errorf("forecast %s daily at %s: %w", machineID, origin.Format(time.RFC3339), err)
			}
			rows = append(rows, r...)
			if s.cfg.Retention > 0 {
				pruneBefore = origin.Add(-s.cfg.Retention)
			}
		}
	}
	// Hour by hour, the prune at the run's latest local midnight deletes
	// the rows of earlier hours of the run whose targets fall before its
	// bound (possible only with a Retention shorter than the run): they are
	// not written at all.
	if !pruneBefore.IsZero() {
		rows = slices.DeleteFunc(rows, func(r store.ForecastRow) bool { return r.TargetBucket.Before(pruneBefore) })
	}
	if err := s.cfg.Store.SaveForecastRun(ctx, machineID, m.tz, origins, rows, pruneBefore); err != nil {
		return fmt.Errorf("forecast %s at %s…%s: %w", machineID, first.Format(time.RFC3339), last.Format(time.RFC3339), err)
	}
	return nil
}

// usable returns the cached model of sp when it can forecast from origin:
// fitted at origin's anchor and not yet past origin.
func (m *machineState) usable(sp spec, origin time.Time) *cachedModel {
	c := m.models[sp.resolution]
	if c == nil || !c.anchor.Equal(origin.Truncate(24*time.Hour)) || (c.choice != nil && c.choice.Next().After(origin)) {
		return nil
	}
	return c
}

// buckets is a stretch of one resolution's rollup energies on the grid
// from, from+step, …, NaN where a bucket has no row (as dense lays them
// out).
type buckets struct {
	from   time.Time
	step   time.Duration
	values []float64
}

// span returns the values of the buckets in [from, to), and false when the
// stretch does not hold them all.
func (b buckets) span(from, to time.Time) ([]float64, bool) {
	i, j := int(from.Sub(b.from)/b.step), int(to.Sub(b.from)/b.step)
	if i < 0 || j > len(b.values) || i > j || !from.Equal(b.from.Add(time.Duration(i)*b.step)) ||
		!to.Equal(b.from.Add(time.Duration(j)*b.step)) {
		return nil, false
	}
	return b.values[i:j], true
}

// readRun reads, in one round trip, every hourly and 15-minute bucket the
// models will be fed while forecasting from the origins first … last: from
// where the cached model stands when it can forecast from first, else from
// first's anchor (where the model fitted there starts), to last. Every later
// refit is at a later anchor, after the origin before it, so inside.
func (s *Service) readRun(ctx context.Context, m *machineState, machineID string, first, last time.Time) (map[string]buckets, error) {
	from := func(sp spec) time.Time {
		if c := m.usable(sp, first); c != nil && c.choice != nil {
			return c.choice.Next()
		}
		return first.Truncate(24 * time.Hour)
	}
	hFrom, qFrom := from(hourly), from(quarter)
	var hours, quarters []store.BucketEnergy
	if hFrom.Before(last) || qFrom.Before(last) {
		var err error
		if hours, quarters, err = s.cfg.Store.RecentBucketEnergies(ctx, machineID, hFrom, qFrom, last); err != nil {
			return nil, err
		}
	}
	stretch := func(sp spec, from time.Time, rows []store.BucketEnergy) buckets {
		return buckets{from: from, step: sp.step, values: dense(rows, from, sp.step, int(last.Sub(from)/sp.step))}
	}
	return map[string]buckets{
		hourly.resolution:  stretch(hourly, hFrom, hours),
		quarter.resolution: stretch(quarter, qFrom, quarters),
	}, nil
}

// HourRevised rewrites the actuals of the scored targets that overlap hour
// (late data changed it); targets not closed yet are left for HourClosed.
func (s *Service) HourRevised(ctx context.Context, machineID string, hour time.Time) error {
	m, err := s.state(ctx, machineID)
	if err != nil {
		return fmt.Errorf("rescore %s at %s: %w", machineID, hour.Format(time.RFC3339), err)
	}
	defer m.mu.Unlock()
	// A daily target that contains hour starts at most 25 hours before it.
	if _, err := s.cfg.Store.ScoreForecasts(ctx, machineID, m.tz, hour.Add(-26*time.Hour), time.Time{}); err != nil {
		return fmt.Errorf("rescore %s at %s: %w", machineID, hour.Format(time.RFC3339), err)
	}
	return nil
}

// issue forecasts sp.plan's horizon from origin: with the cached model when
// it can forecast from there, else with a model fitted at origin's anchor;
// either is first fed the buckets it has not seen before origin, from read.
func (s *Service) issue(ctx context.Context, m *machineState, machineID string, sp spec, origin time.Time, read buckets) ([]store.ForecastRow, error) {
	c := m.usable(sp, origin)
	if c == nil {
		var err error
		if c, err = s.fit(ctx, m, machineID, sp, origin.Truncate(24*time.Hour)); err != nil {
			return nil, err
		}
		m.models[sp.resolution] = c
	}
	if c.choice == nil {
		return nil, nil
	}
	if next := c.choice.Next(); next.Before(origin) {
		values, ok := read.span(next, origin)
		if !ok {
			// readRun's bounds cover every hour of a run; this is a bug.
			return nil, fmt.Errorf("buckets from %s were not read (read from %s)",
				next.Format(time.RFC3339), read.from.Format(time.RFC3339))
		}
		for _, v := range values {
			c.choice.Observe(v)
		}
	}
	hours := sp.step.Hours()
	var rows []store.ForecastRow
	for h, p := range c.choice.Predict() {
		rows = append(rows, row(machineID, origin, origin.Add(time.Duration(h)*sp.step), sp.resolution, h+1,
			p, hours, c.choice.Model.Name()))
	}
	return rows, nil
}

// fit chooses and fits the model on the history before anchor.
func (s *Service) fit(ctx context.Context, m *machineState, machineID string, sp spec, anchor time.Time) (*cachedModel, error) {
	history := s.cfg.HourlyHistory
	if sp.resolution == store.Resolution15Min {
		history = s.cfg.QuarterHourHistory
	}
	from := anchor.Add(-history)
	buckets, err := s.cfg.Store.BucketEnergies(ctx, machineID, sp.resolution, from, anchor)
	if err != nil {
		return nil, err
	}
	// Start the series at the first bucket with data: leading gaps are not
	// history.
	if len(buckets) > 0 {
		from = buckets[0].Bucket
	}
	series := analytics.ForecastSeries{Start: from.In(m.loc), Step: sp.step,
		Values: dense(buckets, from, sp.step, int(anchor.Sub(from)/sp.step))}
	s.fits.Add(1)
	choice, err := analytics.SelectForecastModel(series, sp.plan())
	if errors.Is(err, analytics.ErrShortHistory) {
		s.cfg.Logger.Debug("too little history to forecast", "machine_id", machineID,
			"resolution", sp.resolution, "buckets", len(series.Values))
		return &cachedModel{anchor: anchor}, nil
	}
	if err != nil {
		return nil, err
	}
	s.cfg.Logger.Debug("forecast model chosen", "machine_id", machineID, "resolution", sp.resolution,
		"model", choice.Model.Name(), "anchor", anchor)
	return &cachedModel{anchor: anchor, choice: choice}, nil
}

// issueDaily forecasts the next 7 local days from origin (a local
// midnight), fitted on the daily totals of the DailyDays days before it.
func (s *Service) issueDaily(ctx context.Context, m *machineState, machineID string, origin time.Time) ([]store.ForecastRow, error) {
	local := origin.In(m.loc)
	from := local.AddDate(0, 0, -s.cfg.DailyDays)
	days, err := s.cfg.Store.DailyEnergies(ctx, machineID, m.tz, from, origin)
	if err != nil {
		return nil, err
	}
	if len(days) > 0 {
		from = days[0].Bucket.In(m.loc)
	}
	series := analytics.ForecastSeries{Start: from, Step: 24 * time.Hour}
	index := map[int64]float64{}
	for _, d := range days {
		index[d.Bucket.Unix()] = d.KWh
	}
	for t := from; t.Before(local); t = t.AddDate(0, 0, 1) {
		v, ok := index[t.Unix()]
		if !ok {
			v = math.NaN()
		}
		series.Values = append(series.Values, v)
	}
	s.fits.Add(1)
	choice, err := analytics.SelectForecastModel(series, analytics.DailyForecastPlan())
	if errors.Is(err, analytics.ErrShortHistory) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rows []store.ForecastRow
	for h, p := range choice.Predict() {
		start := local.AddDate(0, 0, h)
		hours := start.AddDate(0, 0, 1).Sub(start).Hours()
		rows = append(rows, row(machineID, origin, start.UTC(), store.Resolution1Day, h+1, p, hours, choice.Model.Name()))
	}
	return rows, nil
}

func row(machineID string, origin, target time.Time, resolution string, horizon int, p analytics.ForecastPoint, hours float64, model string) store.ForecastRow {
	return store.ForecastRow{
		MachineID: machineID, Origin: origin, TargetBucket: target, Resolution: resolution, Horizon: horizon,
		PredictedKWh: p.Point, PredictedKW: p.Point / hours,
		Lower80: p.Lower80, Upper80: p.Upper80, Lower95: p.Lower95, Upper95: p.Upper95, Model: model,
	}
}

// dense lays buckets out on the grid from, from+step, … (n buckets), NaN
// where a bucket has no row.
func dense(buckets []store.BucketEnergy, from time.Time, step time.Duration, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = math.NaN()
	}
	for _, b := range buckets {
		i := int(b.Bucket.Sub(from) / step)
		if i >= 0 && i < n && b.Bucket.Equal(from.Add(time.Duration(i)*step)) {
			out[i] = b.KWh
		}
	}
	return out
}
