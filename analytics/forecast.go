package analytics

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// ForecastSeries is a regularly spaced series of bucket totals (kWh per
// bucket), the input of every forecasting model.
type ForecastSeries struct {
	// Start is the start of the first bucket. Its Location is the calendar
	// that defines time of week (the factory's time zone).
	Start time.Time
	// Step is the bucket length. A Step of 24 h means calendar days in
	// Start's Location (23 or 25 hours long across a DST change).
	Step time.Duration
	// Values holds one total per bucket; NaN marks a missing bucket.
	Values []float64
}

// At returns the start of bucket i (i may be past the end of Values).
func (s ForecastSeries) At(i int) time.Time {
	if s.Step == 24*time.Hour {
		return s.Start.AddDate(0, 0, i)
	}
	return s.Start.Add(time.Duration(i) * s.Step)
}

// Head returns the series of the first n buckets (sharing Values).
func (s ForecastSeries) Head(n int) ForecastSeries {
	return ForecastSeries{Start: s.Start, Step: s.Step, Values: s.Values[:n:n]}
}

// StepsPerDay is the number of buckets in a day (1 for daily series).
func (s ForecastSeries) StepsPerDay() int {
	if s.Step >= 24*time.Hour {
		return 1
	}
	return int(24 * time.Hour / s.Step)
}

// Forecaster is a fitted model together with its state after the last
// observed bucket. It is not safe for concurrent use.
type Forecaster interface {
	// Name is the model's name as stored in energy_forecasts.model.
	Name() string
	// Observe consumes the value of the next bucket (NaN when missing).
	Observe(y float64)
	// Forecast fills dst with point forecasts for the next len(dst) buckets.
	Forecast(dst []float64)
}

// ForecastModel is a candidate model: how to fit it and how much history it
// needs.
type ForecastModel struct {
	Name string
	// MinHistory is the number of buckets Fit needs.
	MinHistory int
	// Fit returns the model fitted on s, with its state after s's last bucket.
	Fit func(s ForecastSeries) (Forecaster, error)
}

// ErrShortHistory is wrapped by the error of SelectForecastModel when the
// series is too short to backtest any candidate.
var ErrShortHistory = errors.New("too little history to forecast")

// ForecastPlan says how models are compared: every candidate forecasts
// Horizon buckets ahead from each of the last Origins origins (consecutive
// buckets), and its errors are compared with the actuals.
type ForecastPlan struct {
	Horizon    int
	Origins    int
	MinOrigins int // fewer usable origins than this is ErrShortHistory
	Candidates []ForecastModel
}

// HourlyForecastPlan is the 24-hour plan on hourly buckets: Holt-Winters
// with daily and weekly seasons (and daily only, for young machines), the
// time-of-week regression, and the seasonal-naive baselines at lags 24 and
// 168, backtested from every hour of the last 21 days.
func HourlyForecastPlan() ForecastPlan {
	return ForecastPlan{Horizon: 24, Origins: 21 * 24, MinOrigins: 48, Candidates: []ForecastModel{
		HoltWinters(24, 168), HoltWinters(24, 0), TimeOfWeekRegression(28 * 24),
		SeasonalNaive(24), SeasonalNaive(168),
	}}
}

// QuarterHourForecastPlan is the 1-hour plan on 15-minute buckets (4 steps):
// the same families with seasons of 96 and 672 buckets, plus persistence
// (lag 1), backtested from every bucket of the last 7 days.
func QuarterHourForecastPlan() ForecastPlan {
	return ForecastPlan{Horizon: 4, Origins: 7 * 96, MinOrigins: 96, Candidates: []ForecastModel{
		HoltWinters(96, 672), HoltWinters(96, 0), TimeOfWeekRegression(28 * 96),
		SeasonalNaive(1), SeasonalNaive(96), SeasonalNaive(672),
	}}
}

// DailyForecastPlan is the 7-day plan on daily totals: Holt-Winters with a
// weekly season, the day-of-week regression and seasonal-naive lag 7,
// backtested from each of the last 84 days (fewer when the history is
// shorter: daily errors are strongly autocorrelated, so more origins give
// intervals closer to their nominal coverage).
func DailyForecastPlan() ForecastPlan {
	return ForecastPlan{Horizon: 7, Origins: 84, MinOrigins: 14, Candidates: []ForecastModel{
		HoltWinters(7, 0), TimeOfWeekRegression(8 * 7), SeasonalNaive(7),
	}}
}

