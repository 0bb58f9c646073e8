package analytics

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// Anomaly scoring: how a closed hour is judged against the rolling model and
// against a machine's own recent process signals.
//
// The false-alarm budget. ANOMALY_CONTAMINATION (α, default 0.0005) is the
// target rate of false episode openings per scored running hour of one
// machine, over all its detectors together. It is split equally among the
// DetectorCount detectors (Bonferroni): each gets α/DetectorCount, so the
// union of their in-control alarms stays at or below α whatever their
// correlation. Each detector is then calibrated to its share:
//
//   - energy, instant rule: |z| ≥ Φ⁻¹(1 − a/2), a = α/DetectorCount
//     (z = residual / prediction standard error, two-sided);
//   - energy, persistence rule: a two-sided tabular CUSUM on z with
//     reference k = 0.5 (tuned to a 1σ shift) and a decision interval h
//     whose in-control average run length is 1/a (CUSUMInterval);
//   - efficiency: a one-sided CUSUM on the same z (k = 0.25, tuned to a slow
//     0.5σ rise of specific energy consumption), in-control ARL 1/a;
//   - process signals (pressure two-sided, machine temperature and
//     vibration one-sided upward): robust z against the median and MAD of
//     the machine's recent normal hours, threshold the normal quantile for a;
//   - isolation forest: threshold at the 1 − a quantile of its out-of-bag
//     training scores (IsolationForest.Calibrate).

// DetectorCount is the number of detectors sharing the false-alarm budget:
// energy instant, energy CUSUM, efficiency CUSUM, pressure, temperature,
// vibration and isolation forest.
const DetectorCount = 7

// Severity is an anomaly's alert level, with the names of the EnMS
// alert_level enum.
type Severity string

// Severities, in increasing order.
const (
	SeverityNormal   Severity = "normal"
	SeverityWarning  Severity = "warning"
	SeverityCritical Severity = "critical"
)

// Rank orders severities: normal 0, warning 1, critical 2.
func (s Severity) Rank() int {
	switch s {
	case SeverityWarning:
		return 1
	case SeverityCritical:
		return 2
	}
	return 0
}

// AnomalyConfig is what a caller may tune. The zero value is not valid; use
// DefaultAnomalyConfig and override fields.
type AnomalyConfig struct {
	// Contamination is α, the target false-alarm rate per scored hour over
	// all detectors (ANOMALY_CONTAMINATION). 0 < α < 1.
	Contamination float64
	// WarningSigma and CriticalSigma classify a deviation (in standard
	// errors) as warning or critical (ANOMALY_WARNING_SIGMA, _CRITICAL_SIGMA).
	WarningSigma, CriticalSigma float64
	// EnergyK is the reference value k of the energy CUSUM, in σ: half the
	// shift it is tuned to detect fastest. Default 0.5.
	EnergyK float64
	// EfficiencyK is the reference value of the efficiency CUSUM. Default 0.25.
	EfficiencyK float64
	// ContinueSigma is how far (in σ, in the episode's direction) an hour must
	// deviate to extend an open episode. Default: WarningSigma.
	ContinueSigma float64
}

// DefaultAnomalyConfig returns the defaults named in the field comments.
func DefaultAnomalyConfig() AnomalyConfig {
	return AnomalyConfig{Contamination: 0.0005, WarningSigma: 2, CriticalSigma: 3,
		EnergyK: 0.5, EfficiencyK: 0.25, ContinueSigma: 2}
}

// Calibration is the set of thresholds an AnomalyConfig implies.
type Calibration struct {
	Config AnomalyConfig
	// PerDetector is each detector's share a = α / DetectorCount.
	PerDetector float64
	// InstantZ is the two-sided instant threshold Φ⁻¹(1 − a/2).
	InstantZ float64
	// OneSidedZ is the one-sided threshold Φ⁻¹(1 − a).
	OneSidedZ float64
	// EnergyH is the decision interval of the two-sided energy CUSUM.
	EnergyH float64
	// EfficiencyH is the decision interval of the one-sided efficiency CUSUM.
	EfficiencyH float64
}

