package analytics

import (
	"math"
	"math/rand/v2"
	"testing"
)

func gaussianRows(rng *rand.Rand, n, dims int) [][]float64 {
	rows := make([][]float64, n)
	for i := range rows {
		rows[i] = make([]float64, dims)
		for d := range rows[i] {
			rows[i][d] = rng.NormFloat64()
		}
	}
	return rows
}

func TestIsolationForestDeterministic(t *testing.T) {
	t.Parallel()
	rows := gaussianRows(rand.New(rand.NewPCG(1, 1)), 500, 4)
	a, err := FitIsolationForest(rows, ForestConfig{Seed: 42})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := FitIsolationForest(rows, ForestConfig{Seed: 42})
	c, _ := FitIsolationForest(rows, ForestConfig{Seed: 43})
	if a.Fingerprint() != b.Fingerprint() {
		t.Error("same seed, different trees")
	}
	if a.Fingerprint() == c.Fingerprint() {
		t.Error("different seeds, same trees")
	}
	probe := gaussianRows(rand.New(rand.NewPCG(2, 2)), 50, 4)
	same := 0
	for _, x := range probe {
		if a.Score(x) != b.Score(x) {
			t.Fatalf("same seed, different score for %v", x)
		}
		if a.Score(x) == c.Score(x) {
			same++
		}
	}
	if same == len(probe) {
		t.Error("another seed scored every probe identically")
	}
	if a.Threshold(0.001) != b.Threshold(0.001) {
		t.Error("same seed, different threshold")
	}
}

func TestIsolationForestRanksOutliers(t *testing.T) {
	t.Parallel()
	rows := gaussianRows(rand.New(rand.NewPCG(3, 3)), 1000, 3)
	f, err := FitIsolationForest(rows, ForestConfig{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	inlier := f.Score([]float64{0, 0, 0})
	outlier := f.Score([]float64{5, 5, 5})
	// A point 5σ out in every coordinate (8.7σ from the centre, far beyond
	// any of the 1000 training rows) is isolated in a few splits; the
	// centre needs about c(256) ≈ 10.2 (s ≈ 0.5 or less).
	t.Logf("centre %.3f, outlier %.3f, threshold(0.0005) %.3f", inlier, outlier, f.Threshold(0.0005))
	if !(outlier > 0.7 && inlier < 0.5) {
		t.Errorf("scores: centre %.3f, outlier %.3f; want < 0.5 and > 0.7", inlier, outlier)
	}
	if outlier <= f.Threshold(0.0005) {
		t.Errorf("outlier %.3f under the 0.0005 threshold %.3f", outlier, f.Threshold(0.0005))
	}
}

func TestAvgPathLength(t *testing.T) {
	t.Parallel()
	// c(256) = 2(ln 255 + 0.5772157) − 2·255/256 = 2·6.1184797 − 1.9921875 = 10.2447719.
	if got := avgPathLength(256); math.Abs(got-10.2447719) > 1e-6 {
		t.Errorf("c(256) = %v, want 10.2447719", got)
	}
	if avgPathLength(1) != 0 || avgPathLength(2) != 1 {
		t.Error("c(1) must be 0, c(2) must be 1")
	}
}

// TestIsolationForestCalibratedRate trains on N(0, I) hours and checks that
// fresh hours of the same distribution are flagged at the target rate
// (within 2×), both where the empirical quantile is used (rate 0.01 on 2000
// training rows: 20 above it) and where the tail is extrapolated (rate
// 0.0005 on 720 rows: 0.36 above it).
func TestIsolationForestCalibratedRate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		n    int
		rate float64
	}{{2000, 0.01}, {720, 0.0005}} {
		rows := gaussianRows(rand.New(rand.NewPCG(5, uint64(c.n))), c.n, 5)
		f, err := FitIsolationForest(rows, ForestConfig{Seed: 9})
		if err != nil {
			t.Fatal(err)
		}
		th := f.Threshold(c.rate)
		fresh := rand.New(rand.NewPCG(6, uint64(c.n)))
		const trials = 100_000
		x := make([]float64, 5)
		flagged := 0
		for range trials {
			for d := range x {
				x[d] = fresh.NormFloat64()
			}
			if f.Score(x) >= th {
				flagged++
			}
		}
		want := c.rate * trials
		t.Logf("n=%d rate=%v: threshold %.4f, flagged %d of %d (expected %.0f)", c.n, c.rate, th, flagged, trials, want)
		if r := float64(flagged) / want; r < 0.5 || r > 2 {
			t.Errorf("n=%d rate=%v: flagged %d, not within 2× of %.0f", c.n, c.rate, flagged, want)
		}
	}
}

func TestIsolationForestRejectsBadInput(t *testing.T) {
	t.Parallel()
	if _, err := FitIsolationForest(gaussianRows(rand.New(rand.NewPCG(1, 1)), MinForestSamples-1, 2), ForestConfig{}); err == nil {
		t.Error("too few rows accepted")
	}
	rows := gaussianRows(rand.New(rand.NewPCG(1, 1)), 100, 2)
	rows[7][1] = math.NaN()
	if _, err := FitIsolationForest(rows, ForestConfig{}); err == nil {
		t.Error("NaN feature accepted")
	}
}
