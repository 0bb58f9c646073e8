package baseline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/enms/enms-analytics/analytics"
	"github.com/enms/enms-analytics/store"
)

// InputError is a request the caller must correct (a missing driver value);
// its message is a sentence for a person. The API answers it with 400.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

func inputf(format string, args ...any) error { return &InputError{Msg: fmt.Sprintf(format, args...)} }

// Stored is a published baseline decoded for use.
type Stored struct {
	Row    store.Baseline
	Design *analytics.Design
	Model  *analytics.Model
	Fit    analytics.FitReport
}

// ErrNotApplicable is wrapped (with store.ErrConflict) when a baseline row
// carries no design and model this service can apply (an adopted EnMS row).
var ErrNotApplicable = errors.New("baseline cannot be applied")

// Load returns a published baseline: baselineID when given, else the
// machine's active one (an error wrapping store.ErrNotFound when it has none).
func (s *Service) Load(ctx context.Context, machineID, baselineID string) (*Stored, error) {
	var row store.Baseline
	var err error
	if baselineID != "" {
		row, err = s.st.Baseline(ctx, baselineID)
	} else {
		row, err = s.st.ActiveBaseline(ctx, machineID)
	}
	if err != nil {
		return nil, err
	}
	if machineID != "" && row.MachineID != machineID {
		return nil, inputf("baseline %s belongs to machine %s, not %s", row.ID, row.MachineID, machineID)
	}
	var meta struct {
		Fit    analytics.FitReport `json:"fit"`
		Design *analytics.Design   `json:"design"`
		Model  *analytics.Model    `json:"model"`
	}
	if err := json.Unmarshal(row.Metadata, &meta); err != nil || meta.Design == nil || meta.Model == nil {
		return nil, fmt.Errorf("baseline %s has no stored design and model (it was not trained by this service): %w",
			row.ID, errors.Join(ErrNotApplicable, store.ErrConflict))
	}
	d := meta.Design.WithLocation(loadLocation(meta.Design.TimeZone))
	if !slices.Equal(d.Columns, meta.Model.Columns) {
		return nil, fmt.Errorf("baseline %s: design columns do not match the model's: %w",
			row.ID, errors.Join(ErrNotApplicable, store.ErrConflict))
	}
	return &Stored{Row: row, Design: d, Model: meta.Model, Fit: meta.Fit}, nil
}

// Severity of a deviation in prediction standard errors (DESIGN §5).
func Severity(z float64) string {
	switch a := math.Abs(z); {
	case a >= 3:
		return "critical"
	case a >= 2:
		return "warning"
	}
	return "normal"
}

// DeviationHour is one hour of actual against the baseline.
type DeviationHour struct {
	Hour             time.Time `json:"hour"`
	ActualKWh        float64   `json:"actual_kwh"`
	PredictedKWh     float64   `json:"predicted_kwh"`
	DeviationKWh     float64   `json:"deviation_kwh"`     // actual − predicted
	DeviationPercent *float64  `json:"deviation_percent"` // null when predicted is 0
	StdError         float64   `json:"std_error_kwh"`
	Z                float64   `json:"z"`
	Severity         string    `json:"severity"`
	CUSUMKWh         float64   `json:"cusum_kwh"` // running sum of deviations up to this hour
}

// DeviationTotals sum the window.
type DeviationTotals struct {
	ActualKWh        float64  `json:"actual_kwh"`
	PredictedKWh     float64  `json:"predicted_kwh"`
	DeviationKWh     float64  `json:"deviation_kwh"`
	DeviationPercent *float64 `json:"deviation_percent"`
	Z                float64  `json:"z"`
	Severity         string   `json:"severity"`
}

// Deviation compares a window's hours with a baseline (ISO 50006 §6–7).
type Deviation struct {
	MachineID    string `json:"machine_id"`
	BaselineID   string `json:"baseline_id"`
	ModelVersion int    `json:"model_version"`
	Start        time.Time
	End          time.Time
	Hours        []DeviationHour   `json:"hours"`
	Excluded     map[Exclusion]int `json:"excluded_hours"`
	Totals       DeviationTotals   `json:"totals"`
	// ImprovementPercent is (Σ predicted − Σ actual)/Σ predicted × 100: the
	// energy performance improvement against the adjusted baseline
	// (positive = less energy than the baseline expects). Null without
	// predicted energy.
	ImprovementPercent *float64 `json:"improvement_percent"`
	// CUSUMKWh is the cumulative sum of deviations over the window (negative = savings).
	CUSUMKWh float64 `json:"cusum_kwh"`
}

