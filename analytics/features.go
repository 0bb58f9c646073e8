package analytics

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Driver names a baseline request may use (DESIGN §5).
const (
	DriverProductionCount     = "production_count"
	DriverOutdoorTemp         = "outdoor_temp_c"
	DriverOperatingHours      = "operating_hours"
	DriverPressure            = "pressure_bar"
	DriverMaterialMoisturePct = "material_moisture_pct"
	DriverHDD                 = "hdd"
	DriverCDD                 = "cdd"
	DriverTempSegments        = "temp_segments"
	DriverHourOfDay           = "hour_of_day"
	DriverWeekday             = "weekday"
	DriverHourOfWeek          = "hour_of_week"
)

// DriverNames lists every valid driver name, in documentation order.
var DriverNames = []string{
	DriverProductionCount, DriverOutdoorTemp, DriverOperatingHours, DriverPressure,
	DriverMaterialMoisturePct, DriverHDD, DriverCDD, DriverTempSegments,
	DriverHourOfDay, DriverWeekday, DriverHourOfWeek,
}

// DefaultTempKnots are the TOWT model's temperature knots in °C (Mathieu et
// al. 2011, LBNL-4944E; 40/55/65/80/90 °F).
var DefaultTempKnots = []float64{4.4, 12.8, 18.3, 26.7, 32.2}

// HourlyRow is one machine-hour of features. A driver value the machine did
// not report is NaN; it is never replaced by zero.
type HourlyRow struct {
	Hour                time.Time
	EnergyKWh           float64
	ProductionCount     float64
	OutdoorTempC        float64
	OperatingHours      float64 // running share of the hour, 0…1
	PressureBar         float64
	MaterialMoisturePct float64
}

// DesignOptions configure the driver expansion.
type DesignOptions struct {
	// DegreeBaseC is the base temperature of hdd/cdd (DEGREE_BASE_C).
	DegreeBaseC float64
	// Knots are the temp_segments knots; nil means DefaultTempKnots.
	Knots []float64
	// Location is where hour_of_day, weekday and hour_of_week are read; nil is UTC.
	Location *time.Location
}

// Design expands requested drivers into regression columns. Categorical
// drivers become indicator columns with the reference level (hour 0,
// Sunday, Sunday 00:00) dropped; temp_segments becomes one column per
// temperature segment. Design is immutable once built.
type Design struct {
	Drivers     []string      `json:"drivers"`
	Columns     []string      `json:"columns"`
	Groups      []DriverGroup `json:"-"`
	DegreeBaseC float64       `json:"degree_base_c"`
	Knots       []float64     `json:"knots,omitempty"`
	TimeZone    string        `json:"time_zone"`
	loc         *time.Location
}

// ValidateDrivers checks a driver list: at least one, each known, none
// repeated. The error is a sentence naming the offending driver and, for an
// unknown one, the valid names.
func ValidateDrivers(drivers []string) error {
	if len(drivers) == 0 {
		return fmt.Errorf("no drivers given; valid drivers are %s", strings.Join(DriverNames, ", "))
	}
	seen := map[string]bool{}
	for _, d := range drivers {
		if !slices.Contains(DriverNames, d) {
			return fmt.Errorf("unknown driver %q; valid drivers are %s", d, strings.Join(DriverNames, ", "))
		}
		if seen[d] {
			return fmt.Errorf("driver %q is listed twice", d)
		}
		seen[d] = true
	}
	return nil
}

// NewDesign validates drivers and builds their columns.
func NewDesign(drivers []string, opt DesignOptions) (*Design, error) {
	if err := ValidateDrivers(drivers); err != nil {
		return nil, err
	}
	d := &Design{Drivers: slices.Clone(drivers), DegreeBaseC: opt.DegreeBaseC, loc: opt.Location}
	if d.loc == nil {
		d.loc = time.UTC
	}
	d.TimeZone = d.loc.String()
	if slices.Contains(drivers, DriverTempSegments) {
		d.Knots = slices.Clone(opt.Knots)
		if d.Knots == nil {
			d.Knots = slices.Clone(DefaultTempKnots)
		}
		if !slices.IsSorted(d.Knots) || len(d.Knots) == 0 {
			return nil, fmt.Errorf("temp_segments knots %v must be a non-empty increasing list", d.Knots)
		}
	}
	d.build()
	return d, nil
}

// WithLocation returns the design reading time-of-week terms in loc (used
// when a stored design is loaded: the location is not serialised).
func (d *Design) WithLocation(loc *time.Location) *Design {
	c := *d
	c.loc = loc
	c.TimeZone = loc.String()
	c.build()
	return &c
}