// Calibrate checks cfg and computes its thresholds.
func Calibrate(cfg AnomalyConfig) (Calibration, error) {
	switch {
	case !(cfg.Contamination > 0 && cfg.Contamination < 1):
		return Calibration{}, fmt.Errorf("contamination %v is not a rate between 0 and 1", cfg.Contamination)
	case !(cfg.WarningSigma > 0 && cfg.CriticalSigma >= cfg.WarningSigma):
		return Calibration{}, fmt.Errorf("warning sigma %v and critical sigma %v must be positive with critical ≥ warning", cfg.WarningSigma, cfg.CriticalSigma)
	case !(cfg.EnergyK > 0 && cfg.EfficiencyK > 0):
		return Calibration{}, errors.New("CUSUM reference values must be positive")
	case !(cfg.ContinueSigma > 0):
		return Calibration{}, errors.New("the continuation threshold must be positive")
	}
	a := cfg.Contamination / DetectorCount
	c := Calibration{Config: cfg, PerDetector: a,
		InstantZ:  TwoSidedNormalQuantile(a),
		OneSidedZ: -distuv.UnitNormal.Quantile(a)}
	// Two-sided: each side's ARL is twice the scheme's, 1/ARL = 1/ARL⁺ + 1/ARL⁻.
	c.EnergyH = CUSUMInterval(cfg.EnergyK, 2/a)
	c.EfficiencyH = CUSUMInterval(cfg.EfficiencyK, 1/a)
	return c, nil
}

// TwoSidedNormalQuantile returns z with P(|Z| ≥ z) = rate for a standard
// normal Z: Φ⁻¹(1 − rate/2), computed from the lower tail for accuracy.
// For rate 0.0005 it is 3.4807.
func TwoSidedNormalQuantile(rate float64) float64 {
	return -distuv.UnitNormal.Quantile(rate / 2)
}

// TwoSidedPValue returns P(|Z| ≥ |z|) = 2Φ(−|z|).
func TwoSidedPValue(z float64) float64 {
	return math.Erfc(math.Abs(z) / math.Sqrt2)
}

// OneSidedPValue returns P(Z ≥ z) = Φ(−z).
func OneSidedPValue(z float64) float64 {
	return 0.5 * math.Erfc(z/math.Sqrt2)
}

// ConfidenceFromP maps a false-alarm probability p to confidence_score
// 1 − p, clamped to [0, 1].
func ConfidenceFromP(p float64) float64 {
	if math.IsNaN(p) {
		return 0
	}
	return math.Min(1, math.Max(0, 1-p))
}

// Classify returns the severity of a deviation of z standard errors:
// |z| ≥ CriticalSigma critical, ≥ WarningSigma warning, else normal.
func (c Calibration) Classify(z float64) Severity {
	switch a := math.Abs(z); {
	case a >= c.Config.CriticalSigma:
		return SeverityCritical
	case a >= c.Config.WarningSigma:
		return SeverityWarning
	}
	return SeverityNormal
}

// SiegmundARL is Siegmund's approximation of the average run length of a
// one-sided upper CUSUM S = max(0, S + x − k), signalling at S > h, on
// independent N(μ, 1) observations (Siegmund 1985, Sequential Analysis,
// eq. 2.56; Montgomery, Introduction to Statistical Quality Control, §9.1.4):
//
//	ARL = (exp(−2Δb) + 2Δb − 1) / (2Δ²),  Δ = μ − k, b = h + 1.166,
//	ARL = b²                               when Δ = 0.
func SiegmundARL(mu, k, h float64) float64 {
	d := mu - k
	b := h + 1.166
	if math.Abs(d) < 1e-12 {
		return b * b
	}
	return (math.Exp(-2*d*b) + 2*d*b - 1) / (2 * d * d)
}

