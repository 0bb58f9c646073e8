package analytics

import (
	"math/rand/v2"
	"testing"
)

// benchRows are 2,160 hourly rows (90 days) of six drivers.
func benchRows() ([][]float64, []float64) {
	rng := rand.New(rand.NewPCG(1, 2160))
	x := make([][]float64, 2160)
	y := make([]float64, 2160)
	for i := range x {
		x[i] = []float64{rng.Float64() * 100, rng.Float64(), 7 + rng.NormFloat64(), rng.Float64() * 3, rng.Float64() * 10, rng.Float64() * 8}
		y[i] = 10 + 0.8*x[i][0] + 20*x[i][1] + 3*x[i][2] + 0.4*x[i][3] + 0.3*x[i][4] + 0.5*x[i][5] + 2*rng.NormFloat64()
	}
	return x, y
}

var benchCols = []string{"a", "b", "c", "d", "e", "f"}

// BenchmarkSlideOneHour is the rolling model's numeric work per closed
// hour: add the new hour, remove the one leaving the window, solve.
//
//	go test -run '^$' -bench 'SlideOneHour|BatchFit' ./analytics/
func BenchmarkSlideOneHour(b *testing.B) {
	x, y := benchRows()
	s := NewStats(benchCols)
	for i := range x {
		s.Add(x[i], y[i])
	}
	b.ResetTimer()
	for i := range b.N {
		j := i % len(x)
		if err := s.Remove(x[j], y[j]); err != nil {
			b.Fatal(err)
		}
		s.Add(x[j], y[j])
		if _, err := s.Fit(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBatchFit is the same model from scratch over 2,160 rows.
func BenchmarkBatchFit(b *testing.B) {
	x, y := benchRows()
	for range b.N {
		s := NewStats(benchCols)
		for i := range x {
			s.Add(x[i], y[i])
		}
		if _, err := s.Fit(); err != nil {
			b.Fatal(err)
		}
	}
}
