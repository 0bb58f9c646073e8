package analytics

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// Number is a float64 that encodes as JSON null when it is NaN or infinite
// (an undefined statistic, e.g. CV(RMSE) when the mean consumption is zero),
// so a report always encodes.
type Number float64

// MarshalJSON writes the number, or null when it is not finite.
func (x Number) MarshalJSON() ([]byte, error) {
	f := float64(x)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', -1, 64), nil
}

// UnmarshalJSON reads a number; null reads as NaN.
func (x *Number) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*x = Number(math.NaN())
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*x = Number(f)
	return nil
}

// FitReport is the ISO 50006 / ASHRAE Guideline 14 picture of a fitted
// baseline. Its JSON keys are the contract of DESIGN §5 (stored in
// energy_baselines.metadata.fit and returned by the API). cv_rmse and nmbe
// are percentages.
type FitReport struct {
	N            int                      `json:"n"`
	P            int                      `json:"p"`
	RSquared     Number                   `json:"r_squared"`
	AdjRSquared  Number                   `json:"adj_r_squared"`
	RMSE         Number                   `json:"rmse"`
	CVRMSE       Number                   `json:"cv_rmse"`
	NMBE         Number                   `json:"nmbe"`
	MAE          Number                   `json:"mae"`
	FStat        Number                   `json:"f_stat"`
	FPValue      Number                   `json:"f_p_value"`
	AutocorrLag1 Number                   `json:"autocorr_lag1"`
	Coefficients map[string]CoefReport    `json:"coefficients"`
	Drivers      map[string]DriverSummary `json:"drivers"`
	Validity     Validity                 `json:"validity"`
}

// CoefReport is one coefficient's estimate and its Student t test.
type CoefReport struct {
	Estimate Number `json:"estimate"`
	StdError Number `json:"std_error"`
	T        Number `json:"t"`
	PValue   Number `json:"p_value"`
}

// DriverSummary describes one regression column over the training rows;
// Coverage is the share of eligible hours in which the column's source
// driver was reported.
type DriverSummary struct {
	Min      Number `json:"min"`
	Max      Number `json:"max"`
	Mean     Number `json:"mean"`
	SD       Number `json:"sd"`
	Coverage Number `json:"coverage"`
}

// Validity is the verdict with every rule shown.
type Validity struct {
	Valid bool   `json:"valid"`
	Rules []Rule `json:"rules"`
}

// Rule is one validity rule: passed when Value compares to Threshold as the
// rule's name says.
type Rule struct {
	Name      string `json:"name"`
	Passed    bool   `json:"passed"`
	Value     Number `json:"value"`
	Threshold Number `json:"threshold"`
}

// Reasons lists the failed rules as sentences, e.g. "R² 0.62 < 0.80".
func (v Validity) Reasons() []string {
	var out []string
	for _, r := range v.Rules {
		if !r.Passed {
			out = append(out, r.Reason())
		}
	}
	return out
}

// Reason is the rule's outcome as a short sentence.
func (r Rule) Reason() string {
	v, t := float64(r.Value), float64(r.Threshold)
	switch {
	case r.Name == RuleRSquared:
		return fmt.Sprintf("R² %.2f < %.2f", v, t)
	case r.Name == RuleSamples:
		return fmt.Sprintf("%d samples < %d", int(v), int(t))
	case r.Name == RuleFTest:
		return fmt.Sprintf("F-test p-value %.3g ≥ %.2f", v, t)
	case r.Name == RuleBestDriver:
		return fmt.Sprintf("no driver has p-value < %.2f (best %.3g)", t, v)
	default:
		return fmt.Sprintf("%s %.3g ≥ %.2f", r.Name, v, t)
	}
}

// Names of the validity rules (DESIGN §5 thresholds).
const (
	RuleFTest       = "f_test_p_value"      // F-test p < 0.10
	RuleDriverP     = "driver_p_value:"     // + driver name: p < 0.20, each driver
	RuleBestDriver  = "best_driver_p_value" // at least one driver p < 0.10
	RuleRSquared    = "r_squared"           // R² ≥ BASELINE_MIN_R2
	RuleSamples     = "samples"             // n ≥ BASELINE_MIN_SAMPLES
	fTestThreshold  = 0.10
	driverThreshold = 0.20
	bestThreshold   = 0.10
)

// DriverGroup ties a requested driver to its regression columns (one for a
// numeric driver, several for temp_segments or a categorical driver, whose
// columns are tested jointly).
type DriverGroup struct {
	Name     string
	Columns  []int
	Coverage float64
}

// ReportInput is what Report needs besides the model: the training rows in
// time order (for residuals) and the validity thresholds.
type ReportInput struct {
	X          [][]float64
	Y          []float64
	Groups     []DriverGroup
	MinR2      float64
	MinSamples int
}

