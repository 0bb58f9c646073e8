package baseline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/enms/enms-analytics/analytics"
	"github.com/enms/enms-analytics/listener"
	"github.com/enms/enms-analytics/store"
	"github.com/enms/enms-analytics/triggers"
)

// The rolling model of a machine is the regression anomaly scoring compares
// against. It is the sufficient statistics (analytics.Stats) of the last
// BASELINE_WINDOW_DAYS of usable hours, persisted in baseline_rolling_state
// together with the exact observation each included hour contributed
// (baseline_rolling_hours), so that:
//   - a closed hour is added and the hours leaving the window removed in
//     O(p²) each (hour_closed);
//   - a revised hour is replaced by exactly what was added (hour_revised);
//   - a restarted worker resumes with the same statistics, bit for bit.
//
// Its drivers are the active baseline's; without one, a default set chosen
// by coverage (re-chosen every publish interval, and daily while the model
// is young). A change of drivers rebuilds the model from the window, O(window).
// Every BASELINE_PUBLISH_INTERVAL of data time it is published as a new
// active version when it passes validity.

// defaultCandidates are the drivers a model without an active baseline may
// use, in preference order.
var defaultCandidates = []string{
	analytics.DriverProductionCount, analytics.DriverOperatingHours, analytics.DriverPressure,
	analytics.DriverMaterialMoisturePct, analytics.DriverHDD, analytics.DriverCDD,
}

func (s *Service) window() time.Duration { return time.Duration(s.cfg.WindowDays) * 24 * time.Hour }

// HourClosedHandler returns the listener handler for hour_closed: the hour is
// added to the rolling model (Refresh with include = true). Anomaly scoring,
// which must score an hour before it is added and keep anomalous hours out,
// steps a RollingRun (or calls Score and Refresh) itself instead.
func (s *Service) HourClosedHandler() listener.Handler {
	return func(ctx context.Context, ev triggers.Event) error {
		return s.Refresh(ctx, ev.MachineID, ev.Bucket, true)
	}
}

// HourRevisedHandler returns the listener handler for hour_revised.
func (s *Service) HourRevisedHandler() listener.Handler {
	return func(ctx context.Context, ev triggers.Event) error {
		return s.Revise(ctx, ev.MachineID, ev.Bucket)
	}
}

// rolling is a decoded state.
type rolling struct {
	state  store.RollingState
	design *analytics.Design
	stats  *analytics.Stats
}

func decodeState(st store.RollingState) (*rolling, error) {
	var d analytics.Design
	if err := json.Unmarshal(st.Design, &d); err != nil {
		return nil, fmt.Errorf("decode rolling design: %w", err)
	}
	var stats analytics.Stats
	if err := json.Unmarshal(st.Stats, &stats); err != nil {
		return nil, fmt.Errorf("decode rolling statistics: %w", err)
	}
	design := d.WithLocation(loadLocation(d.TimeZone))
	if !slices.Equal(design.Columns, stats.Columns()) {
		return nil, fmt.Errorf("rolling model of machine %s: design columns %v do not match statistics columns %v",
			st.MachineID, design.Columns, stats.Columns())
	}
	return &rolling{state: st, design: design, stats: &stats}, nil
}

func (r *rolling) encode() (store.RollingState, error) {
	st := r.state
	var err error
	if st.Design, err = json.Marshal(r.design); err != nil {
		return st, fmt.Errorf("encode rolling design: %w", err)
	}
	if st.Stats, err = json.Marshal(r.stats); err != nil {
		return st, fmt.Errorf("encode rolling statistics: %w", err)
	}
	st.Drivers = r.design.Drivers
	return st, nil
}

// save encodes the state and writes it in tx.
func (r *rolling) save(ctx context.Context, tx *store.RollingTx) error {
	st, err := r.encode()
	if err != nil {
		return err
	}
	return tx.SaveState(ctx, st)
}

