package analytics

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// R's `cars` data set (Ezekiel 1930; R datasets package, ?cars).
var (
	carsSpeed = []float64{4, 4, 7, 7, 8, 9, 10, 10, 10, 11, 11, 12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 15, 15,
		15, 16, 16, 17, 17, 17, 18, 18, 18, 18, 19, 19, 19, 20, 20, 20, 20, 20, 22, 23, 24, 24, 24, 24, 25}
	carsDist = []float64{2, 10, 4, 22, 16, 10, 18, 26, 34, 17, 28, 14, 20, 24, 28, 26, 34, 34, 46, 26, 36, 60, 80, 20, 26,
		54, 32, 40, 32, 40, 50, 42, 56, 76, 84, 36, 46, 68, 32, 48, 52, 56, 64, 66, 54, 70, 92, 93, 120, 85}
)

func carsRows() ([][]float64, []float64) {
	x := make([][]float64, len(carsSpeed))
	for i, s := range carsSpeed {
		x[i] = []float64{s}
	}
	return x, carsDist
}

// twoDriverRows is the fixed 41-row design of testdata/regression_reference.py.
func twoDriverRows() ([][]float64, []float64) {
	var x [][]float64
	var y []float64
	for i := 0; i < 41; i++ {
		x1, x2 := float64(i%7), float64((i*i)%11)
		noise := float64((i*37)%13 - 6)
		x = append(x, []float64{x1, x2})
		y = append(y, 5+2*x1-3*x2+noise)
	}
	return x, y
}

func fitRows(t *testing.T, cols []string, x [][]float64, y []float64) *Model {
	t.Helper()
	s := NewStats(cols)
	for i := range x {
		s.Add(x[i], y[i])
	}
	m, err := s.Fit()
	if err != nil {
		t.Fatalf("fit: %v", err)
	}
	return m
}

func relClose(t *testing.T, name string, got, want, tol float64) {
	t.Helper()
	if d := math.Abs(got-want) / math.Max(math.Abs(want), 1e-300); d > tol || math.IsNaN(got) {
		t.Errorf("%s = %.17g, want %.17g (relative error %.2g > %.0g)", name, got, want, d, tol)
	}
}

// roundTo rounds v to sig significant digits, as R's summary prints it.
func roundTo(v float64, sig int) float64 {
	if v == 0 {
		return 0
	}
	p := math.Pow(10, float64(sig-1)-math.Floor(math.Log10(math.Abs(v))))
	return math.Round(v*p) / p
}

// TestCarsAgainstRPrint checks lm(dist ~ speed, data = cars) at the precision
// R's summary() prints it (R documentation, ?cars / summary.lm output):
// intercept −17.5791 (SE 6.7584, p 0.0123), speed 3.9324 (SE 0.4155,
// p 1.49e-12), R² 0.6511, adjusted 0.6438, residual SE 15.38 on 48 DF,
// F 89.57 on 1 and 48 DF.
func TestCarsAgainstRPrint(t *testing.T) {
	t.Parallel()
	x, y := carsRows()
	m := fitRows(t, []string{"speed"}, x, y)
	se0, se := m.CoefSE()
	f, fp := m.FTest()
	checks := []struct {
		name      string
		got, want float64
		sig       int
	}{
		{"intercept", m.Intercept, -17.5791, 6},
		{"speed", m.Coef[0], 3.9324, 5},
		{"se intercept", se0, 6.7584, 5},
		{"se speed", se[0], 0.4155, 4},
		{"p intercept", TPValue(m.Intercept/se0, m.DF()), 0.0123, 3},
		{"p speed", TPValue(m.Coef[0]/se[0], m.DF()), 1.49e-12, 3},
		{"R²", m.RSquared(), 0.6511, 4},
		{"adjusted R²", m.AdjRSquared(), 0.6438, 4},
		{"residual SE", m.Sigma, 15.38, 4},
		{"F", f, 89.57, 4},
		{"F p", fp, 1.49e-12, 3},
	}
	for _, c := range checks {
		if got := roundTo(c.got, c.sig); got != c.want {
			t.Errorf("%s = %.10g, prints as %v, R prints %v", c.name, c.got, got, c.want)
		}
	}
	if m.DF() != 48 {
		t.Errorf("df = %d, R reports 48", m.DF())
	}
}

