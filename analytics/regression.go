// Package analytics holds the service's numerics: pure functions and types
// over float64 slices and gonum matrices, with no database, clock or logger.
package analytics

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/mathext"
	"gonum.org/v1/gonum/stat/distuv"
)

// Stats are the sufficient statistics of a multiple linear regression of y on
// k driver columns with an intercept: the count n, the mean vector of
// (x₁…x_k, y) and the matrix of centred co-moments
//
//	C = Σᵢ (zᵢ − z̄)(zᵢ − z̄)ᵀ,  zᵢ = (xᵢ₁ … xᵢₖ, yᵢ),
//
// which carries exactly the information of XᵀX, Xᵀy, yᵀy and n
// (XᵀX = C_xx + n·x̄x̄ᵀ and so on) but is updated with Welford's centred
// recurrences instead of raw sums, so large, nearly constant drivers (a
// pressure of 7.000 ± 0.01 bar) do not cancel catastrophically.
//
// Add, Remove and Revise cost O(k²); Fit solves the normal equations in
// O(k³). Stats keep no rows: the quantities that need residuals (MAE, NMBE,
// lag-1 autocorrelation) and the drivers' min/max are computed by Report from
// the rows in a second pass. The zero value is not usable; call NewStats.
type Stats struct {
	columns []string
	n       float64
	mean    []float64 // k+1: drivers, then y
	com     []float64 // (k+1)², row-major, symmetric
}

// NewStats returns empty statistics for the named driver columns.
func NewStats(columns []string) *Stats {
	k := len(columns) + 1
	return &Stats{
		columns: append([]string(nil), columns...),
		mean:    make([]float64, k),
		com:     make([]float64, k*k),
	}
}

// Columns returns the driver column names, in order.
func (s *Stats) Columns() []string { return append([]string(nil), s.columns...) }

// N is the number of observations.
func (s *Stats) N() int { return int(math.Round(s.n)) }

// Clone returns an independent copy.
func (s *Stats) Clone() *Stats {
	return &Stats{
		columns: append([]string(nil), s.columns...),
		n:       s.n,
		mean:    append([]float64(nil), s.mean...),
		com:     append([]float64(nil), s.com...),
	}
}

func (s *Stats) check(x []float64) {
	if len(x) != len(s.columns) {
		panic(fmt.Sprintf("analytics: observation has %d drivers, statistics have %d", len(x), len(s.columns)))
	}
}

// Add includes one observation. It panics when len(x) is not the number of
// columns (a programming error).
func (s *Stats) Add(x []float64, y float64) {
	s.check(x)
	k := len(s.mean)
	d := make([]float64, k)
	for j := range x {
		d[j] = x[j] - s.mean[j]
	}
	d[k-1] = y - s.mean[k-1]
	n1 := s.n + 1
	w := s.n / n1
	for i := 0; i < k; i++ {
		for j := 0; j < k; j++ {
			s.com[i*k+j] += w * d[i] * d[j]
		}
	}
	for i := range d {
		s.mean[i] += d[i] / n1
	}
	s.n = n1
}

// Remove takes out one observation that was added before (the sliding
// window's oldest hour). Removing the last observation leaves empty
// statistics. It returns an error when there is nothing to remove.
func (s *Stats) Remove(x []float64, y float64) error {
	s.check(x)
	if s.n < 1 {
		return errors.New("remove observation: the statistics are empty")
	}
	k := len(s.mean)
	if s.n < 1.5 {
		clear(s.mean)
		clear(s.com)
		s.n = 0
		return nil
	}
	n1 := s.n - 1
	// the mean without the observation, then C' = C − (n'/n)(z − z̄')(z − z̄')ᵀ
	for j := range x {
		s.mean[j] = (s.n*s.mean[j] - x[j]) / n1
	}
	s.mean[k-1] = (s.n*s.mean[k-1] - y) / n1
	d := make([]float64, k)
	for j := range x {
		d[j] = x[j] - s.mean[j]
	}
	d[k-1] = y - s.mean[k-1]
	w := n1 / s.n
	for i := 0; i < k; i++ {
		for j := 0; j < k; j++ {
			s.com[i*k+j] -= w * d[i] * d[j]
		}
	}
	s.n = n1
	return nil
}