// Refresh brings the machine's rolling model up to the closed hour: the
// hour is added when include is true and it is usable (running, not in
// maintenance, fault or offline, every driver reported), and hours that
// left the window are removed. It is idempotent: an hour already included
// is not added again.
func (s *Service) Refresh(ctx context.Context, machineID string, hour time.Time, include bool) error {
	hour = hour.UTC().Truncate(time.Hour)
	err := s.st.Rolling(ctx, machineID, func(tx *store.RollingTx) error {
		r, rebuilt, err := s.loadOrRebuild(ctx, tx, machineID, hour)
		if err != nil {
			return err
		}
		if rebuilt {
			if include {
				return nil
			}
			return s.keepOut(ctx, tx, r, hour) // the rebuild read it; the caller keeps it out
		}
		if r.state.LastHour != nil && !hour.After(r.state.LastHour.Add(-s.window())) {
			return nil // older than the window: nothing to do
		}
		// Only an hour after the model's last hour counts as a refresh. An
		// hour at or before it is a redelivery (the worker died after this
		// refresh, or after a run of refreshes, committed and before the
		// events were marked done) or an hour that closed late: it may
		// change what the model holds, but counting it would make every
		// later model version depend on where a crash fell.
		advances := r.state.LastHour == nil || hour.After(*r.state.LastHour)
		if include {
			if err := s.addHour(ctx, tx, r, hour); err != nil {
				return err
			}
		} else if err := tx.KeepOut(ctx, hour); err != nil {
			return err
		}
		if advances {
			r.state.LastHour = &hour
		}
		if err := s.evict(ctx, tx, r); err != nil {
			return err
		}
		if advances {
			r.state.RefreshedCount++
		}
		if err := s.maybePublish(ctx, tx, r, hour); err != nil {
			return err
		}
		return r.save(ctx, tx)
	})
	if err != nil {
		return fmt.Errorf("refresh rolling model of machine %s at %s: %w", machineID, hour.Format(time.RFC3339), err)
	}
	return nil
}

// addHour adds hour when usable and not already included.
func (s *Service) addHour(ctx context.Context, tx *store.RollingTx, r *rolling, hour time.Time) error {
	if _, ok, err := tx.Hour(ctx, hour); err != nil || ok {
		return err
	}
	kept, err := tx.KeptOut(ctx, hour, hour.Add(time.Hour))
	if err != nil || kept[hour.Unix()] {
		return err
	}
	hs, err := tx.FeatureHours(ctx, hour, hour.Add(time.Hour))
	if err != nil || len(hs) == 0 {
		return err
	}
	x, ok := usableRow(r.design, hs[0])
	if !ok {
		return nil
	}
	r.stats.Add(x, hs[0].EnergyKWh)
	return tx.PutHour(ctx, store.RollingHour{Hour: hour, X: x, Y: hs[0].EnergyKWh})
}

// keepOut takes hour out of the model (when it is included), marks it kept
// out, and saves the state.
func (s *Service) keepOut(ctx context.Context, tx *store.RollingTx, r *rolling, hour time.Time) error {
	if err := tx.KeepOut(ctx, hour); err != nil {
		return err
	}
	if old, ok, err := tx.Hour(ctx, hour); err != nil {
		return err
	} else if ok {
		if err := r.stats.Remove(old.X, old.Y); err != nil {
			return err
		}
		if err := tx.DeleteHour(ctx, hour); err != nil {
			return err
		}
	}
	return r.save(ctx, tx)
}

// SetLearned corrects whether an hour already closed is in the rolling model:
// learn = false takes it out and keeps it out (an hour re-scored as
// anomalous); learn = true lets a kept-out hour back in when it is usable.
// Hours outside the window are left alone.
func (s *Service) SetLearned(ctx context.Context, machineID string, hour time.Time, learn bool) error {
	hour = hour.UTC().Truncate(time.Hour)
	err := s.st.Rolling(ctx, machineID, func(tx *store.RollingTx) error {
		st, err := tx.State(ctx)
		if errors.Is(err, store.ErrNotFound) {
			if learn {
				return nil
			}
			return tx.KeepOut(ctx, hour) // remembered for when the model is built
		}
		if err != nil {
			return err
		}
		r, err := decodeState(st)
		if err != nil {
			return err
		}
		if r.state.LastHour != nil && !hour.After(r.state.LastHour.Add(-s.window())) {
			return nil
		}
		if !learn {
			return s.keepOut(ctx, tx, r, hour)
		}
		if err := tx.Unkeep(ctx, hour); err != nil {
			return err
		}
		if err := s.addHour(ctx, tx, r, hour); err != nil {
			return err
		}
		return r.save(ctx, tx)
	})
	if err != nil {
		return fmt.Errorf("set learned hour of machine %s at %s: %w", machineID, hour.Format(time.RFC3339), err)
	}
	return nil
}