// TestCarsExact checks the same fit, its report and a prediction interval
// at 1e-9 relative against exact rational arithmetic
// (testdata/regression_reference.py, output in regression_reference.txt).
func TestCarsExact(t *testing.T) {
	t.Parallel()
	x, y := carsRows()
	m := fitRows(t, []string{"speed"}, x, y)
	se0, se := m.CoefSE()
	f, fp := m.FTest()
	const tol = 1e-9
	relClose(t, "beta0", m.Intercept, -17.579094890510948905, tol)
	relClose(t, "se0", se0, 6.7584401693792359612, tol)
	relClose(t, "p0", TPValue(m.Intercept/se0, m.DF()), 0.012318816153808809125, tol)
	relClose(t, "beta1", m.Coef[0], 3.9324087591240875912, tol)
	relClose(t, "se1", se[0], 0.41551277665712229620, tol)
	relClose(t, "t1", m.Coef[0]/se[0], 9.4639899902983699294, tol)
	relClose(t, "p1", TPValue(m.Coef[0]/se[0], m.DF()), 1.4898364962950851426e-12, tol)
	relClose(t, "r2", m.RSquared(), 0.65107938075825085756, tol)
	relClose(t, "adj_r2", m.AdjRSquared(), 0.64381020119071441709, tol)
	relClose(t, "sigma", m.Sigma, 15.379586748819907276, tol)
	relClose(t, "f", f, 89.567106536467740150, tol)
	relClose(t, "f_p", fp, 1.4898364962950851426e-12, tol)
	yhat, pse := m.Predict([]float64{21})
	relClose(t, "pred21", yhat, 65.001489051094890511, tol)
	relClose(t, "pred21_se", pse, 15.705943255424508091, tol)

	rep := Report(m, ReportInput{X: x, Y: y, Groups: []DriverGroup{{Name: "speed", Columns: []int{0}, Coverage: 1}},
		MinR2: 0.8, MinSamples: 40})
	relClose(t, "report mae", float64(rep.MAE), 11.580119124087591241, tol)
	relClose(t, "report autocorr_lag1", float64(rep.AutocorrLag1), 0.16043221072446659646, tol)
	relClose(t, "report p_value speed", float64(rep.Coefficients["speed"].PValue), 1.4898364962950851426e-12, tol)
	// OLS residuals with an intercept sum to zero: NMBE is zero up to rounding.
	if math.Abs(float64(rep.NMBE)) > 1e-10 {
		t.Errorf("NMBE = %g, want 0 (residuals of OLS with intercept sum to zero)", rep.NMBE)
	}
	// CV(RMSE) = 100·σ/ȳ with ȳ = 2149/50 = 42.98.
	relClose(t, "cv_rmse", float64(rep.CVRMSE), 100*15.379586748819907276/42.98, tol)
	// R² 0.651 fails the 0.8 rule; everything else passes (p-values tiny, n = 50 ≥ 40).
	if rep.Validity.Valid {
		t.Errorf("validity = valid, want invalid because R² 0.65 < 0.80")
	}
	if got := rep.Validity.Reasons(); !slices.Equal(got, []string{"R² 0.65 < 0.80"}) {
		t.Errorf("reasons = %q, want exactly [R² 0.65 < 0.80]", got)
	}
	d := rep.Drivers["speed"]
	if d.Min != 4 || d.Max != 25 || d.Coverage != 1 {
		t.Errorf("speed summary = %+v, want min 4, max 25, coverage 1", d)
	}
	relClose(t, "speed mean", float64(d.Mean), 15.4, 1e-12) // 770/50
	// sd(cars$speed) = √(Σ(x−15.4)²/49) = √(1370/49) (Σx² = 13228, 13228 − 50·15.4² = 1370)
	relClose(t, "speed sd", float64(d.SD), math.Sqrt(1370.0/49), 1e-12)
}

