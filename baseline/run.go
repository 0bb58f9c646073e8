package baseline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/enms/enms-analytics/store"
)

// RollingRun steps a machine's rolling model through a run of closed hours
// in memory: what Score and Refresh do hour by hour, with the reads done
// once at StartRun and the writes once at Commit. A backfill closes
// hundreds of hours of a machine in a row; hour by hour each costs a
// dozen statements and a JSON round trip of the model.
//
// A run only takes the plain hours: an hour after the model's last one
// whose refresh neither rebuilds the model nor considers publishing it
// (Ready). The caller ends the run before any other hour and refreshes it
// hour by hour. Stepping then leaves exactly what the refreshes would have
// left, bit for bit: the same observations added and removed from the
// statistics in the same order, the same state.
//
// The caller must commit what depends on the predictions (anomaly scoring)
// before Commit, as anomaly scores an hour before it refreshes: a crash
// in between then leaves hours scored but not learned, which their
// redelivered events complete, never hours learned before they are scored.
type RollingRun struct {
	s       *Service
	machine string
	r       *rolling
	start   store.RollingState // the state as read, for Commit's check
	first   time.Time          // the hours read: first … last
	last    time.Time

	active        store.Baseline
	hasActive     bool
	activeDrivers []string

	features map[int64]store.FeatureHour
	included map[int64]bool
	keptOut  map[int64]bool
	// held are the observations that may leave the window during the run,
	// oldest first: those read at the start, then those the run adds.
	held []store.RollingHour

	put     []store.RollingHour
	keepOut []time.Time
	cutoff  time.Time
	steps   int
}

// StartRun reads what stepping the machine's model through the closed hours
// first … last needs. ok is false when the machine has no model yet (the
// first refresh builds it).
func (s *Service) StartRun(ctx context.Context, machineID string, first, last time.Time) (run *RollingRun, ok bool, err error) {
	first, last = first.UTC().Truncate(time.Hour), last.UTC().Truncate(time.Hour)
	end := last.Add(time.Hour)
	rd, err := s.st.ReadRollingRun(ctx, machineID, first, end, end.Add(-s.window()))
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("start rolling run of machine %s at %s: %w", machineID, first.Format(time.RFC3339), err)
	}
	r, err := decodeState(rd.State)
	if err != nil {
		return nil, false, err
	}
	run = &RollingRun{s: s, machine: machineID, r: r, start: rd.State, first: first, last: last, active: rd.Active, hasActive: rd.HasActive,
		features: make(map[int64]store.FeatureHour, len(rd.Features)), included: rd.Included, keptOut: rd.KeptOut,
		held: rd.Leaving}
	if rd.HasActive {
		run.activeDrivers = baselineDrivers(rd.Active)
	}
	for _, h := range rd.Features {
		run.features[h.Hour.Unix()] = h
	}
	return run, true, nil
}

// Ready reports whether hour can be stepped: it is after the model's last
// hour, inside the hours StartRun read, and its refresh would neither
// rebuild the model nor consider publishing it.
func (u *RollingRun) Ready(hour time.Time) bool {
	st := u.r.state
	if st.LastHour == nil || !hour.After(*st.LastHour) || hour.Before(u.first) || hour.After(u.last) ||
		u.s.publishDue(u.r, hour) {
		return false
	}
	keep, _ := u.s.keepModel(u.r, u.active, u.hasActive, u.activeDrivers, hour)
	return keep
}

// Predict is Score for hour, from the model as stepped so far. An hour
// without energy data is an error wrapping store.ErrNotFound, as in Score.
func (u *RollingRun) Predict(hour time.Time) (Score, error) {
	sc := Score{MachineID: u.machine, Hour: hour}
	h, ok := u.features[hour.Unix()]
	if !ok {
		return sc, fmt.Errorf("score machine %s at %s: no energy data: %w", u.machine, hour.Format(time.RFC3339), store.ErrNotFound)
	}
	sc.Actual = h.EnergyKWh
	return u.r.score(sc, h), nil
}

// Step is Refresh(hour, include) in memory. hour must be Ready.
func (u *RollingRun) Step(hour time.Time, include bool) error {
	if !u.Ready(hour) {
		return fmt.Errorf("rolling run of machine %s: hour %s cannot be stepped (out of order, or a rebuild or publication is due)",
			u.machine, hour.Format(time.RFC3339))
	}
	r := u.r
	if _, adopt := u.s.keepModel(r, u.active, u.hasActive, u.activeDrivers, hour); adopt {
		r.state.SourceBaseline = &u.active.ID
	}
	key := hour.Unix()
	switch {
	case !include:
		u.keepOut = append(u.keepOut, hour)
		u.keptOut[key] = true
	case !u.included[key] && !u.keptOut[key]:
		if h, ok := u.features[key]; ok {
			if x, ok := usableRow(r.design, h); ok {
				r.stats.Add(x, h.EnergyKWh)
				obs := store.RollingHour{Hour: hour, X: x, Y: h.EnergyKWh}
				u.put = append(u.put, obs)
				u.held = append(u.held, obs)
				u.included[key] = true
			}
		}
	}
	r.state.LastHour = &hour
	u.cutoff = hour.Add(time.Hour - u.s.window())
	n := 0
	for n < len(u.held) && u.held[n].Hour.Before(u.cutoff) {
		if err := r.stats.Remove(u.held[n].X, u.held[n].Y); err != nil {
			return fmt.Errorf("rolling run of machine %s at %s: %w", u.machine, hour.Format(time.RFC3339), err)
		}
		n++
	}
	u.held = u.held[n:]
	r.state.RefreshedCount++
	u.steps++
	return nil
}

// Commit writes the stepped hours in one transaction. It fails, writing
// nothing, when the stored model changed since StartRun.
func (u *RollingRun) Commit(ctx context.Context) error {
	if u.steps == 0 {
		return nil
	}
	st, err := u.r.encode()
	if err != nil {
		return err
	}
	w := store.RollingRunWrite{ExpectLastHour: u.start.LastHour, ExpectCount: u.start.RefreshedCount,
		Put: u.put, KeepOut: u.keepOut, Cutoff: u.cutoff, State: st}
	err = u.s.st.Rolling(ctx, u.machine, func(tx *store.RollingTx) error { return tx.SaveRollingRun(ctx, w) })
	if err != nil {
		return fmt.Errorf("commit rolling run of machine %s through %s: %w", u.machine, u.r.state.LastHour.Format(time.RFC3339), err)
	}
	return nil
}