// Revise replaces an observation already included (an hour revised by late
// data) by its new values.
func (s *Stats) Revise(oldX []float64, oldY float64, newX []float64, newY float64) error {
	if err := s.Remove(oldX, oldY); err != nil {
		return fmt.Errorf("revise observation: %w", err)
	}
	s.Add(newX, newY)
	return nil
}

type statsJSON struct {
	Columns []string  `json:"columns"`
	N       float64   `json:"n"`
	Mean    []float64 `json:"mean"`
	Com     []float64 `json:"comoments"`
}

// MarshalJSON encodes the statistics exactly (Go writes the shortest decimal
// that reads back to the same float64), so persisted state resumes bit for bit.
func (s *Stats) MarshalJSON() ([]byte, error) {
	return json.Marshal(statsJSON{Columns: s.columns, N: s.n, Mean: s.mean, Com: s.com})
}

// UnmarshalJSON decodes statistics written by MarshalJSON.
func (s *Stats) UnmarshalJSON(b []byte) error {
	var v statsJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	k := len(v.Columns) + 1
	if len(v.Mean) != k || len(v.Com) != k*k {
		return fmt.Errorf("regression statistics: %d columns need %d means and %d co-moments, got %d and %d",
			len(v.Columns), k, k*k, len(v.Mean), len(v.Com))
	}
	*s = Stats{columns: v.Columns, n: v.N, mean: v.Mean, com: v.Com}
	return nil
}

// RankError reports drivers that make the normal equations singular: a
// constant column or one that is a linear combination of others.
type RankError struct {
	// Constant lists columns with no variation in the data.
	Constant []string
	// Collinear maps a column to the earlier columns it is a combination of.
	Collinear map[string][]string
}

func (e *RankError) Error() string {
	var parts []string
	if len(e.Constant) > 0 {
		parts = append(parts, fmt.Sprintf("constant driver %s (no variation in the data)", strings.Join(e.Constant, ", ")))
	}
	for _, c := range e.collinearKeys() {
		parts = append(parts, fmt.Sprintf("driver %s is collinear with %s", c, strings.Join(e.Collinear[c], ", ")))
	}
	return "rank deficient: " + strings.Join(parts, "; ")
}