// ForecastScore is a candidate's backtest result: mean absolute error (kWh
// per bucket), mean absolute percentage error (over actuals > 0, in %) and
// the number of forecast errors behind them.
type ForecastScore struct {
	Model string  `json:"model"`
	MAE   float64 `json:"mae"`
	MAPE  float64 `json:"mape"`
	N     int     `json:"n"`
}

// ErrorQuantiles are the empirical quantiles of backtest errors
// (actual − forecast) at one horizon, the 2.5, 10, 90 and 97.5 percentiles.
type ErrorQuantiles struct {
	Q025, Q10, Q90, Q975 float64
	N                    int
}

// ForecastPoint is one forecast bucket: the point forecast and the 80 % and
// 95 % prediction interval, all in kWh per bucket and never below zero.
type ForecastPoint struct {
	Point, Lower80, Upper80, Lower95, Upper95 float64
}

// ForecastChoice is the model chosen for a series, fitted on all of it, with
// the error quantiles per horizon that make its intervals.
type ForecastChoice struct {
	Model   Forecaster
	Scores  []ForecastScore  // every candidate that could be backtested, in plan order
	Errors  []ErrorQuantiles // index h-1 for horizon h
	Horizon int
	series  ForecastSeries // geometry only
	next    int            // index of the next bucket to observe
	buf     []float64
}

// Next returns the start of the first bucket the next Predict forecasts.
func (c *ForecastChoice) Next() time.Time { return c.series.At(c.next) }

// Observe feeds the value of bucket Next() to the chosen model.
func (c *ForecastChoice) Observe(y float64) {
	c.Model.Observe(y)
	c.next++
}

// Predict forecasts the Horizon buckets from Next(). Intervals add the
// horizon's empirical error quantiles to the point forecast:
//
//	lower80 = ŷ + q₀.₁₀(e_h),  upper80 = ŷ + q₀.₉₀(e_h)  (95 %: q₀.₀₂₅, q₀.₉₇₅)
//
// and every value is clipped at zero (energy is not negative).
func (c *ForecastChoice) Predict() []ForecastPoint {
	if len(c.buf) != c.Horizon {
		c.buf = make([]float64, c.Horizon)
	}
	c.Model.Forecast(c.buf)
	out := make([]ForecastPoint, c.Horizon)
	for h, y := range c.buf {
		q := c.Errors[h]
		out[h] = ForecastPoint{
			Point:   max(y, 0),
			Lower80: max(y+q.Q10, 0), Upper80: max(y+q.Q90, 0),
			Lower95: max(y+q.Q025, 0), Upper95: max(y+q.Q975, 0),
		}
	}
	return out
}

// SelectForecastModel backtests every candidate of plan on s with rolling
// origins, chooses the one with the smallest mean absolute error (ties: the
// earlier candidate), and returns it fitted on all of s with the per-horizon
// quantiles of its backtest errors.
//
// At each origin o a candidate knows s.Values[:o] only: it is fitted on the
// history before the first origin and then observes one bucket at a time,
// exactly as it runs in production between daily refits. Candidates that
// need more history than the first origin offers are skipped; when none is
// left, or fewer than plan.MinOrigins origins fit, the error wraps
// ErrShortHistory.
func SelectForecastModel(s ForecastSeries, plan ForecastPlan) (*ForecastChoice, error) {
	n, H := len(s.Values), plan.Horizon
	minHist, maxHist := math.MaxInt, 0
	for _, m := range plan.Candidates {
		minHist, maxHist = min(minHist, m.MinHistory), max(maxHist, m.MinHistory)
	}
	// Keep every candidate when the history allows enough origins for it;
	// otherwise backtest the candidates that fit from more origins.
	origins := min(plan.Origins, n-H-maxHist+1)
	if origins < max(plan.MinOrigins, 1) {
		origins = min(plan.Origins, n-H-minHist+1)
	}
	if origins < max(plan.MinOrigins, 1) {
		return nil, fmt.Errorf("%w: %d buckets, need at least %d", ErrShortHistory, n, minHist+H+max(plan.MinOrigins, 1)-1)
	}
	first := n - H - origins + 1
	type result struct {
		model  ForecastModel
		score  ForecastScore
		errors [][]float64
	}
	var results []result
	for _, m := range plan.Candidates {
		if m.MinHistory > first {
			continue
		}
		errs, score, err := fcBacktest(s, m, first, H)
		if err != nil {
			return nil, fmt.Errorf("backtest %s: %w", m.Name, err)
		}
		if score.N == 0 {
			continue
		}
		results = append(results, result{m, score, errs})
	}
	if len(results) == 0 {
		return nil, fmt.Errorf("%w: no model could be backtested on %d buckets", ErrShortHistory, n)
	}
	best := 0
	for i, r := range results {
		if r.score.MAE < results[best].score.MAE {
			best = i
		}
	}
	model, err := results[best].model.Fit(s)
	if err != nil {
		return nil, fmt.Errorf("fit %s: %w", results[best].model.Name, err)
	}
	c := &ForecastChoice{Model: model, Horizon: H, series: ForecastSeries{Start: s.Start, Step: s.Step}, next: n}
	for _, r := range results {
		c.Scores = append(c.Scores, r.score)
	}
	for _, e := range results[best].errors {
		slices.Sort(e)
		c.Errors = append(c.Errors, ErrorQuantiles{
			Q025: fcQuantile(e, 0.025), Q10: fcQuantile(e, 0.10),
			Q90: fcQuantile(e, 0.90), Q975: fcQuantile(e, 0.975), N: len(e),
		})
	}
	return c, nil
}

