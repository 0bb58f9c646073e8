package analytics

import (
	"fmt"
	"math"
	"time"
)

// Grids searched by HoltWinters on one-step squared error: small constants
// suit hourly and 15-minute buckets (seasonal shapes change over weeks, not
// hours), the larger α values daily totals whose level moves from day to
// day. The AR(1) coefficient φ is solved in closed form per grid point.
var (
	fcAlphaGrid = []float64{0.005, 0.02, 0.05, 0.1, 0.2, 0.4, 0.7}
	fcDeltaGrid = []float64{0.01, 0.05, 0.1, 0.2}
	fcOmegaGrid = []float64{0.01, 0.05, 0.1, 0.2}
)

// HoltWinters is additive exponential smoothing with one or two seasons
// (Taylor's double seasonal Holt-Winters, without trend, with an AR(1)
// adjustment of the one-step errors: J. W. Taylor, "Short-term electricity
// demand forecasting using double seasonal exponential smoothing", JORS 54,
// 2003). For period p1 (e.g. 24 hours) and p2 (e.g. 168, or 0 for one
// season), with ε_t = y_t − (ℓ + d_{t−p1} + w_{t−p2}):
//
//	ℓ_t = ℓ_{t−1} + α ε_t
//	d_t = d_{t−p1} + δ (y_t − ℓ_t − w_{t−p2} − d_{t−p1})
//	w_t = w_{t−p2} + ω (y_t − ℓ_t − d_{t−p1} − w_{t−p2})
//	ŷ_{t+h|t} = ℓ_t + d_{t+h−p1} + w_{t+h−p2} + φʰ ε_t
//
// α, δ, ω are chosen on a small grid by the one-step sum of squared errors
// of ε_t − φ ε_{t−1}; for each grid point φ is the least-squares AR(1)
// coefficient Σ ε_t ε_{t−1} / Σ ε_{t−1}², clipped to [0, 0.98] (the states do
// not depend on φ, so this is exact). The seasonal states start from the
// means of the first two longest seasons. Missing values (NaN) leave the
// states unchanged and carry the AR term forward as φ ε.
//
// When the periods are the calendar's — p1 buckets per day and p2 per week
// for sub-daily buckets, or p1 = 7 for daily ones — a bucket's seasonal
// slot is its local time of day and of week in the series' Location, not
// its index modulo the period, so plant schedules that follow local time
// stay aligned across daylight-saving changes (the 25-hour day visits one
// slot twice, the 23-hour day skips one).
func HoltWinters(p1, p2 int) ForecastModel {
	name := "holt_winters"
	m := 2*max(p1, p2) + 2*p1
	if p2 == 0 {
		name = "holt_winters_single"
		m = 3 * p1
	}
	return ForecastModel{Name: name, MinHistory: m, Fit: func(s ForecastSeries) (Forecaster, error) {
		return fitHoltWinters(name, s, p1, p2)
	}}
}

// hwPhaser maps a bucket index to its slots in the two seasons.
type hwPhaser struct {
	series   ForecastSeries // geometry
	p1, p2   int
	calendar bool
	cache    [][2]int32 // slots of the fitted buckets
}

func newPhaser(s ForecastSeries, p1, p2 int) *hwPhaser {
	per := s.StepsPerDay()
	ph := &hwPhaser{series: ForecastSeries{Start: s.Start, Step: s.Step}, p1: p1, p2: p2}
	if per > 1 {
		ph.calendar = p1 == per && (p2 == 0 || p2 == 7*per) && (24*time.Hour)%s.Step == 0
	} else {
		ph.calendar = p1 == 7 && p2 == 0
	}
	if ph.calendar {
		ph.cache = make([][2]int32, len(s.Values))
		for i := range ph.cache {
			a, b := ph.compute(i)
			ph.cache[i] = [2]int32{int32(a), int32(b)}
		}
	}
	return ph
}

func (ph *hwPhaser) compute(i int) (int, int) {
	t := ph.series.At(i)
	wd := int(t.Weekday())
	if ph.series.StepsPerDay() == 1 {
		return wd, 0
	}
	slot := (t.Hour()*60 + t.Minute()) / int(ph.series.Step/time.Minute)
	return slot, wd*ph.p1 + slot
}

// slots returns bucket i's slot in the first and second season (0 for the
// second when there is none).
func (ph *hwPhaser) slots(i int) (int, int) {
	if !ph.calendar {
		if ph.p2 == 0 {
			return i % ph.p1, 0
		}
		return i % ph.p1, i % ph.p2
	}
	if i < len(ph.cache) {
		return int(ph.cache[i][0]), int(ph.cache[i][1])
	}
	return ph.compute(i)
}

type hwModel struct {
	name                     string
	phase                    *hwPhaser
	alpha, delta, omega, phi float64
	level                    float64
	d, w                     []float64 // by slot of the first and second season (w is nil for one season)
	n                        int       // index of the next observation
	eprev                    float64   // last one-step base error
}

func (m *hwModel) Name() string { return m.name }