// usableRow is the design row of an hour the machine state allows and that
// reports every driver.
func usableRow(d *analytics.Design, h store.FeatureHour) ([]float64, bool) {
	row, ex := classify(h)
	if ex != Included {
		return nil, false
	}
	return d.Row(row)
}

// evict removes the hours before the window that ends with LastHour.
func (s *Service) evict(ctx context.Context, tx *store.RollingTx, r *rolling) error {
	cutoff := r.state.LastHour.Add(time.Hour - s.window())
	old, err := tx.TakeHoursBefore(ctx, cutoff)
	if err != nil {
		return err
	}
	if err := tx.ForgetKeptOutBefore(ctx, cutoff); err != nil {
		return err
	}
	for _, h := range old {
		if err := r.stats.Remove(h.X, h.Y); err != nil {
			return err
		}
	}
	return nil
}

// Revise corrects the rolling model for an hour whose data changed after it
// closed: the observation added for it is replaced (or removed when the hour
// is no longer usable), or added when it is inside the window and has
// become usable.
func (s *Service) Revise(ctx context.Context, machineID string, hour time.Time) error {
	hour = hour.UTC().Truncate(time.Hour)
	err := s.st.Rolling(ctx, machineID, func(tx *store.RollingTx) error {
		st, err := tx.State(ctx)
		if errors.Is(err, store.ErrNotFound) {
			return nil // no model yet: the hour is read when the model is built
		}
		if err != nil {
			return err
		}
		r, err := decodeState(st)
		if err != nil {
			return err
		}
		if r.state.LastHour == nil || hour.After(*r.state.LastHour) ||
			!hour.After(r.state.LastHour.Add(-s.window())) {
			return nil // not closed yet, or outside the window
		}
		kept, err := tx.KeptOut(ctx, hour, hour.Add(time.Hour))
		if err != nil || kept[hour.Unix()] {
			return err // kept out by the caller: its data do not matter here
		}
		old, had, err := tx.Hour(ctx, hour)
		if err != nil {
			return err
		}
		hs, err := tx.FeatureHours(ctx, hour, hour.Add(time.Hour))
		if err != nil {
			return err
		}
		var x []float64
		ok := false
		if len(hs) == 1 {
			x, ok = usableRow(r.design, hs[0])
		}
		switch {
		case had && ok:
			if err := r.stats.Revise(old.X, old.Y, x, hs[0].EnergyKWh); err != nil {
				return err
			}
			err = tx.PutHour(ctx, store.RollingHour{Hour: hour, X: x, Y: hs[0].EnergyKWh})
		case had:
			if err := r.stats.Remove(old.X, old.Y); err != nil {
				return err
			}
			err = tx.DeleteHour(ctx, hour)
		case ok:
			r.stats.Add(x, hs[0].EnergyKWh)
			err = tx.PutHour(ctx, store.RollingHour{Hour: hour, X: x, Y: hs[0].EnergyKWh})
		default:
			return nil
		}
		if err != nil {
			return err
		}
		return r.save(ctx, tx)
	})
	if err != nil {
		return fmt.Errorf("revise rolling model of machine %s at %s: %w", machineID, hour.Format(time.RFC3339), err)
	}
	return nil
}

// loadOrRebuild returns the machine's model, rebuilding it from the window
// ending with hour when there is none, when the active baseline's drivers
// differ from the model's, when the window length changed, or when default
// drivers are due to be re-chosen. rebuilt reports that the state was
// rebuilt and saved (hour included).
func (s *Service) loadOrRebuild(ctx context.Context, tx *store.RollingTx, machineID string, hour time.Time) (*rolling, bool, error) {
	st, err := tx.State(ctx)
	missing := errors.Is(err, store.ErrNotFound)
	if err != nil && !missing {
		return nil, false, err
	}
	active, err := tx.ActiveBaseline(ctx)
	hasActive := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, false, err
	}
	var activeDrivers []string
	if hasActive {
		activeDrivers = baselineDrivers(active)
	}
	if !missing {
		r, err := decodeState(st)
		if err != nil {
			return nil, false, err
		}
		// An hour the model has passed (a redelivery after a run or a
		// refresh committed, or an hour that closed late) neither rebuilds
		// it nor adopts a new active baseline: that was decided when the
		// model reached the hour, and rebuilding now would redo the window
		// up to an hour already past. The next new hour decides.
		if r.state.LastHour != nil && !hour.After(*r.state.LastHour) {
			return r, false, nil
		}
		if keep, adopt := s.keepModel(r, active, hasActive, activeDrivers, hour); keep {
			if adopt {
				r.state.SourceBaseline = &active.ID
			}
			return r, false, nil
		}
	}
	r, err := s.rebuild(ctx, tx, machineID, hour, activeDrivers, st, missing)
	if err != nil {
		return nil, false, err
	}
	if hasActive && activeDrivers != nil {
		r.state.SourceBaseline = &active.ID
	}
	return r, true, r.save(ctx, tx)
}

