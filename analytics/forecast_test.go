package analytics

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// simLoad is a deterministic simulated hourly load (kWh per hour) of a
// one-shift plant: a weekday production shape, a short Saturday shift, a
// quiet Sunday, a weather-like drift (a 23-day swing plus a random walk)
// and AR(1) noise. It starts on Monday 2026-01-05 00:00 UTC.
func simLoad(seed uint64, days int) ForecastSeries {
	rng := rand.New(rand.NewPCG(seed, 1))
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	y := make([]float64, days*24)
	walk, ar := 0.0, 0.0
	for i := range y {
		t := start.Add(time.Duration(i) * time.Hour)
		if t.Hour() == 0 {
			walk += rng.NormFloat64() * 0.8
		}
		day := float64(i) / 24
		drift := 8*math.Sin(2*math.Pi*day/23) + walk
		ar = 0.6*ar + rng.NormFloat64()*4
		y[i] = max(simShape(t)+drift+ar, 0)
	}
	return ForecastSeries{Start: start, Step: time.Hour, Values: y}
}

// simShape is the noise-free load of hour t.
func simShape(t time.Time) float64 {
	h := t.Hour()
	switch t.Weekday() {
	case time.Saturday:
		if h >= 7 && h < 14 {
			return 55
		}
		return 40
	case time.Sunday:
		return 38
	}
	switch {
	case h < 6:
		return 40
	case h == 6:
		return 70
	case h == 12:
		return 85
	case h < 18:
		return 100
	case h < 22:
		return 60
	}
	return 45
}

// TestDayAheadBeatsSeasonalNaive holds out the last 14 of 90 simulated days
// and forecasts them as the service does: the model is chosen and fitted
// again at each midnight on everything before it, then observes each hour
// and forecasts the next 24 from every hour. Its day-ahead MAPE must be
// below both seasonal-naive baselines on the same targets (lag 24: the same
// hour a day before the target; lag 168: a week before), and the 80 %
// interval must cover between 70 % and 90 % of the held-out actuals.
func TestDayAheadBeatsSeasonalNaive(t *testing.T) {
	t.Parallel()
	for _, seed := range []uint64{1, 2, 3} {
		s := simLoad(seed, 90)
		n := len(s.Values)
		holdout := n - 14*24
		var act, model, lag24, lag168 []float64
		var in80, in95, total int
		var chosen map[string]int = map[string]int{}
		for day := range 14 {
			dayStart := holdout + 24*day
			c, err := SelectForecastModel(s.Head(dayStart), HourlyForecastPlan())
			if err != nil {
				t.Fatalf("seed %d day %d: %v", seed, day, err)
			}
			chosen[c.Model.Name()]++
			for o := dayStart; o < dayStart+24; o++ {
				if o > dayStart {
					c.Observe(s.Values[o-1])
				}
				for h, p := range c.Predict() {
					tgt := o + h
					if tgt >= n {
						break
					}
					a := s.Values[tgt]
					act = append(act, a)
					model = append(model, p.Point)
					lag24 = append(lag24, s.Values[tgt-24])
					lag168 = append(lag168, s.Values[tgt-168])
					total++
					if a >= p.Lower80 && a <= p.Upper80 {
						in80++
					}
					if a >= p.Lower95 && a <= p.Upper95 {
						in95++
					}
				}
			}
		}
		mm, _ := ForecastMAPE(act, model)
		m24, _ := ForecastMAPE(act, lag24)
		m168, _ := ForecastMAPE(act, lag168)
		cov80 := float64(in80) / float64(total)
		cov95 := float64(in95) / float64(total)
		t.Logf("seed %d: models %v; MAPE model %.2f %%, lag24 %.2f %%, lag168 %.2f %%; coverage 80 %% = %.3f, 95 %% = %.3f over %d forecasts",
			seed, chosen, mm, m24, m168, cov80, cov95, total)
		if !(mm < m24 && mm < m168) {
			t.Errorf("seed %d: day-ahead MAPE %.2f %% is not below lag-24 %.2f %% and lag-168 %.2f %%", seed, mm, m24, m168)
		}
		if cov80 < 0.70 || cov80 > 0.90 {
			t.Errorf("seed %d: 80 %% interval covered %.3f of held-out actuals, want 0.70–0.90", seed, cov80)
		}
	}
}

