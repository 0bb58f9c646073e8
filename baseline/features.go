package baseline

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/enms/enms-analytics/analytics"
	"github.com/enms/enms-analytics/store"
)

// MinCoverage is the share of eligible hours a driver must be reported in for
// a baseline to use it; below it the driver is refused with its coverage,
// never zero-filled.
const MinCoverage = 0.90

// Exclusion says why an hour is not used for training.
type Exclusion string

// The reasons an hour is excluded.
const (
	Included       Exclusion = ""
	ExclAbnormal   Exclusion = "abnormal_mode"  // maintenance, fault or offline (status history or production mode)
	ExclNotRunning Exclusion = "not_running"    // no running time in the hour
	ExclMissing    Exclusion = "missing_driver" // a driver of the design is not reported
	ExclKeptOut    Exclusion = "kept_out"       // kept out of the rolling model by its caller (an anomalous hour)
)

// classify turns the store's facts about an hour into a feature row and
// decides whether the machine's state excludes it.
//
// An hour is excluded when the status history puts the machine in
// maintenance, fault or offline for any part of it, when the production
// rollup's dominant mode is one of those, or when the machine did not run
// at all (history or production modes). operating_hours is the running
// share of the hour from the production modes when they were reported, else
// from the status history.
func classify(h store.FeatureHour) (analytics.HourlyRow, Exclusion) {
	row := analytics.HourlyRow{
		Hour:                h.Hour,
		EnergyKWh:           h.EnergyKWh,
		ProductionCount:     h.ProductionCount,
		OutdoorTempC:        h.OutdoorTempC,
		PressureBar:         h.PressureBar,
		MaterialMoisturePct: h.MaterialMoisturePct,
		OperatingHours:      h.ProductionRunningShare,
	}
	if math.IsNaN(row.OperatingHours) {
		row.OperatingHours = h.HistoryRunningSeconds / 3600
	}
	switch {
	case h.AbnormalSeconds > 0:
		return row, ExclAbnormal
	case h.DominantMode == "maintenance" || h.DominantMode == "fault" || h.DominantMode == "offline":
		return row, ExclAbnormal
	case h.HistoryRunningSeconds <= 0 || h.ProductionRunningShare == 0:
		return row, ExclNotRunning
	}
	return row, Included
}

// Assembly is the training data of one window: the design, the complete
// rows and what was left out.
type Assembly struct {
	Design   *analytics.Design
	Rows     []analytics.HourlyRow // included hours, time order
	X        [][]float64
	Y        []float64
	Coverage map[string]float64 // per driver, over the hours the machine state allows
	Hours    int                // hours with energy readings in the window
	Excluded map[Exclusion]int
}

// CoverageError refuses drivers reported in too few eligible hours.
type CoverageError struct {
	Drivers  []string
	Coverage map[string]float64
	Eligible int
}

func (e *CoverageError) Error() string {
	var parts []string
	for _, d := range e.Drivers {
		parts = append(parts, fmt.Sprintf("%s is reported in %.1f %%", d, 100*e.Coverage[d]))
	}
	return fmt.Sprintf("driver coverage too low: %s of the %d usable hours in the window (at least %.0f %% needed)",
		strings.Join(parts, ", "), e.Eligible, 100*MinCoverage)
}

// usableRows classifies hours: the rows the machine state allows, in order,
// and how many hours each exclusion left out.
func usableRows(hours []store.FeatureHour) ([]analytics.HourlyRow, map[Exclusion]int) {
	var usable []analytics.HourlyRow
	excluded := map[Exclusion]int{}
	for _, h := range hours {
		row, ex := classify(h)
		if ex != Included {
			excluded[ex]++
			continue
		}
		usable = append(usable, row)
	}
	return usable, excluded
}

// assemble builds the training rows of design d from the store's hours.
// Drivers below MinCoverage are a *CoverageError.
func assemble(d *analytics.Design, hours []store.FeatureHour) (*Assembly, error) {
	usable, excluded := usableRows(hours)
	a := &Assembly{Hours: len(hours), Excluded: excluded}
	a.Coverage = d.Coverage(usable)
	var low []string
	for _, drv := range d.Drivers {
		if a.Coverage[drv] < MinCoverage {
			low = append(low, drv)
		}
	}
	if len(low) > 0 && len(usable) > 0 {
		return a, &CoverageError{Drivers: low, Coverage: a.Coverage, Eligible: len(usable)}
	}
	d = d.FitKnots(usable)
	a.Design = d
	for _, r := range usable {
		x, ok := d.Row(r)
		if !ok {
			a.Excluded[ExclMissing]++
			continue
		}
		a.Rows = append(a.Rows, r)
		a.X = append(a.X, x)
		a.Y = append(a.Y, r.EnergyKWh)
	}
	return a, nil
}

// stats accumulates the assembly's rows.
func (a *Assembly) stats() *analytics.Stats {
	s := analytics.NewStats(a.Design.Columns)
	for i := range a.X {
		s.Add(a.X[i], a.Y[i])
	}
	return s
}

// groups returns the design's driver groups with their coverage.
func groups(d *analytics.Design, coverage map[string]float64) []analytics.DriverGroup {
	out := slices.Clone(d.Groups)
	for i := range out {
		out[i].Coverage = coverage[out[i].Name]
	}
	return out
}

// driverOfColumn maps a design column back to its driver.
func driverOfColumn(d *analytics.Design, column string) string {
	for _, g := range d.Groups {
		for _, c := range g.Columns {
			if d.Columns[c] == column {
				return g.Name
			}
		}
	}
	return column
}

// locations caches loadLocation: time.LoadLocation reads and parses the
// zone's tzdata on every call, and every rolling state decode (Score,
// Refresh, SetLearned, Revise, the start of each run) needs the factory's
// zone.
var locations sync.Map // zone name → *time.Location

func loadLocation(tz string) *time.Location {
	if tz == "" {
		return time.UTC
	}
	if loc, ok := locations.Load(tz); ok {
		return loc.(*time.Location)
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return time.UTC
	}
	locations.Store(tz, loc)
	return loc
}