// keepModel is loadOrRebuild's decision for a stored model at hour: keep
// it, or rebuild it (the window length changed, the active baseline's
// drivers differ, or default drivers are due to be re-chosen). adopt says
// the active baseline's drivers are the model's, so the model takes the
// active baseline as its source.
func (s *Service) keepModel(r *rolling, active store.Baseline, hasActive bool, activeDrivers []string, hour time.Time) (keep, adopt bool) {
	sameWindow := r.state.WindowHours == int(s.window()/time.Hour)
	fromActive := hasActive && r.state.SourceBaseline != nil && *r.state.SourceBaseline == active.ID
	switch {
	case !sameWindow:
		return false, false
	case activeDrivers != nil && slices.Equal(activeDrivers, r.design.Drivers):
		return true, true
	case activeDrivers != nil && fromActive && !s.rechooseDue(r, hour):
		// the active baseline's drivers were not covered at the last
		// rebuild and default drivers stand in; tried again when due
		return true, false
	case activeDrivers == nil && r.state.SourceBaseline == nil && !s.rechooseDue(r, hour):
		return true, false
	}
	return false, false
}

// publishDue reports whether refreshing hour considers publishing the model.
func (s *Service) publishDue(r *rolling, hour time.Time) bool {
	return r.state.PublishChecked == nil || hour.Sub(*r.state.PublishChecked) >= s.cfg.PublishInterval
}

// rechooseDue: default drivers are re-chosen every publish interval, and
// daily while the model holds fewer than a week of hours.
func (s *Service) rechooseDue(r *rolling, hour time.Time) bool {
	if r.state.DriversChosenAt == nil {
		return true
	}
	since := hour.Sub(*r.state.DriversChosenAt)
	return since >= s.cfg.PublishInterval || (r.stats.N() < 168 && since >= 24*time.Hour)
}

// baselineDrivers reads the drivers a published baseline was trained on
// (metadata.design.drivers); nil when the row does not say (an adopted
// EnMS baseline).
func baselineDrivers(b store.Baseline) []string {
	var meta struct {
		Design struct {
			Drivers []string `json:"drivers"`
		} `json:"design"`
	}
	if json.Unmarshal(b.Metadata, &meta) != nil || analytics.ValidateDrivers(meta.Design.Drivers) != nil {
		return nil
	}
	return meta.Design.Drivers
}