// CUSUMInterval returns the decision interval h ≥ 0 at which a one-sided
// CUSUM with reference k has in-control (μ = 0) average run length arl by
// SiegmundARL, found by bisection (the ARL increases with h). An arl below
// the ARL at h = 0 gives 0.
func CUSUMInterval(k, arl float64) float64 {
	lo, hi := 0.0, 1.0
	if SiegmundARL(0, k, lo) >= arl {
		return 0
	}
	for SiegmundARL(0, k, hi) < arl {
		hi *= 2
	}
	for range 100 {
		mid := (lo + hi) / 2
		if SiegmundARL(0, k, mid) < arl {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

// CUSUMState holds the running sums of the anomaly CUSUMs of one machine.
// The zero value is the in-control start.
type CUSUMState struct {
	EnergyHigh float64 `json:"energy_high"` // upper energy CUSUM (overconsumption)
	EnergyLow  float64 `json:"energy_low"`  // lower energy CUSUM (underconsumption)
	Efficiency float64 `json:"efficiency"`  // upper efficiency CUSUM
}

// Direction is the sign of a deviation: +1 above expectation, −1 below.
type Direction int

// EnergyVerdict is the energy detector's judgement of one hour.
type EnergyVerdict struct {
	Z float64
	// Instant is set when |z| alone crosses InstantZ; Direction is its sign.
	Instant bool
	// CUSUM is set when a side of the CUSUM crossed EnergyH this hour; that
	// side has been restarted at 0.
	CUSUM     bool
	Direction Direction
	// PValue is the in-control probability per hour of a signal at least
	// this strong (two-sided normal p for the instant rule; 1/ARL at the
	// CUSUM's value for the persistence rule).
	PValue float64
}

// Opens reports whether the verdict opens an episode.
func (v EnergyVerdict) Opens() bool { return v.Instant || v.CUSUM }

// ScoreEnergy advances the two-sided energy CUSUM by z and judges the hour.
// A side that signals is restarted at zero (the standard restart after a
// signal), so a later episode needs fresh evidence.
func (c Calibration) ScoreEnergy(st *CUSUMState, z float64) EnergyVerdict {
	k, h := c.Config.EnergyK, c.EnergyH
	st.EnergyHigh = math.Max(0, st.EnergyHigh+z-k)
	st.EnergyLow = math.Max(0, st.EnergyLow-z-k)
	v := EnergyVerdict{Z: z, PValue: TwoSidedPValue(z)}
	if z >= 0 {
		v.Direction = 1
	} else {
		v.Direction = -1
	}
	if math.Abs(z) >= c.InstantZ {
		v.Instant = true
	}
	switch {
	case st.EnergyHigh > h:
		v.CUSUM, v.Direction = true, 1
		v.PValue = math.Min(v.PValue, 2/SiegmundARL(0, k, st.EnergyHigh))
		st.EnergyHigh = 0
	case st.EnergyLow > h:
		v.CUSUM, v.Direction = true, -1
		v.PValue = math.Min(v.PValue, 2/SiegmundARL(0, k, st.EnergyLow))
		st.EnergyLow = 0
	}
	if v.Opens() {
		// An instant signal consumes the evidence too.
		if v.Direction > 0 {
			st.EnergyHigh = 0
		} else {
			st.EnergyLow = 0
		}
	}
	return v
}

// ScoreEfficiency advances the one-sided efficiency CUSUM by z (the
// standardised excess of energy over what the baseline implies for the
// hour's production) and reports whether it signalled, restarting it if so,
// with the in-control per-hour probability of reaching its value.
func (c Calibration) ScoreEfficiency(st *CUSUMState, z float64) (signal bool, p float64) {
	k := c.Config.EfficiencyK
	st.Efficiency = math.Max(0, st.Efficiency+z-k)
	if st.Efficiency > c.EfficiencyH {
		p = 1 / SiegmundARL(0, k, st.Efficiency)
		st.Efficiency = 0
		return true, p
	}
	return false, 1
}

// Continues reports whether an hour deviating z (in σ) extends an open
// episode of direction dir: z·dir ≥ ContinueSigma.
func (c Calibration) Continues(z float64, dir Direction) bool {
	return z*float64(dir) >= c.Config.ContinueSigma
}

// EquivalentZ converts a two-sided tail probability p into the normal
// deviation with that tail, Φ⁻¹(1 − p/2), so that detectors without a
// natural z (the isolation forest) share the severity scale. p ≤ 0 gives +Inf.
func EquivalentZ(p float64) float64 {
	if p <= 0 {
		return math.Inf(1)
	}
	if p >= 1 {
		return 0
	}
	return TwoSidedNormalQuantile(p)
}
