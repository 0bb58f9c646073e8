package analytics

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// DefaultTariffRate is the price per kWh when a factory has no matching
// tariff.
const DefaultTariffRate = 0.15

// Tariff is an active row of energy_tariffs, as the schedule needs it.
type Tariff struct {
	Rate      float64
	TimeOfUse bool
	// StartHour and EndHour bound a time-of-use window [start, end) in the
	// factory's local hours; start > end wraps midnight (21 → 9), start ==
	// end is the whole day.
	StartHour, EndHour int
	// Days are the weekdays it applies on, 0 = Sunday; empty means every day.
	Days []int
	// ValidFrom and ValidTo are the first and last local dates it applies
	// on (any time of day of those dates); zero means unbounded.
	ValidFrom, ValidTo time.Time
}

func (t Tariff) applies(local time.Time) bool {
	date := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, time.UTC)
	if !t.ValidFrom.IsZero() && date.Before(fcDate(t.ValidFrom)) {
		return false
	}
	if !t.ValidTo.IsZero() && date.After(fcDate(t.ValidTo)) {
		return false
	}
	if !t.TimeOfUse {
		return true
	}
	if len(t.Days) > 0 && !slices.Contains(t.Days, int(local.Weekday())) {
		return false
	}
	h := local.Hour()
	switch {
	case t.StartHour == t.EndHour:
		return true
	case t.StartHour < t.EndHour:
		return h >= t.StartHour && h < t.EndHour
	default: // wraps midnight
		return h >= t.StartHour || h < t.EndHour
	}
}

func fcDate(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// TariffRate is the price per kWh at local time t: the highest rate among
// the time-of-use tariffs whose hours and days match t, else the highest
// non-time-of-use tariff valid on t's date, else DefaultTariffRate.
func TariffRate(tariffs []Tariff, t time.Time) float64 {
	tou, flat := math.Inf(-1), math.Inf(-1)
	for _, tr := range tariffs {
		if !tr.applies(t) {
			continue
		}
		if tr.TimeOfUse {
			tou = max(tou, tr.Rate)
		} else {
			flat = max(flat, tr.Rate)
		}
	}
	switch {
	case !math.IsInf(tou, -1):
		return tou
	case !math.IsInf(flat, -1):
		return flat
	}
	return DefaultTariffRate
}

// DemandForecast is the predicted average demand of one hourly bucket.
type DemandForecast struct {
	Start time.Time
	KW    float64
}

// ScheduleRequest asks for the cheapest windows to run an extra load.
type ScheduleRequest struct {
	LoadKW   float64
	Duration time.Duration
	// EarliestStart and LatestEnd bound the window. Candidate starts are
	// EarliestStart and every whole hour after it.
	EarliestStart, LatestEnd time.Time
	// PeakThresholdKW caps predicted demand + LoadKW in every hour the
	// window touches; +Inf means no cap.
	PeakThresholdKW float64
	Location        *time.Location // the factory's calendar for tariffs
	Tariffs         []Tariff
	Demand          []DemandForecast // hourly buckets; a window needs all of its hours covered
	Top             int              // how many windows to return (default 3)
}

// ScheduleWindow is one candidate window.
type ScheduleWindow struct {
	Start, End time.Time
	Cost       float64 // LoadKW × hours × rate, summed over the window
	// Savings is the baseline's cost minus this one's.
	Savings float64
	// PeakDemandKW is the largest predicted demand + LoadKW in the window's
	// hours (NaN when the forecast does not cover it).
	PeakDemandKW float64
	Feasible     bool // covered by the forecast and under the threshold
}

// ScheduleResult is the answer: the cheapest feasible windows, and the
// baseline of starting at EarliestStart.
type ScheduleResult struct {
	Windows    []ScheduleWindow
	Baseline   ScheduleWindow
	Candidates int // windows considered
	Feasible   int // of which feasible
}

// ErrBadSchedule is wrapped by OptimalSchedule's errors about its request.
var ErrBadSchedule = errors.New("bad schedule request")

// OptimalSchedule evaluates every candidate window and returns the Top
// cheapest feasible ones (ties: the earlier start). Cost is integrated in
// 15-minute pieces (every time-zone offset is a multiple of 15 minutes, so
// each piece lies in one local hour): Σ LoadKW · ¼ h · rate(local piece
// start).
func OptimalSchedule(req ScheduleRequest) (ScheduleResult, error) {
	switch {
	case !(req.LoadKW > 0):
		return ScheduleResult{}, fmt.Errorf("%w: load_kw must be positive", ErrBadSchedule)
	case req.Duration <= 0 || req.Duration%(15*time.Minute) != 0:
		return ScheduleResult{}, fmt.Errorf("%w: the duration must be a positive multiple of 15 minutes", ErrBadSchedule)
	case req.LatestEnd.Sub(req.EarliestStart) < req.Duration:
		return ScheduleResult{}, fmt.Errorf("%w: the window from earliest start to latest end is shorter than the duration", ErrBadSchedule)
	}
	loc := req.Location
	if loc == nil {
		loc = time.UTC
	}
	top := req.Top
	if top <= 0 {
		top = 3
	}
	demand := make(map[int64]float64, len(req.Demand))
	for _, d := range req.Demand {
		demand[d.Start.Truncate(time.Hour).Unix()] = d.KW
	}
	eval := func(start time.Time) ScheduleWindow {
		w := ScheduleWindow{Start: start, End: start.Add(req.Duration), Feasible: true}
		for p := start; p.Before(w.End); p = p.Add(15 * time.Minute) {
			w.Cost += req.LoadKW * 0.25 * TariffRate(req.Tariffs, p.In(loc))
		}
		w.PeakDemandKW = math.Inf(-1)
		for h := start.Truncate(time.Hour); h.Before(w.End); h = h.Add(time.Hour) {
			kw, ok := demand[h.Unix()]
			if !ok {
				w.Feasible, w.PeakDemandKW = false, math.NaN()
				break
			}
			w.PeakDemandKW = max(w.PeakDemandKW, kw+req.LoadKW)
		}
		if w.Feasible && w.PeakDemandKW > req.PeakThresholdKW {
			w.Feasible = false
		}
		return w
	}
	res := ScheduleResult{Baseline: eval(req.EarliestStart)}
	var feasible []ScheduleWindow
	for start := req.EarliestStart; !start.Add(req.Duration).After(req.LatestEnd); {
		w := eval(start)
		w.Savings = res.Baseline.Cost - w.Cost
		res.Candidates++
		if w.Feasible {
			feasible = append(feasible, w)
		}
		next := start.Truncate(time.Hour).Add(time.Hour)
		start = next
	}
	res.Feasible = len(feasible)
	slices.SortStableFunc(feasible, func(a, b ScheduleWindow) int {
		if c := fcCompare(a.Cost, b.Cost); c != 0 {
			return c
		}
		return a.Start.Compare(b.Start)
	})
	res.Windows = feasible[:min(top, len(feasible))]
	return res, nil
}

// fcCompare orders costs, treating differences below a millionth of a
// currency unit (floating-point noise of the 15-minute sums) as ties.
func fcCompare(a, b float64) int {
	switch {
	case a < b-1e-6:
		return -1
	case a > b+1e-6:
		return 1
	}
	return 0
}