// rebuild fits the rolling model from scratch over the window ending with
// hour, with the active baseline's drivers or (nil) default ones.
func (s *Service) rebuild(ctx context.Context, tx *store.RollingTx, machineID string, hour time.Time,
	drivers []string, prev store.RollingState, fresh bool) (*rolling, error) {
	m, err := s.st.Machine(ctx, machineID)
	if err != nil {
		return nil, err
	}
	loc := loadLocation(m.FactoryTimezone)
	start := hour.Add(time.Hour - s.window())
	hours, err := tx.FeatureHours(ctx, start, hour.Add(time.Hour))
	if err != nil {
		return nil, err
	}
	kept, err := tx.KeptOut(ctx, start, hour.Add(time.Hour))
	if err != nil {
		return nil, err
	}
	hours = slices.DeleteFunc(hours, func(h store.FeatureHour) bool { return kept[h.Hour.Unix()] })
	var asm *Assembly
	if drivers != nil {
		d, err := analytics.NewDesign(drivers, analytics.DesignOptions{DegreeBaseC: s.cfg.DegreeBaseC, Location: loc})
		if err != nil {
			return nil, err
		}
		if asm, err = assemble(d, hours); err != nil {
			var cov *CoverageError
			if !errors.As(err, &cov) {
				return nil, err
			}
			s.log.Warn("rolling model: the active baseline's drivers are not covered; using default drivers",
				"machine_id", machineID, "err", err)
			asm = nil
		}
	}
	if asm == nil {
		asm = s.chooseDefault(hours, loc)
	}
	if err := tx.DeleteAllHours(ctx); err != nil {
		return nil, err
	}
	obs := make([]store.RollingHour, len(asm.X))
	for i := range asm.X {
		obs[i] = store.RollingHour{Hour: asm.Rows[i].Hour, X: asm.X[i], Y: asm.Y[i]}
	}
	if err := tx.PutHours(ctx, obs); err != nil {
		return nil, err
	}
	r := &rolling{design: asm.Design, stats: asm.stats()}
	if !fresh {
		r.state = prev
	}
	r.state.MachineID = machineID
	r.state.SourceBaseline = nil
	r.state.WindowHours = int(s.window() / time.Hour)
	r.state.LastHour = &hour
	r.state.DriversChosenAt = &hour
	if r.state.PublishChecked == nil {
		r.state.PublishChecked = &hour
	}
	r.state.RefreshedCount++
	s.log.Info("rolling model rebuilt", "machine_id", machineID, "hour", hour, "drivers", asm.Design.Drivers,
		"hours", len(asm.X))
	return r, nil
}

// chooseDefault picks, from defaultCandidates, the drivers reported in at
// least MinCoverage of the usable hours, then drops drivers the window
// cannot estimate (constant or collinear); with none left, hour_of_day.
func (s *Service) chooseDefault(hours []store.FeatureHour, loc *time.Location) *Assembly {
	opts := analytics.DesignOptions{DegreeBaseC: s.cfg.DegreeBaseC, Location: loc}
	all, _ := analytics.NewDesign(defaultCandidates, opts)
	usable, _ := usableRows(hours)
	cov := all.Coverage(usable)
	var drivers []string
	for _, d := range defaultCandidates {
		if cov[d] >= MinCoverage {
			drivers = append(drivers, d)
		}
	}
	for len(drivers) > 0 {
		d, _ := analytics.NewDesign(drivers, opts)
		asm, err := assemble(d, hours)
		if err != nil {
			break
		}
		_, err = asm.stats().Fit()
		var rank *analytics.RankError
		if !errors.As(err, &rank) {
			return asm // fitted, or too few hours yet: keep these drivers
		}
		bad := map[string]bool{}
		for _, c := range rank.Drivers() {
			bad[driverOfColumn(asm.Design, c)] = true
		}
		drivers = slices.DeleteFunc(drivers, func(d string) bool { return bad[d] })
	}
	d, _ := analytics.NewDesign([]string{analytics.DriverHourOfDay}, opts)
	asm, _ := assemble(d, hours)
	return asm
}

// maybePublish publishes the model as a new active version when a publish
// interval of data time has passed since publication was last considered
// and the model passes validity. At that point the statistics are also
// re-accumulated from the stored observations (O(window), once an interval).
func (s *Service) maybePublish(ctx context.Context, tx *store.RollingTx, r *rolling, hour time.Time) error {
	if !s.publishDue(r, hour) {
		return nil
	}
	r.state.PublishChecked = &hour
	obs, err := tx.AllHours(ctx)
	if err != nil {
		return err
	}
	// Re-accumulate the statistics from the stored observations once per
	// interval: the same numbers up to rounding, without the rounding that
	// years of add/remove would otherwise accumulate.
	fresh := analytics.NewStats(r.design.Columns)
	for _, o := range obs {
		fresh.Add(o.X, o.Y)
	}
	r.stats = fresh
	model, err := r.stats.Fit()
	if err != nil {
		return nil // not fittable yet: try again next interval
	}
	start := hour.Add(time.Hour - s.window())
	hours, err := tx.FeatureHours(ctx, start, hour.Add(time.Hour))
	if err != nil {
		return err
	}
	usable, excluded := usableRows(hours)
	asm := &Assembly{Design: r.design, Coverage: r.design.Coverage(usable), Hours: len(hours), Excluded: excluded}
	for _, o := range obs {
		asm.X = append(asm.X, o.X)
		asm.Y = append(asm.Y, o.Y)
	}
	rep := analytics.Report(model, analytics.ReportInput{X: asm.X, Y: asm.Y, Groups: groups(r.design, asm.Coverage),
		MinR2: s.cfg.MinR2, MinSamples: s.cfg.MinSamples})
	if !rep.Validity.Valid {
		s.log.Info("rolling model not published: it does not pass validity", "machine_id", r.state.MachineID,
			"reasons", rep.Validity.Reasons())
		return nil
	}
	f := &fitted{machineID: r.state.MachineID, start: start, end: hour.Add(time.Hour), asm: asm, model: model, report: rep}
	pub, err := s.publish(ctx, tx.Tx(), f, f.metadata("rolling"), "rolling")
	if err != nil {
		return err
	}
	r.state.LastPublishedID = &pub.ID
	r.state.SourceBaseline = &pub.ID
	s.log.Info("rolling model published", "machine_id", r.state.MachineID, "baseline_id", pub.ID, "version", pub.Version)
	return nil
}