func (e *RankError) collinearKeys() []string {
	var keys []string
	for k := range e.Collinear {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Drivers lists every column named by the error, constant ones first.
func (e *RankError) Drivers() []string {
	out := append([]string(nil), e.Constant...)
	return append(out, e.collinearKeys()...)
}

// ErrTooFewSamples is returned (wrapped) by Fit when n ≤ p, leaving no
// residual degrees of freedom.
var ErrTooFewSamples = errors.New("too few samples")

// collinearTol: a column whose variance left unexplained by the earlier
// columns is below this share of its own variance is treated as collinear
// (1 − R²_j < 1e-10, i.e. a variance inflation factor above 1e10).
const collinearTol = 1e-10

// constantTol: a column whose standard deviation is below this share of its
// magnitude is constant up to rounding.
const constantTol = 1e-12

// Model is a solved regression: y ≈ Intercept + Σ Coef[j]·x_j with the
// covariance needed for standard errors and prediction intervals.
type Model struct {
	Columns   []string
	Intercept float64
	Coef      []float64
	N         int
	SSE       float64 // residual sum of squares
	SST       float64 // total sum of squares about the mean
	Sigma     float64 // residual standard error √(SSE/(n−p))
	MeanX     []float64
	MeanY     float64
	// cinv is C_xx⁻¹ (k×k), the inverse of the drivers' centred co-moments.
	cinv *mat.SymDense
}

// P is the number of estimated parameters, intercept included.
func (m *Model) P() int { return len(m.Coef) + 1 }

// DF is the residual degrees of freedom n − p.
func (m *Model) DF() int { return m.N - m.P() }

// Fit solves the least-squares problem the statistics describe. The drivers'
// co-moment matrix is scaled to a correlation matrix (centre and scale from
// the statistics) and factorised by Cholesky; a constant or collinear column
// is a *RankError naming it. Fewer observations than parameters wraps
// ErrTooFewSamples.
func (s *Stats) Fit() (*Model, error) {
	k := len(s.columns)
	kk := k + 1
	n := s.N()
	if k == 0 {
		return nil, errors.New("fit: no driver columns")
	}
	if n <= k+1 {
		return nil, fmt.Errorf("%w: %d observations for %d parameters (intercept and %d driver columns)",
			ErrTooFewSamples, n, k+1, k)
	}
	scale := make([]float64, k)
	rankErr := &RankError{Collinear: map[string][]string{}}
	for j := 0; j < k; j++ {
		v := s.com[j*kk+j]
		mag := math.Abs(s.mean[j])
		if v <= 0 || math.Sqrt(v/s.n) <= constantTol*math.Max(mag, 1e-300) {
			rankErr.Constant = append(rankErr.Constant, s.columns[j])
			continue
		}
		scale[j] = math.Sqrt(v)
	}
	if len(rankErr.Constant) > 0 {
		return nil, rankErr
	}
	// Correlation matrix R = D⁻¹ C_xx D⁻¹ and r = D⁻¹ C_xy.
	r := mat.NewSymDense(k, nil)
	rxy := mat.NewVecDense(k, nil)
	for i := 0; i < k; i++ {
		for j := i; j < k; j++ {
			r.SetSym(i, j, s.com[i*kk+j]/(scale[i]*scale[j]))
		}
		rxy.SetVec(i, s.com[i*kk+k]/scale[i])
	}
	if err := findCollinear(r, s.columns, rankErr); err != nil {
		return nil, err
	}
	var chol mat.Cholesky
	if !chol.Factorize(r) {
		return nil, &RankError{Collinear: map[string][]string{s.columns[k-1]: s.columns[:k-1]}}
	}
	var bs mat.VecDense
	if err := chol.SolveVecTo(&bs, rxy); err != nil {
		return nil, fmt.Errorf("solve normal equations: %w", err)
	}
	var rinv mat.SymDense
	if err := chol.InverseTo(&rinv); err != nil {
		return nil, fmt.Errorf("invert correlation matrix: %w", err)
	}
	m := &Model{
		Columns: s.Columns(),
		Coef:    make([]float64, k),
		N:       n,
		MeanX:   append([]float64(nil), s.mean[:k]...),
		MeanY:   s.mean[k],
		SST:     s.com[k*kk+k],
		cinv:    mat.NewSymDense(k, nil),
	}
	m.Intercept = m.MeanY
	sse := m.SST
	for j := 0; j < k; j++ {
		m.Coef[j] = bs.AtVec(j) / scale[j]
		m.Intercept -= m.Coef[j] * m.MeanX[j]
		sse -= m.Coef[j] * s.com[j*kk+k]
		for i := j; i < k; i++ {
			m.cinv.SetSym(j, i, rinv.At(j, i)/(scale[i]*scale[j]))
		}
	}
	m.SSE = math.Max(sse, 0)
	m.Sigma = math.Sqrt(m.SSE / float64(m.DF()))
	return m, nil
}

// findCollinear walks the columns in order, regressing each on the earlier
// independent ones (a Cholesky factor grown one column at a time). A column
// whose unexplained share 1 − R²_j is below collinearTol is recorded with
// the earlier columns that carry weight in that regression.
func findCollinear(r *mat.SymDense, names []string, rankErr *RankError) error {
	k := r.SymmetricDim()
	var kept []int
	// l holds the rows of the lower-triangular factor of R restricted to kept.
	var l [][]float64
	for j := 0; j < k; j++ {
		w := make([]float64, len(kept))
		for a, i := range kept {
			v := r.At(i, j)
			for b := 0; b < a; b++ {
				v -= l[a][b] * w[b]
			}
			w[a] = v / l[a][a]
		}
		resid := 1.0
		for _, v := range w {
			resid -= v * v
		}
		if resid < collinearTol {
			// coefficients of j on the kept columns: solve Lᵀ c = w
			c := make([]float64, len(kept))
			for a := len(kept) - 1; a >= 0; a-- {
				v := w[a]
				for b := a + 1; b < len(kept); b++ {
					v -= l[b][a] * c[b]
				}
				c[a] = v / l[a][a]
			}
			var with []string
			for a, i := range kept {
				if math.Abs(c[a]) > 1e-6 {
					with = append(with, names[i])
				}
			}
			rankErr.Collinear[names[j]] = with
			continue
		}
		row := append(w, math.Sqrt(resid))
		l = append(l, row)
		kept = append(kept, j)
	}
	if len(rankErr.Collinear) > 0 {
		return rankErr
	}
	return nil
}

// Predict returns the fitted value at driver values x and the standard error
// of a new observation there,
//
//	se = σ·√(1 + x₀ᵀ(XᵀX)⁻¹x₀) = σ·√(1 + 1/n + (x − x̄)ᵀ C_xx⁻¹ (x − x̄)),
//
// with x₀ = (1, x). It panics when len(x) is not the number of columns.
func (m *Model) Predict(x []float64) (yhat, se float64) {
	if len(x) != len(m.Coef) {
		panic(fmt.Sprintf("analytics: prediction has %d drivers, model has %d", len(x), len(m.Coef)))
	}
	yhat = m.Intercept
	d := make([]float64, len(x))
	for j := range x {
		yhat += m.Coef[j] * x[j]
		d[j] = x[j] - m.MeanX[j]
	}
	dv := mat.NewVecDense(len(d), d)
	q := 0.0
	if len(d) > 0 {
		q = mat.Inner(dv, m.cinv, dv)
	}
	return yhat, m.Sigma * math.Sqrt(1+1/float64(m.N)+q)
}

// Fitted returns the fitted value Intercept + Σ Coef[j]·x[j] (Predict
// without the standard error).
func (m *Model) Fitted(x []float64) float64 {
	y := m.Intercept
	for j, c := range m.Coef {
		y += c * x[j]
	}
	return y
}

// CoefSE returns the standard errors of the intercept and of each
// coefficient: Var(β) = σ²·C_xx⁻¹ and Var(b₀) = σ²·(1/n + x̄ᵀC_xx⁻¹x̄).
func (m *Model) CoefSE() (intercept float64, coef []float64) {
	s2 := m.Sigma * m.Sigma
	k := len(m.Coef)
	coef = make([]float64, k)
	for j := 0; j < k; j++ {
		coef[j] = math.Sqrt(s2 * m.cinv.At(j, j))
	}
	q := 0.0
	if k > 0 {
		mv := mat.NewVecDense(k, append([]float64(nil), m.MeanX...))
		q = mat.Inner(mv, m.cinv, mv)
	}
	return math.Sqrt(s2 * (1/float64(m.N) + q)), coef
}

// TPValue is the two-sided p-value of a t statistic with df degrees of
// freedom, P(|T| ≥ |t|) = I_{df/(df+t²)}(df/2, 1/2) (regularised incomplete
// beta; computed directly so tiny p-values keep their relative precision).
func TPValue(t float64, df int) float64 {
	if math.IsNaN(t) || df <= 0 {
		return math.NaN()
	}
	if math.IsInf(t, 0) {
		return 0
	}
	nu := float64(df)
	return mathext.RegIncBeta(nu/2, 0.5, nu/(nu+t*t))
}

// FPValue is P(F ≥ f) for the F distribution with (d1, d2) degrees of
// freedom, I_{d2/(d2+d1·f)}(d2/2, d1/2).
func FPValue(f float64, d1, d2 int) float64 {
	if math.IsNaN(f) || d1 <= 0 || d2 <= 0 {
		return math.NaN()
	}
	if math.IsInf(f, 1) {
		return 0
	}
	if f <= 0 {
		return 1
	}
	a, b := float64(d1), float64(d2)
	return mathext.RegIncBeta(b/2, a/2, b/(b+a*f))
}

// RSquared is 1 − SSE/SST.
func (m *Model) RSquared() float64 { return 1 - m.SSE/m.SST }

// AdjRSquared is 1 − (1 − R²)(n − 1)/(n − p).
func (m *Model) AdjRSquared() float64 {
	return 1 - (1-m.RSquared())*float64(m.N-1)/float64(m.DF())
}

// FTest is the overall F statistic ((SST − SSE)/k)/(SSE/(n − p)) and its p-value.
func (m *Model) FTest() (f, p float64) {
	k := len(m.Coef)
	if k == 0 {
		return math.NaN(), math.NaN()
	}
	f = ((m.SST - m.SSE) / float64(k)) / (m.SSE / float64(m.DF()))
	return f, FPValue(f, k, m.DF())
}

// GroupFTest tests the columns at idx jointly (a categorical driver's
// indicator columns): the Wald form of the partial F test,
//
//	F = β_gᵀ [C_xx⁻¹]_gg⁻¹ β_g / (q·σ²),  q = len(idx),
//
// which equals ((SSE_reduced − SSE_full)/q)/(SSE_full/(n − p)).
func (m *Model) GroupFTest(idx []int) (f, p float64, err error) {
	q := len(idx)
	if q == 0 {
		return 0, 0, errors.New("group F test: no columns")
	}
	sub := mat.NewSymDense(q, nil)
	b := mat.NewVecDense(q, nil)
	for a, i := range idx {
		b.SetVec(a, m.Coef[i])
		for c := a; c < q; c++ {
			sub.SetSym(a, c, m.cinv.At(i, idx[c]))
		}
	}
	var chol mat.Cholesky
	if !chol.Factorize(sub) {
		return 0, 0, errors.New("group F test: covariance block is not positive definite")
	}
	var sol mat.VecDense
	if err := chol.SolveVecTo(&sol, b); err != nil {
		return 0, 0, fmt.Errorf("group F test: %w", err)
	}
	f = mat.Dot(b, &sol) / (float64(q) * m.Sigma * m.Sigma)
	return f, FPValue(f, q, m.DF()), nil
}

type modelJSON struct {
	Columns   []string  `json:"columns"`
	Intercept float64   `json:"intercept"`
	Coef      []float64 `json:"coef"`
	N         int       `json:"n"`
	SSE       float64   `json:"sse"`
	SST       float64   `json:"sst"`
	Sigma     float64   `json:"sigma"`
	MeanX     []float64 `json:"mean_x"`
	MeanY     float64   `json:"mean_y"`
	CInv      []float64 `json:"cxx_inverse"`
}

// MarshalJSON encodes the model with the covariance that prediction
// intervals need, so a stored model predicts exactly as the fitted one.
func (m *Model) MarshalJSON() ([]byte, error) {
	k := len(m.Coef)
	ci := make([]float64, 0, k*k)
	for i := 0; i < k; i++ {
		for j := 0; j < k; j++ {
			ci = append(ci, m.cinv.At(i, j))
		}
	}
	return json.Marshal(modelJSON{Columns: m.Columns, Intercept: m.Intercept, Coef: m.Coef, N: m.N,
		SSE: m.SSE, SST: m.SST, Sigma: m.Sigma, MeanX: m.MeanX, MeanY: m.MeanY, CInv: ci})
}

// UnmarshalJSON decodes a model written by MarshalJSON.
func (m *Model) UnmarshalJSON(b []byte) error {
	var v modelJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	k := len(v.Columns)
	if len(v.Coef) != k || len(v.MeanX) != k || len(v.CInv) != k*k {
		return fmt.Errorf("regression model: %d columns do not match %d coefficients, %d means, %d covariance entries",
			k, len(v.Coef), len(v.MeanX), len(v.CInv))
	}
	var ci *mat.SymDense
	if k > 0 {
		ci = mat.NewSymDense(k, nil)
		for i := 0; i < k; i++ {
			for j := i; j < k; j++ {
				ci.SetSym(i, j, v.CInv[i*k+j])
			}
		}
	}
	*m = Model{Columns: v.Columns, Intercept: v.Intercept, Coef: v.Coef, N: v.N, SSE: v.SSE, SST: v.SST,
		Sigma: v.Sigma, MeanX: v.MeanX, MeanY: v.MeanY, cinv: ci}
	return nil
}

// TQuantile is the p-quantile of Student's t with df degrees of freedom
// (e.g. TQuantile(0.975, df) for a two-sided 95 % interval).
func TQuantile(p float64, df int) float64 {
	if df <= 0 {
		return math.NaN()
	}
	return distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(df)}.Quantile(p)
}