// Deviation predicts every usable hour of machineID in [start, end) with a
// baseline (baselineID, else the active one) and compares it with the actual.
// Hours the machine state excludes, or that miss a driver, are counted in
// Excluded. The window's z is Σ deviation / √(Σ SE²), which treats the
// hours' prediction errors as independent (an approximation: they share the
// coefficients' uncertainty).
func (s *Service) Deviation(ctx context.Context, machineID, baselineID string, start, end time.Time) (*Deviation, error) {
	b, err := s.Load(ctx, machineID, baselineID)
	if err != nil {
		return nil, err
	}
	hours, err := s.st.FeatureHours(ctx, b.Row.MachineID, start, end)
	if err != nil {
		return nil, err
	}
	out := &Deviation{MachineID: b.Row.MachineID, BaselineID: b.Row.ID, ModelVersion: b.Row.ModelVersion,
		Start: start, End: end, Hours: []DeviationHour{}, Excluded: map[Exclusion]int{}}
	var sumVar float64
	for _, h := range hours {
		row, ex := classify(h)
		if ex != Included {
			out.Excluded[ex]++
			continue
		}
		x, ok := b.Design.Row(row)
		if !ok {
			out.Excluded[ExclMissing]++
			continue
		}
		pred, se := b.Model.Predict(x)
		dev := h.EnergyKWh - pred
		out.CUSUMKWh += dev
		dh := DeviationHour{Hour: h.Hour, ActualKWh: h.EnergyKWh, PredictedKWh: pred, DeviationKWh: dev,
			DeviationPercent: percent(dev, pred), StdError: se, Z: dev / se, Severity: Severity(dev / se), CUSUMKWh: out.CUSUMKWh}
		out.Hours = append(out.Hours, dh)
		out.Totals.ActualKWh += h.EnergyKWh
		out.Totals.PredictedKWh += pred
		sumVar += se * se
	}
	t := &out.Totals
	t.DeviationKWh = t.ActualKWh - t.PredictedKWh
	t.DeviationPercent = percent(t.DeviationKWh, t.PredictedKWh)
	if sumVar > 0 {
		t.Z = t.DeviationKWh / math.Sqrt(sumVar)
	}
	t.Severity = Severity(t.Z)
	if imp := percent(-t.DeviationKWh, t.PredictedKWh); imp != nil {
		out.ImprovementPercent = imp
	}
	return out, nil
}

func percent(num, den float64) *float64 {
	if den == 0 || math.IsNaN(num/den) {
		return nil
	}
	v := 100 * num / den
	return &v
}

// Prediction is a baseline's expectation for given driver values.
type Prediction struct {
	BaselineID   string     `json:"baseline_id"`
	MachineID    string     `json:"machine_id"`
	ModelVersion int        `json:"model_version"`
	PredictedKWh float64    `json:"predicted_kwh"`
	StdError     float64    `json:"std_error_kwh"`
	Lower95      float64    `json:"lower_95"`
	Upper95      float64    `json:"upper_95"`
	Drivers      []string   `json:"drivers"`
	Warnings     []string   `json:"warnings"`
	Timestamp    *time.Time `json:"timestamp,omitempty"`
}

// inputsOf names the value a driver is computed from.
func inputOf(driver string) string {
	switch driver {
	case analytics.DriverHDD, analytics.DriverCDD, analytics.DriverTempSegments:
		return analytics.DriverOutdoorTemp
	case analytics.DriverHourOfDay, analytics.DriverWeekday, analytics.DriverHourOfWeek:
		return "timestamp"
	}
	return driver
}

// Predict applies a baseline to driver values: values maps raw driver names
// (production_count, outdoor_temp_c, operating_hours, pressure_bar,
// material_moisture_pct) to numbers; hdd, cdd and temp_segments are computed
// from outdoor_temp_c and time-of-week drivers from at. A missing value is
// an *InputError naming the driver; values outside the training range add a
// warning. The 95 % interval is ŷ ± t₀.₉₇₅,n−p·SE.
func (s *Service) Predict(ctx context.Context, machineID, baselineID string, values map[string]float64, at *time.Time) (*Prediction, error) {
	b, err := s.Load(ctx, machineID, baselineID)
	if err != nil {
		return nil, err
	}
	row := analytics.HourlyRow{ProductionCount: math.NaN(), OutdoorTempC: math.NaN(), OperatingHours: math.NaN(),
		PressureBar: math.NaN(), MaterialMoisturePct: math.NaN()}
	for _, drv := range b.Design.Drivers {
		in := inputOf(drv)
		if in == "timestamp" {
			if at == nil {
				return nil, inputf("driver %s needs the hour to predict: give timestamp", drv)
			}
			row.Hour = *at
			continue
		}
		v, ok := values[in]
		if !ok {
			if in != drv {
				return nil, inputf("missing driver %s: give %s (the baseline computes %s from it)", drv, in, drv)
			}
			return nil, inputf("missing driver %s: the baseline uses %s", drv, strings.Join(b.Design.Drivers, ", "))
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, inputf("driver %s must be a finite number", in)
		}
		switch in {
		case analytics.DriverProductionCount:
			row.ProductionCount = v
		case analytics.DriverOutdoorTemp:
			row.OutdoorTempC = v
		case analytics.DriverOperatingHours:
			row.OperatingHours = v
		case analytics.DriverPressure:
			row.PressureBar = v
		case analytics.DriverMaterialMoisturePct:
			row.MaterialMoisturePct = v
		}
	}
	for name := range values {
		if !slices.ContainsFunc(b.Design.Drivers, func(d string) bool { return inputOf(d) == name }) {
			return nil, inputf("%s is not a driver of this baseline; it uses %s", name, strings.Join(b.Design.Drivers, ", "))
		}
	}
	x, ok := b.Design.Row(row)
	if !ok {
		return nil, inputf("missing driver values: %v", b.Design.Missing(row))
	}
	pred, se := b.Model.Predict(x)
	tq := analytics.TQuantile(0.975, b.Model.DF())
	p := &Prediction{BaselineID: b.Row.ID, MachineID: b.Row.MachineID, ModelVersion: b.Row.ModelVersion,
		PredictedKWh: pred, StdError: se, Lower95: pred - tq*se, Upper95: pred + tq*se,
		Drivers: b.Design.Drivers, Warnings: []string{}, Timestamp: at}
	for j, c := range b.Design.Columns {
		if strings.Contains(c, "=") {
			continue // an indicator column: 0 or 1
		}
		d, ok := b.Fit.Drivers[c]
		if !ok {
			continue
		}
		if x[j] < float64(d.Min) || x[j] > float64(d.Max) {
			p.Warnings = append(p.Warnings, fmt.Sprintf("%s = %g is outside the training range %g to %g; the prediction is an extrapolation",
				c, x[j], float64(d.Min), float64(d.Max)))
		}
	}
	return p, nil
}
