package anomaly

import (
	"encoding/json"
	"math"
	"slices"
	"time"

	"github.com/enms/enms-analytics/analytics"
	"github.com/enms/enms-analytics/store"
)

// Anomaly types written to anomalies.anomaly_type.
const (
	TypeEnergyOver   = "energy_overconsumption"
	TypeEnergyUnder  = "energy_underconsumption"
	TypeEfficiency   = "efficiency_drop"
	TypePressure     = "pressure_anomaly"
	TypeTemperature  = "temperature_spike"
	TypeVibration    = "vibration_anomaly"
	TypeMultivariate = "multivariate_anomaly"
)

// Hour statuses of anomaly_hours.
const (
	StatusNormal     = "normal"
	StatusAnomalous  = "anomalous"
	StatusUnscored   = "unscored"
	StatusSuppressed = "suppressed"
)

// state is the detector state of one machine after an hour: it is stored
// with the hour (anomaly_hours.state) and is where a re-score resumes.
type state struct {
	CUSUM analytics.CUSUMState `json:"cusum"`
	// Open are the episodes not yet closed by a quiet gap, by type.
	Open map[string]*episode `json:"open,omitempty"`
	// ForestBefore is when the isolation forest in use was trained: on the
	// learning hours before that time. Nil: no forest yet.
	ForestBefore *time.Time `json:"forest_before,omitempty"`
}

func (s state) clone() state {
	c := s
	c.Open = make(map[string]*episode, len(s.Open))
	for k, e := range s.Open {
		cp := *e
		cp.Features = maps(e.Features)
		c.Open[k] = &cp
	}
	if s.ForestBefore != nil {
		t := *s.ForestBefore
		c.ForestBefore = &t
	}
	return c
}