// observe updates the states with y and returns the base error ε (NaN when
// y is missing).
func (m *hwModel) observe(y float64) float64 {
	a, b := m.phase.slots(m.n)
	m.n++
	if math.IsNaN(y) {
		m.eprev *= m.phi
		return math.NaN()
	}
	d := m.d[a]
	var w float64
	if m.w != nil {
		w = m.w[b]
	}
	e := y - (m.level + d + w)
	m.level += m.alpha * e
	m.d[a] = d + m.delta*(y-m.level-w-d)
	if m.w != nil {
		m.w[b] = w + m.omega*(y-m.level-d-w)
	}
	m.eprev = e
	return e
}

func (m *hwModel) Observe(y float64) { m.observe(y) }

func (m *hwModel) Forecast(dst []float64) {
	ar := m.eprev
	for h := range dst {
		ar *= m.phi
		a, b := m.phase.slots(m.n + h)
		v := m.level + m.d[a] + ar
		if m.w != nil {
			v += m.w[b]
		}
		dst[h] = v
	}
}

// hwInit returns the starting level and seasonal states: the level is the
// mean of the first two longest seasons, each first-season slot the mean of
// its buckets there minus the level, each second-season slot the mean of
// its buckets minus their first-season state and the level. Slots without
// data start at 0.
func hwInit(y []float64, ph *hwPhaser) (level float64, d, w []float64) {
	head := y[:2*max(ph.p1, ph.p2)]
	level, _ = fcMean(head)
	d = fcSlotMeans(head, ph.p1, func(i int) (int, float64) {
		a, _ := ph.slots(i)
		return a, 0
	})
	for j := range d {
		if !math.IsNaN(d[j]) {
			d[j] -= level
		} else {
			d[j] = 0
		}
	}
	if ph.p2 == 0 {
		return level, d, nil
	}
	w = fcSlotMeans(head, ph.p2, func(i int) (int, float64) {
		a, b := ph.slots(i)
		return b, d[a]
	})
	for j := range w {
		if !math.IsNaN(w[j]) {
			w[j] -= level
		} else {
			w[j] = 0
		}
	}
	return level, d, w
}

// fcSlotMeans is, per slot, the mean of y[i] − off over the finite y[i]
// whose slot is it (slotOf returns the slot and the offset); NaN for a slot
// without data.
func fcSlotMeans(y []float64, slots int, slotOf func(i int) (int, float64)) []float64 {
	sum, n := make([]float64, slots), make([]int, slots)
	for i, v := range y {
		if math.IsNaN(v) {
			continue
		}
		j, off := slotOf(i)
		sum[j] += v - off
		n[j]++
	}
	for j := range sum {
		if n[j] == 0 {
			sum[j] = math.NaN()
		} else {
			sum[j] /= float64(n[j])
		}
	}
	return sum
}

func fitHoltWinters(name string, s ForecastSeries, p1, p2 int) (Forecaster, error) {
	if p1 < 1 || (p2 != 0 && p2 <= p1) {
		panic(fmt.Sprintf("analytics: Holt-Winters periods %d, %d", p1, p2))
	}
	y := s.Values
	long := max(p1, p2)
	if need := 2*long + p1; len(y) < need {
		return nil, fmt.Errorf("%w: Holt-Winters with season %d needs %d buckets, have %d", ErrShortHistory, long, need, len(y))
	}
	ph := newPhaser(s, p1, p2)
	level, d0, w0 := hwInit(y, ph)
	omegas := fcOmegaGrid
	if p2 == 0 {
		omegas = []float64{0}
	}
	m := &hwModel{name: name, phase: ph, d: make([]float64, p1)}
	if p2 != 0 {
		m.w = make([]float64, p2)
	}
	reset := func(a, dl, om float64) {
		m.alpha, m.delta, m.omega, m.phi = a, dl, om, 0
		m.level, m.n, m.eprev = level, 0, 0
		copy(m.d, d0)
		copy(m.w, w0)
	}
	bestSSE := math.Inf(1)
	var best [4]float64
	for _, a := range fcAlphaGrid {
		for _, dl := range fcDeltaGrid {
			for _, om := range omegas {
				reset(a, dl, om)
				var sxy, sxx, syy float64
				prev := math.NaN()
				for i, v := range y {
					e := m.observe(v)
					if i >= long && !math.IsNaN(e) && !math.IsNaN(prev) {
						sxy += e * prev
						sxx += prev * prev
						syy += e * e
					}
					prev = e
				}
				phi := 0.0
				if sxx > 0 {
					phi = min(max(sxy/sxx, 0), 0.98)
				}
				// Σ(ε_t − φε_{t−1})² = Σε_t² − 2φΣε_tε_{t−1} + φ²Σε_{t−1}²
				sse := syy - 2*phi*sxy + phi*phi*sxx
				if sse < bestSSE {
					bestSSE, best = sse, [4]float64{a, dl, om, phi}
				}
			}
		}
	}
	reset(best[0], best[1], best[2])
	m.phi = best[3]
	for _, v := range y {
		m.observe(v)
	}
	return m, nil
}