// TestTwoDriversExact checks a two-driver fit at 1e-9 relative against
// exact arithmetic (testdata/regression_reference.py).
func TestTwoDriversExact(t *testing.T) {
	t.Parallel()
	x, y := twoDriverRows()
	m := fitRows(t, []string{"x1", "x2"}, x, y)
	se0, se := m.CoefSE()
	f, fp := m.FTest()
	const tol = 1e-9
	relClose(t, "beta0", m.Intercept, 6.9787645920103243973, tol)
	relClose(t, "se0", se0, 1.4172473851926018667, tol)
	relClose(t, "p0", TPValue(m.Intercept/se0, m.DF()), 0.000016820312834340325838, tol)
	relClose(t, "beta1", m.Coef[0], 1.3755773254336051309, tol)
	relClose(t, "se1", se[0], 0.30251072342412462511, tol)
	relClose(t, "p1", TPValue(m.Coef[0]/se[0], m.DF()), 0.000054017362117465279478, tol)
	relClose(t, "beta2", m.Coef[1], -3.0444359711386167654, tol)
	relClose(t, "se2", se[1], 0.21379247260711012245, tol)
	relClose(t, "p2", TPValue(m.Coef[1]/se[1], m.DF()), 8.1192644735065831369e-17, tol)
	relClose(t, "r2", m.RSquared(), 0.86338370496817385078, tol)
	relClose(t, "adj_r2", m.AdjRSquared(), 0.85619337365070931661, tol)
	relClose(t, "sigma", m.Sigma, 3.7898019895065917349, tol)
	relClose(t, "f", f, 120.07564976472065516, tol)
	relClose(t, "f_p", fp, 3.7544607002826229677e-17, tol)
	// The joint test of both columns is the overall F test.
	gf, gp, err := m.GroupFTest([]int{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	relClose(t, "group f", gf, 120.07564976472065516, tol)
	relClose(t, "group f_p", gp, 3.7544607002826229677e-17, tol)
	// A one-column group test is the squared t test: F = t², same p.
	gf1, gp1, _ := m.GroupFTest([]int{0})
	relClose(t, "group f x1", gf1, 4.5472018639981394809*4.5472018639981394809, tol)
	relClose(t, "group p x1", gp1, 0.000054017362117465279478, tol)
	rep := Report(m, ReportInput{X: x, Y: y, MinR2: 0.8, MinSamples: 30,
		Groups: []DriverGroup{{Name: "x1", Columns: []int{0}, Coverage: 1}, {Name: "x2", Columns: []int{1}, Coverage: 1}}})
	relClose(t, "mae", float64(rep.MAE), 2.9314187795482694664, tol)
	relClose(t, "autocorr_lag1", float64(rep.AutocorrLag1), 0.046660528471403942826, tol)
	if !rep.Validity.Valid {
		t.Errorf("validity failed: %v (all p < 1e-4, R² 0.86 ≥ 0.8, n 41 ≥ 30)", rep.Validity.Reasons())
	}
}

// TestIncrementalEqualsBatch applies 10,000 random adds, removes and
// revisions to incremental statistics and compares the fit with one from
// scratch over the surviving rows, within 1e-8 relative.
func TestIncrementalEqualsBatch(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(4, 2026))
	cols := []string{"units", "temp", "pressure"}
	row := func() ([]float64, float64) {
		// drivers on realistic, very different scales; pressure nearly constant
		x := []float64{rng.Float64() * 500, 5 + 25*rng.Float64(), 7 + 0.05*rng.NormFloat64()}
		y := 12 + 0.8*x[0] + 0.5*x[1] + 30*x[2] + 2*rng.NormFloat64()
		return x, y
	}
	type obs struct {
		x []float64
		y float64
	}
	inc := NewStats(cols)
	var live []obs
	for range 200 {
		x, y := row()
		inc.Add(x, y)
		live = append(live, obs{x, y})
	}
	for op := range 10000 {
		switch r := rng.IntN(3); {
		case r == 0 || len(live) < 50:
			x, y := row()
			inc.Add(x, y)
			live = append(live, obs{x, y})
		case r == 1:
			i := rng.IntN(len(live))
			if err := inc.Remove(live[i].x, live[i].y); err != nil {
				t.Fatalf("op %d: %v", op, err)
			}
			live = slices.Delete(live, i, i+1)
		default:
			i := rng.IntN(len(live))
			x, y := row()
			if err := inc.Revise(live[i].x, live[i].y, x, y); err != nil {
				t.Fatalf("op %d: %v", op, err)
			}
			live[i] = obs{x, y}
		}
	}
	batch := NewStats(cols)
	for _, o := range live {
		batch.Add(o.x, o.y)
	}
	mi, err := inc.Fit()
	if err != nil {
		t.Fatal(err)
	}
	mb, err := batch.Fit()
	if err != nil {
		t.Fatal(err)
	}
	if mi.N != mb.N || mi.N != len(live) {
		t.Fatalf("n incremental %d, batch %d, rows %d", mi.N, mb.N, len(live))
	}
	const tol = 1e-8
	worst := math.Abs(mi.Intercept-mb.Intercept) / math.Abs(mb.Intercept)
	for j := range cols {
		worst = math.Max(worst, math.Abs(mi.Coef[j]-mb.Coef[j])/math.Abs(mb.Coef[j]))
	}
	t.Logf("%d rows left; largest relative difference of a coefficient: %.2g", len(live), worst)
	relClose(t, "intercept", mi.Intercept, mb.Intercept, tol)
	for j := range cols {
		relClose(t, cols[j], mi.Coef[j], mb.Coef[j], tol)
	}
	relClose(t, "sigma", mi.Sigma, mb.Sigma, tol)
	relClose(t, "r2", mi.RSquared(), mb.RSquared(), tol)
	_, sei := mi.CoefSE()
	_, seb := mb.CoefSE()
	for j := range cols {
		relClose(t, "se "+cols[j], sei[j], seb[j], tol)
	}
}

// TestStatsJSONRoundTrip: persisted statistics resume bit for bit.
func TestStatsJSONRoundTrip(t *testing.T) {
	t.Parallel()
	x, y := twoDriverRows()
	s := NewStats([]string{"x1", "x2"})
	for i := range x {
		s.Add(x[i], y[i])
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var r Stats
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.n != s.n || !slices.Equal(r.mean, s.mean) || !slices.Equal(r.com, s.com) || !slices.Equal(r.columns, s.columns) {
		t.Fatalf("round trip changed the statistics")
	}
	m1, _ := s.Fit()
	mb, err := json.Marshal(m1)
	if err != nil {
		t.Fatal(err)
	}
	var m2 Model
	if err := json.Unmarshal(mb, &m2); err != nil {
		t.Fatal(err)
	}
	a1, b1 := m1.Predict([]float64{3, 4})
	a2, b2 := m2.Predict([]float64{3, 4})
	if a1 != a2 || b1 != b2 {
		t.Errorf("stored model predicts (%v, %v), fitted (%v, %v)", a2, b2, a1, a2)
	}
}

func TestRankDeficiencyNamesDrivers(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 7))
	t.Run("constant", func(t *testing.T) {
		t.Parallel()
		s := NewStats([]string{"units", "pressure_bar"})
		for range 100 {
			u := rng.Float64()
			s.Add([]float64{u, 7.5}, 3*u)
		}
		_, err := s.Fit()
		var re *RankError
		if !errors.As(err, &re) || !slices.Equal(re.Constant, []string{"pressure_bar"}) {
			t.Fatalf("err = %v, want a RankError naming pressure_bar as constant", err)
		}
		if !strings.Contains(err.Error(), "constant driver pressure_bar") {
			t.Errorf("message %q does not name the constant driver", err)
		}
	})
	t.Run("collinear", func(t *testing.T) {
		t.Parallel()
		s := NewStats([]string{"a", "b", "c", "d"})
		r := rand.New(rand.NewPCG(8, 8))
		for range 100 {
			a, b, d := r.Float64(), r.Float64(), r.Float64()
			// c = 2a − b exactly: c is collinear with a and b, not with d
			s.Add([]float64{a, b, 2*a - b, d}, a+b+d+r.Float64())
		}
		_, err := s.Fit()
		var re *RankError
		if !errors.As(err, &re) {
			t.Fatalf("err = %v, want RankError", err)
		}
		if !slices.Equal(re.Collinear["c"], []string{"a", "b"}) || len(re.Collinear) != 1 {
			t.Errorf("collinear = %v, want c with a, b", re.Collinear)
		}
		if !strings.Contains(err.Error(), "driver c is collinear with a, b") {
			t.Errorf("message %q does not name the drivers", err)
		}
	})
	t.Run("too few samples", func(t *testing.T) {
		t.Parallel()
		s := NewStats([]string{"a", "b"})
		s.Add([]float64{1, 2}, 1)
		s.Add([]float64{2, 1}, 2)
		s.Add([]float64{3, 5}, 2)
		if _, err := s.Fit(); !errors.Is(err, ErrTooFewSamples) {
			t.Errorf("err = %v, want ErrTooFewSamples (3 rows, 3 parameters)", err)
		}
	})
}