// FitKnots keeps only the temp_segments knots strictly inside the outdoor
// temperature range of rows, so no segment is empty (an empty segment is a
// constant column). It returns the design itself when it has no temp_segments.
func (d *Design) FitKnots(rows []HourlyRow) *Design {
	if !slices.Contains(d.Drivers, DriverTempSegments) {
		return d
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, r := range rows {
		if !math.IsNaN(r.OutdoorTempC) {
			lo, hi = math.Min(lo, r.OutdoorTempC), math.Max(hi, r.OutdoorTempC)
		}
	}
	var knots []float64
	for _, k := range d.Knots {
		if k > lo && k < hi {
			knots = append(knots, k)
		}
	}
	c := *d
	c.Knots = knots
	c.build()
	return &c
}

func (d *Design) build() {
	d.Columns, d.Groups = nil, nil
	if d.loc == nil {
		d.loc = time.UTC
	}
	for _, drv := range d.Drivers {
		g := DriverGroup{Name: drv}
		add := func(name string) {
			g.Columns = append(g.Columns, len(d.Columns))
			d.Columns = append(d.Columns, name)
		}
		switch drv {
		case DriverTempSegments:
			for _, name := range segmentNames(d.Knots) {
				add(name)
			}
		case DriverHourOfDay:
			for h := 1; h < 24; h++ {
				add(drv + "=" + strconv.Itoa(h))
			}
		case DriverWeekday:
			for w := time.Monday; w <= time.Saturday; w++ {
				add(drv + "=" + strconv.Itoa(int(w)))
			}
		case DriverHourOfWeek:
			for h := 1; h < 168; h++ {
				add(drv + "=" + strconv.Itoa(h))
			}
		default:
			add(drv)
		}
		d.Groups = append(d.Groups, g)
	}
}

func segmentNames(knots []float64) []string {
	edges := []string{"-inf"}
	for _, k := range knots {
		edges = append(edges, strconv.FormatFloat(k, 'f', -1, 64))
	}
	edges = append(edges, "inf")
	var out []string
	for i := 0; i+1 < len(edges); i++ {
		out = append(out, fmt.Sprintf("%s[%s,%s]", DriverTempSegments, edges[i], edges[i+1]))
	}
	return out
}

// source is the raw value a driver is computed from; NaN when not reported.
// Time-of-week drivers always have a value.
func (d *Design) source(drv string, r HourlyRow) float64 {
	switch drv {
	case DriverProductionCount:
		return r.ProductionCount
	case DriverOutdoorTemp, DriverHDD, DriverCDD, DriverTempSegments:
		return r.OutdoorTempC
	case DriverOperatingHours:
		return r.OperatingHours
	case DriverPressure:
		return r.PressureBar
	case DriverMaterialMoisturePct:
		return r.MaterialMoisturePct
	}
	return 0
}

// Missing lists the drivers of d that row r does not report.
func (d *Design) Missing(r HourlyRow) []string {
	var out []string
	for _, drv := range d.Drivers {
		if math.IsNaN(d.source(drv, r)) {
			out = append(out, drv)
		}
	}
	return out
}

// Coverage is, per driver, the share of rows that report it (1 for
// time-of-week drivers). An empty row set has zero coverage.
func (d *Design) Coverage(rows []HourlyRow) map[string]float64 {
	out := map[string]float64{}
	for _, drv := range d.Drivers {
		if len(rows) == 0 {
			out[drv] = 0
			continue
		}
		var have int
		for _, r := range rows {
			if !math.IsNaN(d.source(drv, r)) {
				have++
			}
		}
		out[drv] = float64(have) / float64(len(rows))
	}
	return out
}

// Row expands one hour into the design's columns; ok is false when a driver
// the design needs is not reported in that hour.
//
// hdd and cdd are degree-hours of the hour from its average outdoor
// temperature: max(0, base − T̄)·1 h and max(0, T̄ − base)·1 h.
// temp_segments with knots k₁<…<k_m gives m+1 columns: min(T, k₁),
// clamp(T − k_{i−1}, 0, k_i − k_{i−1}) for the middle segments and
// max(T − k_m, 0) (Mathieu et al. 2011, eq. 7); they sum to T.
func (d *Design) Row(r HourlyRow) (x []float64, ok bool) {
	x = make([]float64, 0, len(d.Columns))
	local := r.Hour.In(d.loc)
	for _, drv := range d.Drivers {
		v := d.source(drv, r)
		if math.IsNaN(v) {
			return nil, false
		}
		switch drv {
		case DriverHDD:
			x = append(x, math.Max(0, d.DegreeBaseC-v))
		case DriverCDD:
			x = append(x, math.Max(0, v-d.DegreeBaseC))
		case DriverTempSegments:
			x = append(x, segments(v, d.Knots)...)
		case DriverHourOfDay:
			x = appendIndicator(x, local.Hour(), 24)
		case DriverWeekday:
			x = appendIndicator(x, int(local.Weekday()), 7)
		case DriverHourOfWeek:
			x = appendIndicator(x, int(local.Weekday())*24+local.Hour(), 168)
		default:
			x = append(x, v)
		}
	}
	return x, true
}

func segments(t float64, knots []float64) []float64 {
	if len(knots) == 0 {
		return []float64{t}
	}
	out := make([]float64, len(knots)+1)
	out[0] = math.Min(t, knots[0])
	for i := 1; i < len(knots); i++ {
		out[i] = math.Min(math.Max(t-knots[i-1], 0), knots[i]-knots[i-1])
	}
	out[len(knots)] = math.Max(t-knots[len(knots)-1], 0)
	return out
}

// appendIndicator appends levels−1 indicator columns for level (level 0 is
// the reference and has none).
func appendIndicator(x []float64, level, levels int) []float64 {
	for l := 1; l < levels; l++ {
		if l == level {
			x = append(x, 1)
		} else {
			x = append(x, 0)
		}
	}
	return x
}