// Score is the rolling model's expectation for one hour, computed from the
// model as it stands (score an hour BEFORE Refresh adds it).
type Score struct {
	MachineID string
	Hour      time.Time
	// Ready is false when there is no usable model (no state yet, too few
	// hours, rank deficient); Reason says why. The other numbers are then 0.
	Ready  bool
	Reason string
	// Exclusion is why the hour itself would not enter the model (the
	// machine in maintenance, not running, a driver missing); Included = "".
	Exclusion Exclusion
	Actual    float64 // total_energy_kWh of the hour
	Predicted float64
	// SE is the standard error of the prediction, σ·√(1 + x₀ᵀ(XᵀX)⁻¹x₀).
	SE       float64
	Residual float64 // Actual − Predicted
	Z        float64 // Residual / SE
	N        int     // hours in the model
	Drivers  []string
	// Version identifies the model state: its source baseline (or
	// "default") and how many refreshes it has had.
	Version string
}

// Score predicts the machine's energy in hour from its rolling model. An
// hour without energy data is an error wrapping store.ErrNotFound.
func (s *Service) Score(ctx context.Context, machineID string, hour time.Time) (Score, error) {
	hour = hour.UTC().Truncate(time.Hour)
	sc := Score{MachineID: machineID, Hour: hour}
	hs, err := s.st.FeatureHours(ctx, machineID, hour, hour.Add(time.Hour))
	if err != nil {
		return sc, err
	}
	if len(hs) == 0 {
		return sc, fmt.Errorf("score machine %s at %s: no energy data: %w", machineID, hour.Format(time.RFC3339), store.ErrNotFound)
	}
	sc.Actual = hs[0].EnergyKWh
	st, err := s.st.ReadRollingState(ctx, machineID)
	if errors.Is(err, store.ErrNotFound) {
		sc.Reason = "the machine has no rolling model yet"
		return sc, nil
	}
	if err != nil {
		return sc, err
	}
	r, err := decodeState(st)
	if err != nil {
		return sc, err
	}
	return r.score(sc, hs[0]), nil
}

// score completes sc (machine, hour and actual set) from the model r and
// the hour's features h.
func (r *rolling) score(sc Score, h store.FeatureHour) Score {
	sc.Drivers, sc.N = r.design.Drivers, r.stats.N()
	source := "default"
	if r.state.SourceBaseline != nil {
		source = *r.state.SourceBaseline
	}
	sc.Version = fmt.Sprintf("rolling:%s:%d", source, r.state.RefreshedCount)
	row, ex := classify(h)
	sc.Exclusion = ex
	x, ok := r.design.Row(row)
	if !ok {
		if sc.Exclusion == Included {
			sc.Exclusion = ExclMissing
		}
		sc.Reason = fmt.Sprintf("the hour does not report %v", r.design.Missing(row))
		return sc
	}
	model, err := r.stats.Fit()
	if err != nil {
		sc.Reason = fmt.Sprintf("the rolling model cannot be fitted yet: %v", err)
		return sc
	}
	sc.Ready = true
	sc.Predicted, sc.SE = model.Predict(x)
	sc.Residual = sc.Actual - sc.Predicted
	sc.Z = sc.Residual / sc.SE
	if math.IsNaN(sc.Z) || math.IsInf(sc.Z, 0) {
		sc.Z = 0
	}
	return sc
}