// fcBacktest fits m on s.Values[:first] and forecasts H buckets from every
// origin first … n−H, observing one bucket between origins. It returns the
// errors (actual − forecast) per horizon and the summary score.
func fcBacktest(s ForecastSeries, m ForecastModel, first, H int) ([][]float64, ForecastScore, error) {
	f, err := m.Fit(s.Head(first))
	if err != nil {
		return nil, ForecastScore{}, err
	}
	y := s.Values
	errs := make([][]float64, H)
	pred := make([]float64, H)
	score := ForecastScore{Model: m.Name}
	var absSum, pctSum float64
	var pctN int
	for o := first; o+H <= len(y); o++ {
		if o > first {
			f.Observe(y[o-1])
		}
		f.Forecast(pred)
		for h := range H {
			a := y[o+h]
			if math.IsNaN(a) || math.IsNaN(pred[h]) {
				continue
			}
			e := a - pred[h]
			errs[h] = append(errs[h], e)
			absSum += math.Abs(e)
			score.N++
			if a > 0 {
				pctSum += math.Abs(e) / a
				pctN++
			}
		}
	}
	if score.N > 0 {
		score.MAE = absSum / float64(score.N)
	}
	if pctN > 0 {
		score.MAPE = 100 * pctSum / float64(pctN)
	}
	return errs, score, nil
}

// fcQuantile is the p-quantile of sorted xs by linear interpolation between
// order statistics at plotting positions k/(n+1) (Hyndman & Fan type 6, R's
// quantile(type = 6)): h = (n+1)p, Q = x₍⌊h⌋₎ + (h − ⌊h⌋)(x₍⌊h⌋+1₎ − x₍⌊h⌋₎),
// clamped to the sample's range. The k-th of n order statistics sits at the
// expected probability k/(n+1), so unlike type 7 it does not pull the tails
// inwards on the few dozen backtest errors a horizon may have. It is 0 for
// empty xs.
func fcQuantile(xs []float64, p float64) float64 {
	n := len(xs)
	if n == 0 {
		return 0
	}
	h := float64(n+1) * p // 1-based position
	lo := int(math.Floor(h))
	switch {
	case lo < 1:
		return xs[0]
	case lo >= n:
		return xs[n-1]
	}
	return xs[lo-1] + (h-float64(lo))*(xs[lo]-xs[lo-1])
}

// fcMean is the mean of the finite values of xs, and how many there were.
func fcMean(xs []float64) (float64, int) {
	var sum float64
	var n int
	for _, x := range xs {
		if !math.IsNaN(x) {
			sum += x
			n++
		}
	}
	if n == 0 {
		return 0, 0
	}
	return sum / float64(n), n
}

// ForecastMAPE is the mean absolute percentage error of forecasts against
// actuals, 100·mean(|a − f| / a), over the pairs with a > 0 and both values
// finite, and the number of such pairs.
func ForecastMAPE(actual, forecast []float64) (float64, int) {
	var sum float64
	var n int
	for i, a := range actual {
		f := forecast[i]
		if a > 0 && !math.IsNaN(f) && !math.IsNaN(a) {
			sum += math.Abs(a-f) / a
			n++
		}
	}
	if n == 0 {
		return math.NaN(), 0
	}
	return 100 * sum / float64(n), n
}