// Report computes the fit report of m over the rows it was trained on.
// Quantities the sufficient statistics give exactly (coefficients, standard
// errors, R², F) come from m; MAE, NMBE, lag-1 autocorrelation (residuals in
// row order, gaps ignored) and the drivers' min/max come from a pass over
// the rows. Definitions (ASHRAE Guideline 14-2014):
//
//	RMSE = √(SSE/(n−p)),  CV(RMSE) = 100·RMSE/ȳ,
//	NMBE = 100·Σ(yᵢ−ŷᵢ)/((n−p)·ȳ),  MAE = Σ|yᵢ−ŷᵢ|/n,
//	r₁ = Σ eᵢeᵢ₋₁ / Σ eᵢ².
func Report(m *Model, in ReportInput) FitReport {
	n, df := m.N, m.DF()
	rep := FitReport{
		N:            n,
		P:            m.P(),
		RSquared:     Number(m.RSquared()),
		AdjRSquared:  Number(m.AdjRSquared()),
		RMSE:         Number(m.Sigma),
		CVRMSE:       Number(100 * m.Sigma / m.MeanY),
		Coefficients: map[string]CoefReport{},
		Drivers:      map[string]DriverSummary{},
	}
	f, fp := m.FTest()
	rep.FStat, rep.FPValue = Number(f), Number(fp)

	se0, se := m.CoefSE()
	rep.Coefficients["intercept"] = coefReport(m.Intercept, se0, df)
	pByColumn := make([]float64, len(m.Coef))
	for j, c := range m.Columns {
		cr := coefReport(m.Coef[j], se[j], df)
		rep.Coefficients[c] = cr
		pByColumn[j] = float64(cr.PValue)
	}

	// residual pass
	var sumRes, sumAbs, sumSq, sumLag float64
	prev := math.NaN()
	for i, x := range in.X {
		e := in.Y[i] - m.Fitted(x)
		sumRes += e
		sumAbs += math.Abs(e)
		sumSq += e * e
		if !math.IsNaN(prev) {
			sumLag += e * prev
		}
		prev = e
	}
	rows := float64(len(in.X))
	rep.NMBE = Number(100 * sumRes / (float64(df) * m.MeanY))
	rep.MAE = Number(sumAbs / rows)
	rep.AutocorrLag1 = Number(sumLag / sumSq)

	coverage := map[int]float64{}
	for _, g := range in.Groups {
		for _, c := range g.Columns {
			coverage[c] = g.Coverage
		}
	}
	for j, c := range m.Columns {
		rep.Drivers[c] = summarise(in.X, j, coverage[j])
	}

	rules := []Rule{{Name: RuleFTest, Value: Number(fp), Threshold: fTestThreshold, Passed: fp < fTestThreshold}}
	best := math.Inf(1)
	for _, g := range in.Groups {
		p := pByColumn[g.Columns[0]]
		if len(g.Columns) > 1 {
			if _, gp, err := m.GroupFTest(g.Columns); err == nil {
				p = gp
			} else {
				p = math.NaN()
			}
		}
		best = math.Min(best, p)
		rules = append(rules, Rule{Name: RuleDriverP + g.Name, Value: Number(p), Threshold: driverThreshold,
			Passed: p < driverThreshold})
	}
	rules = append(rules,
		Rule{Name: RuleBestDriver, Value: Number(best), Threshold: bestThreshold, Passed: best < bestThreshold},
		Rule{Name: RuleRSquared, Value: rep.RSquared, Threshold: Number(in.MinR2), Passed: m.RSquared() >= in.MinR2},
		Rule{Name: RuleSamples, Value: Number(n), Threshold: Number(in.MinSamples), Passed: n >= in.MinSamples},
	)
	rep.Validity = Validity{Valid: true, Rules: rules}
	for _, r := range rules {
		if !r.Passed {
			rep.Validity.Valid = false
		}
	}
	return rep
}

func coefReport(est, se float64, df int) CoefReport {
	t := est / se
	return CoefReport{Estimate: Number(est), StdError: Number(se), T: Number(t), PValue: Number(TPValue(t, df))}
}

// summarise is the min, max, mean and sample standard deviation of column j.
func summarise(x [][]float64, j int, coverage float64) DriverSummary {
	lo, hi := math.Inf(1), math.Inf(-1)
	var mean, m2 float64
	for i, row := range x {
		v := row[j]
		lo, hi = math.Min(lo, v), math.Max(hi, v)
		d := v - mean
		mean += d / float64(i+1)
		m2 += d * (v - mean)
	}
	sd := math.NaN()
	if len(x) > 1 {
		sd = math.Sqrt(m2 / float64(len(x)-1))
	}
	return DriverSummary{Min: Number(lo), Max: Number(hi), Mean: Number(mean), SD: Number(sd), Coverage: Number(coverage)}
}