func TestRemoveAll(t *testing.T) {
	t.Parallel()
	s := NewStats([]string{"a"})
	s.Add([]float64{1}, 2)
	if err := s.Remove([]float64{1}, 2); err != nil || s.N() != 0 {
		t.Fatalf("remove: err %v n %d", err, s.N())
	}
	if err := s.Remove([]float64{1}, 2); err == nil {
		t.Errorf("removing from empty statistics succeeded")
	}
}

// TestNumberJSON: undefined statistics encode as null, not as an error.
func TestNumberJSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal([]Number{1.5, Number(math.NaN()), Number(math.Inf(1))})
	if err != nil || string(b) != "[1.5,null,null]" {
		t.Errorf("got %s, %v", b, err)
	}
}

// TestTQuantile: qt(0.975, 48) = 2.010634757624232, found by bisection on
// the exact even-df tail formula of testdata/regression_reference.py
// (R prints qt(0.975, 48) as 2.010635).
func TestTQuantile(t *testing.T) {
	t.Parallel()
	relClose(t, "qt(0.975, 48)", TQuantile(0.975, 48), 2.010634757624232, 1e-9)
	relClose(t, "two-sided p at qt(0.975, 48)", TPValue(TQuantile(0.975, 48), 48), 0.05, 1e-9)
}