func maps(m map[string]float64) map[string]float64 {
	if m == nil {
		return nil
	}
	c := make(map[string]float64, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// episode is an open episode as the state carries it; everything its
// anomalies row needs.
type episode struct {
	Type       string    `json:"type"`
	DetectedAt time.Time `json:"detected_at"`
	LastHour   time.Time `json:"last_hour"`
	Hours      int       `json:"hours"`
	Direction  int       `json:"direction"`
	Severity   string    `json:"severity"`
	Method     string    `json:"method"`
	MinP       float64   `json:"min_p"`
	// The hour of the largest |z| and what was measured then.
	PeakHour     time.Time          `json:"peak_hour"`
	PeakZ        float64            `json:"peak_z"`
	Metric       string             `json:"metric"`
	Value        float64            `json:"value"`
	Expected     float64            `json:"expected"`
	ModelVersion string             `json:"model_version,omitempty"`
	Features     map[string]float64 `json:"features,omitempty"`
}

func (e *episode) key() store.EpisodeKey {
	return store.EpisodeKey{Type: e.Type, DetectedAt: e.DetectedAt}
}

// finding is one detector's judgement of one hour.
type finding struct {
	Type   string
	Opens  bool    // meets the opening rule
	Z      float64 // signed deviation in σ (equivalent z for the forest)
	Dir    int     // direction of the deviation: +1 above, −1 below
	P      float64 // in-control probability of a signal this strong
	Method string
	Metric string
	Value  float64
	Expect float64
}

// hourScore is everything the detectors computed for one hour.
type hourScore struct {
	findings []finding
	signals  map[string]any // stored in anomaly_hours.signals
}

// applyEpisodes closes episodes whose quiet gap passed, then opens or
// extends episodes from the hour's findings, and returns the anomaly types
// the hour belongs to (sorted) and the episodes it touched.
func (sv *Service) applyEpisodes(st *state, hour time.Time, sc hourScore, features map[string]float64, modelVersion string) (types []string, touched []*episode) {
	sv.closeQuiet(st, hour)
	for _, f := range sc.findings {
		e := st.Open[f.Type]
		anomalous := f.Opens
		if e != nil && !anomalous {
			anomalous = sv.cal.Continues(f.Z, analytics.Direction(e.Direction))
		}
		if !anomalous {
			continue
		}
		sev := sv.cal.Classify(f.Z)
		if sev.Rank() < analytics.SeverityWarning.Rank() {
			sev = analytics.SeverityWarning // an episode is at least a warning
		}
		if e == nil {
			e = &episode{Type: f.Type, DetectedAt: hour, Direction: f.Dir, Severity: string(sev),
				Method: f.Method, MinP: 1, PeakZ: 0}
			if st.Open == nil {
				st.Open = map[string]*episode{}
			}
			st.Open[f.Type] = e
		}
		e.LastHour = hour
		e.Hours++
		if sev.Rank() > analytics.Severity(e.Severity).Rank() {
			e.Severity = string(sev)
		}
		if f.Opens && e.Method != f.Method && e.Hours == 1 {
			e.Method = f.Method
		}
		e.MinP = math.Min(e.MinP, f.P)
		if e.Hours == 1 || math.Abs(f.Z) > math.Abs(e.PeakZ) {
			e.PeakHour, e.PeakZ = hour, f.Z
			e.Metric, e.Value, e.Expected = f.Metric, finiteOr0(f.Value), finiteOr0(f.Expect)
			e.ModelVersion = modelVersion
			e.Features = finiteMap(features)
		}
		types = append(types, f.Type)
		touched = append(touched, e)
	}
	slices.Sort(types)
	return types, touched
}

// closeQuiet drops from the state the episodes whose last anomalous hour is
// more than QuietGapHours before hour.
func (sv *Service) closeQuiet(st *state, hour time.Time) {
	for t, e := range st.Open {
		if hour.Sub(e.LastHour) > time.Duration(sv.cfg.QuietGapHours)*time.Hour {
			delete(st.Open, t)
		}
	}
}

// row turns an episode into the anomalies row written for it.
func (sv *Service) row(machineID string, e *episode) store.Episode {
	dev := math.NaN()
	if e.Expected != 0 && !math.IsNaN(e.Expected) {
		dev = (e.Value - e.Expected) / math.Abs(e.Expected) * 100
	}
	meta := map[string]any{
		"last_hour":     e.LastHour,
		"hours":         e.Hours,
		"peak_z":        finiteOrNil(e.PeakZ),
		"peak_hour":     e.PeakHour,
		"direction":     directionName(e.Direction),
		"p_value":       e.MinP,
		"contamination": sv.cfg.Contamination,
		"thresholds":    sv.thresholds(),
		"features":      finiteMap(e.Features),
		"detector":      e.Method,
	}
	if e.ModelVersion != "" {
		meta["model_version"] = e.ModelVersion
	}
	b, _ := json.Marshal(meta)
	return store.Episode{MachineID: machineID, Type: e.Type, DetectedAt: e.DetectedAt, LastHour: e.LastHour,
		Hours: e.Hours, Severity: e.Severity, MetricName: e.Metric, MetricValue: e.Value,
		ExpectedValue: e.Expected, DeviationPercent: dev, DeviationStdDev: e.PeakZ, Method: e.Method,
		Confidence: analytics.ConfidenceFromP(e.MinP), Metadata: b}
}

func (sv *Service) thresholds() map[string]float64 {
	return map[string]float64{
		"per_detector_rate":  sv.cal.PerDetector,
		"instant_z":          sv.cal.InstantZ,
		"one_sided_z":        sv.cal.OneSidedZ,
		"energy_cusum_k":     sv.cal.Config.EnergyK,
		"energy_cusum_h":     sv.cal.EnergyH,
		"efficiency_cusum_k": sv.cal.Config.EfficiencyK,
		"efficiency_cusum_h": sv.cal.EfficiencyH,
		"continue_z":         sv.cal.Config.ContinueSigma,
		"warning_z":          sv.cal.Config.WarningSigma,
		"critical_z":         sv.cal.Config.CriticalSigma,
	}
}

func directionName(d int) string {
	if d < 0 {
		return "below"
	}
	return "above"
}

func finiteOrNil(v float64) any {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return v
}

// finiteOr0 keeps the state encodable as JSON (which has no NaN).
func finiteOr0(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

func finiteMap(m map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			out[k] = v
		}
	}
	return out
}

// energyFindings judges the energy residual z (and the efficiency CUSUM
// where the hour produced something), advancing the CUSUMs in st.
//
// Naming what was found: a deviation large enough to open an episode on
// its own is energy_overconsumption or energy_underconsumption; a moderate
// rise that only persistence reveals (either CUSUM), in an hour with
// production, is efficiency_drop — more energy per unit than the baseline
// implies. An efficiency episode does not open while an overconsumption
// episode is open or opening: that excess is already reported.
func (sv *Service) energyFindings(st *state, z, actual, expected, production float64) []finding {
	v := sv.cal.ScoreEnergy(&st.CUSUM, z)
	dir := int(v.Direction)
	if !v.Opens() {
		dir = sign(z)
	}
	typ := TypeEnergyOver
	if dir < 0 {
		typ = TypeEnergyUnder
	}
	producing := production > 0
	moderateRise := v.CUSUM && !v.Instant && dir > 0 && producing
	method := "zscore"
	if v.CUSUM && !v.Instant {
		method = "cusum"
	}
	out := []finding{{Type: typ, Opens: v.Opens() && !moderateRise, Z: z, Dir: dir, P: v.PValue, Method: method,
		Metric: "total_energy_kwh", Value: actual, Expect: expected}}
	if !producing {
		return out
	}
	sig, p := sv.cal.ScoreEfficiency(&st.CUSUM, z)
	if moderateRise {
		sig, p = true, math.Min(p, v.PValue)
	}
	if !sig {
		p = analytics.OneSidedPValue(z)
	}
	overOpen := st.Open[TypeEnergyOver] != nil || (v.Instant && dir > 0)
	out = append(out, finding{Type: TypeEfficiency, Opens: sig && !overOpen, Z: z, Dir: 1, P: p, Method: "cusum",
		Metric: "sec_kwh_per_unit", Value: actual / production, Expect: expected / production})
	return out
}

// signalFinding judges a process signal value x against the robust
// statistics of the learning window.
func (sv *Service) signalFinding(typ, metric string, x float64, window []float64, tail analytics.Tail) (finding, map[string]any, bool) {
	if math.IsNaN(x) {
		return finding{}, nil, false
	}
	r, ok := analytics.RobustStats(window)
	if !ok {
		return finding{}, nil, false
	}
	z := r.Z(x)
	v := sv.cal.ScoreSignal(z, tail)
	dir := int(v.Direction)
	if tail == analytics.Upper {
		dir = 1
	}
	f := finding{Type: typ, Opens: v.Opens, Z: z, Dir: dir, P: v.PValue, Method: "robust_zscore",
		Metric: metric, Value: x, Expect: r.Median}
	return f, map[string]any{"z": z, "value": x, "median": r.Median, "scale": r.Scale, "n": r.N}, true
}

func sign(v float64) int {
	if v < 0 {
		return -1
	}
	return 1
}