// TestHoltWintersReproducesExactSeasons: a noise-free series that is a
// constant plus a daily and a weekly shape is decomposed exactly by the
// initial states (level = mean, daily = hour-of-day means − level, weekly =
// hour-of-week means − daily − level), every one-step error is zero, and the
// forecast of any horizon equals the shape.
func TestHoltWintersReproducesExactSeasons(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	y := make([]float64, 5*168)
	for i := range y {
		y[i] = simShape(start.Add(time.Duration(i) * time.Hour))
	}
	f, err := HoltWinters(24, 168).Fit(ForecastSeries{Start: start, Step: time.Hour, Values: y})
	if err != nil {
		t.Fatal(err)
	}
	got := make([]float64, 200)
	f.Forecast(got)
	for h, g := range got {
		want := simShape(start.Add(time.Duration(len(y)+h) * time.Hour))
		if math.Abs(g-want) > 1e-9 {
			t.Fatalf("horizon %d: forecast %.12f, shape %.12f", h+1, g, want)
		}
	}
}

// TestSeasonalNaive: the forecast of bucket t+h is the value ⌈h/lag⌉
// seasons before it.
func TestSeasonalNaive(t *testing.T) {
	t.Parallel()
	s := ForecastSeries{Start: time.Unix(0, 0).UTC(), Step: time.Hour, Values: []float64{1, 2, 3, 4, 5}}
	f, err := SeasonalNaive(3).Fit(s)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]float64, 5)
	f.Forecast(got)
	// Next index 5; lag 3: indexes 2,3,4 then 2,3 again (⌈h/3⌉ = 2 seasons back).
	want := []float64{3, 4, 5, 3, 4}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("forecast %v, want %v", got, want)
		}
	}
	f.Observe(math.NaN()) // index 5 missing: keeps index 2's value for its phase
	f.Forecast(got[:3])
	if want := []float64{4, 5, 3}; got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("after a missing value: %v, want %v", got[:3], want)
	}
}

// TestTimeOfWeekWeightedMean: with a half-life of one week, last week's
// value in a cell weighs 1 and the week before ½, so the cell's forecast is
// (b + a/2) / (1 + ½).
func TestTimeOfWeekWeightedMean(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC) // a Monday
	y := make([]float64, 3*168)
	for i := range y {
		y[i] = float64(i / 168 * 10) // weeks: 0, 10, 20
	}
	f, err := TimeOfWeekRegression(168).Fit(ForecastSeries{Start: start, Step: time.Hour, Values: y})
	if err != nil {
		t.Fatal(err)
	}
	got := make([]float64, 1)
	f.Forecast(got)
	// weights ¼, ½, 1 for weeks 0, 10, 20: (0·¼ + 10·½ + 20) / 1.75
	want := (10*0.5 + 20) / 1.75
	if math.Abs(got[0]-want) > 1e-12 {
		t.Fatalf("forecast %.15f, want %.15f", got[0], want)
	}
}

// TestQuantileType7 checks against R: quantile(1:10, 0.1) = 1.9 and
// quantile(c(1,2,3,4), 0.975) = 3.925 (type 7, the default).
func TestQuantileType7(t *testing.T) {
	t.Parallel()
	if q := fcQuantile([]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.1); math.Abs(q-1.9) > 1e-12 {
		t.Errorf("q(0.1) = %v, want 1.9", q)
	}
	if q := fcQuantile([]float64{1, 2, 3, 4}, 0.975); math.Abs(q-3.925) > 1e-12 {
		t.Errorf("q(0.975) = %v, want 3.925", q)
	}
}

// TestShortHistory: three days of hourly data cannot be backtested
// (the candidate needing least history, lag 24, needs 24 + 24 + 47 = 95
// buckets for 48 origins; there are 72).
func TestShortHistory(t *testing.T) {
	t.Parallel()
	_, err := SelectForecastModel(simLoad(1, 3), HourlyForecastPlan())
	if !errors.Is(err, ErrShortHistory) {
		t.Fatalf("err = %v, want ErrShortHistory", err)
	}
}

// BenchmarkSelectHourly is the daily refit: choose and fit the hourly model
// on 90 days.
func BenchmarkSelectHourly(b *testing.B) {
	s := simLoad(1, 90)
	for b.Loop() {
		if _, err := SelectForecastModel(s, HourlyForecastPlan()); err != nil {
			b.Fatal(err)
		}
	}
}