// TimeOfWeekRegression is the least-squares regression of bucket energy on
// time-of-week indicators (hour of week for hourly buckets, quarter-hour of
// week for 15-minute buckets, weekday for daily ones) in the series'
// calendar, with exponentially decaying weights wᵢ = 2^(−age/halfLife)
// (age in buckets) so that a level drift (weather, production mix) is
// followed. With indicator columns the weighted normal equations are
// diagonal and the solution is the weighted mean of each cell,
//
//	β_c = Σ_{i∈c} wᵢ yᵢ / Σ_{i∈c} wᵢ,
//
// which is kept exactly up to date in O(1) per observation (each cell's sums
// decay lazily by 2^(−Δ/halfLife) since its last update). With fewer than
// three weeks of history the cells are bucket-of-day × {weekday, weekend}
// instead, so that every cell has several observations; an empty cell
// forecasts the weighted mean of all buckets. It needs half a half-life of
// history.
func TimeOfWeekRegression(halfLife int) ForecastModel {
	const name = "time_of_week_regression"
	return ForecastModel{Name: name, MinHistory: max(halfLife/2, 1), Fit: func(s ForecastSeries) (Forecaster, error) {
		if len(s.Values) == 0 {
			return nil, fmt.Errorf("%w: the time-of-week regression needs history", ErrShortHistory)
		}
		weekly := time.Duration(len(s.Values))*s.Step >= 21*24*time.Hour
		if s.Step == 24*time.Hour {
			weekly = len(s.Values) >= 21
		}
		m := &towModel{series: ForecastSeries{Start: s.Start, Step: s.Step}, weekly: weekly,
			decay: math.Pow(2, -1/float64(halfLife))}
		ncell := 2 * s.StepsPerDay()
		if weekly {
			ncell = 7 * s.StepsPerDay()
		}
		m.sum, m.weight, m.last = make([]float64, ncell+1), make([]float64, ncell+1), make([]int, ncell+1)
		for _, v := range s.Values {
			m.Observe(v)
		}
		return m, nil
	}}
}

type towModel struct {
	series ForecastSeries // geometry
	weekly bool
	decay  float64 // per-bucket weight factor 2^(−1/halfLife)
	// per cell, and the last slot for all buckets: decayed Σwy, Σw, and the
	// bucket index of the last update
	sum, weight []float64
	last        []int
	n           int
}

func (m *towModel) Name() string { return "time_of_week_regression" }

func (m *towModel) cell(i int) int {
	t := m.series.At(i)
	perDay := m.series.StepsPerDay()
	slot := 0
	if perDay > 1 {
		slot = (t.Hour()*60 + t.Minute()) / int(m.series.Step/time.Minute)
	}
	wd := int(t.Weekday())
	if m.weekly {
		return wd*perDay + slot
	}
	if wd == 0 || wd == 6 {
		return perDay + slot
	}
	return slot
}

func (m *towModel) add(c, i int, y float64) {
	f := math.Pow(m.decay, float64(i-m.last[c]))
	m.sum[c] = m.sum[c]*f + y
	m.weight[c] = m.weight[c]*f + 1
	m.last[c] = i
}

func (m *towModel) Observe(y float64) {
	i := m.n
	m.n++
	if math.IsNaN(y) {
		return
	}
	m.add(m.cell(i), i, y)
	m.add(len(m.sum)-1, i, y)
}

func (m *towModel) Forecast(dst []float64) {
	all := len(m.sum) - 1
	for h := range dst {
		c := m.cell(m.n + h)
		if m.weight[c] == 0 {
			c = all
		}
		if m.weight[c] == 0 {
			dst[h] = math.NaN()
			continue
		}
		dst[h] = m.sum[c] / m.weight[c]
	}
}

// SeasonalNaive forecasts each bucket by the value one season (lag buckets)
// earlier: ŷ_{t+h} = y_{t+h−k·lag} with k = ⌈h/lag⌉. Lag 1 is persistence. A
// missing value keeps the value of the season before it.
func SeasonalNaive(lag int) ForecastModel {
	name := fmt.Sprintf("seasonal_naive_lag%d", lag)
	return ForecastModel{Name: name, MinHistory: lag, Fit: func(s ForecastSeries) (Forecaster, error) {
		if len(s.Values) < lag {
			return nil, fmt.Errorf("%w: %s needs %d buckets, have %d", ErrShortHistory, name, lag, len(s.Values))
		}
		m := &naiveModel{name: name, ring: make([]float64, lag)}
		fill, _ := fcMean(s.Values)
		for i := range m.ring {
			m.ring[i] = fill
		}
		for _, v := range s.Values {
			m.Observe(v)
		}
		return m, nil
	}}
}

type naiveModel struct {
	name string
	ring []float64 // ring[i mod lag] = the latest value of that phase
	n    int
}

func (m *naiveModel) Name() string { return m.name }

func (m *naiveModel) Observe(y float64) {
	if !math.IsNaN(y) {
		m.ring[m.n%len(m.ring)] = y
	}
	m.n++
}

func (m *naiveModel) Forecast(dst []float64) {
	for h := range dst {
		dst[h] = m.ring[(m.n+h)%len(m.ring)]
	}
}
