package analytics

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestTwoSidedNormalQuantile(t *testing.T) {
	t.Parallel()
	// Reference values from R: qnorm(1 - 0.0005/2) = 3.480756404, qnorm(0.975) = 1.959963985.
	for _, c := range []struct{ rate, want float64 }{{0.0005, 3.480756404}, {0.05, 1.959963985}} {
		if got := TwoSidedNormalQuantile(c.rate); math.Abs(got-c.want) > 1e-8 {
			t.Errorf("TwoSidedNormalQuantile(%v) = %.10f, want %.10f (R qnorm)", c.rate, got, c.want)
		}
		// Round trip through the p-value.
		if p := TwoSidedPValue(TwoSidedNormalQuantile(c.rate)); math.Abs(p-c.rate)/c.rate > 1e-9 {
			t.Errorf("TwoSidedPValue(quantile(%v)) = %v", c.rate, p)
		}
	}
}

func TestSiegmundARLKnownAnswers(t *testing.T) {
	t.Parallel()
	// Closed form by hand, k = 0.5, μ = 0, Δ = −0.5:
	// h = 4: b = 5.166, ARL = (e^5.166 − 5.166 − 1)/(2·0.25) = (175.21258 − 6.166)/0.5 = 338.0932
	// h = 5: b = 6.166, ARL = (e^6.166 − 7.166)/0.5 = (476.27718 − 7.166)/0.5 = 938.2224
	// (exponentials from Python's math.exp).
	// Montgomery (SQC, Table 9.3) gives the two-sided ARL0 as 168 (h = 4) and 465 (h = 5),
	// i.e. one-sided 336 and 930: Siegmund is within 1 %.
	for _, c := range []struct{ h, closed, table float64 }{{4, 338.0932, 336}, {5, 938.2224, 930}} {
		got := SiegmundARL(0, 0.5, c.h)
		if math.Abs(got-c.closed) > 1e-3 {
			t.Errorf("SiegmundARL(0, 0.5, %v) = %.3f, want %.2f (closed form)", c.h, got, c.closed)
		}
		if math.Abs(got-c.table)/c.table > 0.01 {
			t.Errorf("SiegmundARL(0, 0.5, %v) = %.1f, more than 1%% from Montgomery's %v", c.h, got, c.table)
		}
	}
	// Δ = 0 (μ = k): ARL = b² = (4 + 1.166)² = 26.687556.
	if got := SiegmundARL(0.5, 0.5, 4); math.Abs(got-26.687556) > 1e-9 {
		t.Errorf("SiegmundARL at Δ = 0 = %v, want 26.687556", got)
	}
	// Out of control μ = 1.5 (shift 1.5σ), h = 4: Δ = 1, b = 5.166,
	// ARL = (e^−10.332 + 10.332 − 1)/2 = 4.66603; Montgomery lists 4.75 (two-sided table, one shift side).
	if got := SiegmundARL(1.5, 0.5, 4); math.Abs(got-4.66603) > 1e-4 {
		t.Errorf("SiegmundARL(1.5, 0.5, 4) = %v, want 4.66603", got)
	}
}

func TestCUSUMIntervalInvertsARL(t *testing.T) {
	t.Parallel()
	for _, arl := range []float64{100, 2000, 28000} {
		h := CUSUMInterval(0.5, arl)
		if got := SiegmundARL(0, 0.5, h); math.Abs(got-arl)/arl > 1e-9 {
			t.Errorf("ARL at CUSUMInterval(0.5, %v) = %v", arl, got)
		}
	}
	// h for ARL 338.0932 is 4 (the known answer above).
	if h := CUSUMInterval(0.5, 338.0932); math.Abs(h-4) > 1e-5 {
		t.Errorf("CUSUMInterval(0.5, 338.0932) = %v, want 4", h)
	}
}

func TestCalibrateDefaults(t *testing.T) {
	t.Parallel()
	c, err := Calibrate(DefaultAnomalyConfig())
	if err != nil {
		t.Fatal(err)
	}
	a := 0.0005 / 7
	t.Logf("instant z %.4f, one-sided z %.4f, energy h %.4f, efficiency h %.4f", c.InstantZ, c.OneSidedZ, c.EnergyH, c.EfficiencyH)
	if math.Abs(c.PerDetector-a) > 1e-15 {
		t.Errorf("per-detector rate %v, want α/7 = %v", c.PerDetector, a)
	}
	// Python statistics.NormalDist().inv_cdf(1 - 0.0005/14) = 3.971476421,
	// inv_cdf(1 - 0.0005/7) = 3.803168454.
	if math.Abs(c.InstantZ-3.971476421) > 1e-8 || math.Abs(c.OneSidedZ-3.803168454) > 1e-8 {
		t.Errorf("thresholds instant %.9f one-sided %.9f, want 3.971476421 and 3.803168454", c.InstantZ, c.OneSidedZ)
	}
	// Each side of the energy CUSUM runs 2/a = 28000 hours in control.
	if arl := SiegmundARL(0, 0.5, c.EnergyH); math.Abs(arl-2/a)/(2/a) > 1e-9 {
		t.Errorf("energy CUSUM one-sided ARL %v, want %v", arl, 2/a)
	}
	if arl := SiegmundARL(0, 0.25, c.EfficiencyH); math.Abs(arl-1/a)/(1/a) > 1e-9 {
		t.Errorf("efficiency CUSUM ARL %v, want %v", arl, 1/a)
	}
	bad := DefaultAnomalyConfig()
	bad.Contamination = 0
	if _, err := Calibrate(bad); err == nil {
		t.Error("contamination 0 accepted")
	}
	bad = DefaultAnomalyConfig()
	bad.CriticalSigma = 1
	if _, err := Calibrate(bad); err == nil {
		t.Error("critical below warning accepted")
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	c, _ := Calibrate(DefaultAnomalyConfig())
	for _, x := range []struct {
		z    float64
		want Severity
	}{{0, SeverityNormal}, {1.99, SeverityNormal}, {-2, SeverityWarning}, {2.99, SeverityWarning}, {3, SeverityCritical}, {-7, SeverityCritical}} {
		if got := c.Classify(x.z); got != x.want {
			t.Errorf("Classify(%v) = %v, want %v", x.z, got, x.want)
		}
	}
}

// TestCUSUMRunLengthBySimulation checks the Siegmund-calibrated interval
// against simulated in-control run lengths of a one-sided CUSUM.
func TestCUSUMRunLengthBySimulation(t *testing.T) {
	t.Parallel()
	const target = 500.0
	h := CUSUMInterval(0.5, target)
	rng := rand.New(rand.NewPCG(1, 2))
	const runs = 4000
	var total float64
	for range runs {
		s, n := 0.0, 0
		for {
			n++
			s = math.Max(0, s+rng.NormFloat64()-0.5)
			if s > h {
				break
			}
		}
		total += float64(n)
	}
	mean := total / runs
	// Run lengths are near-geometric: sd ≈ mean, so the standard error of
	// the mean is ≈ 500/√4000 ≈ 7.9; ±8 % (40) is five standard errors and
	// covers Siegmund's own error (< 1 % at these h, see the known answers).
	if math.Abs(mean-target)/target > 0.08 {
		t.Errorf("simulated ARL %.1f, want %v ± 8 %%", mean, target)
	}
}

// TestFalseAlarmRateOnNormalResiduals runs every z-based detector on
// independent N(0,1) hours (energy z, its efficiency CUSUM, and three
// process-signal z) and counts hours in which any detector opens an episode.
// Their budget is 6 of the 7 shares: 6α/7 per hour.
func TestFalseAlarmRateOnNormalResiduals(t *testing.T) {
	t.Parallel()
	c, _ := Calibrate(DefaultAnomalyConfig())
	rng := rand.New(rand.NewPCG(7, 11))
	const hours = 3_000_000
	var st CUSUMState
	alarms, energyAlarms := 0, 0
	for range hours {
		z := rng.NormFloat64()
		ev := c.ScoreEnergy(&st, z)
		eff, _ := c.ScoreEfficiency(&st, z)
		p := c.ScoreSignal(rng.NormFloat64(), TwoSided)
		tmp := c.ScoreSignal(rng.NormFloat64(), Upper)
		vib := c.ScoreSignal(rng.NormFloat64(), Upper)
		if ev.Opens() {
			energyAlarms++
		}
		if ev.Opens() || eff || p.Opens || tmp.Opens || vib.Opens {
			alarms++
		}
	}
	// Expected: 3e6 · 6 · 0.0005/7 ≈ 1286 alarms; the test asks for within 2×.
	want := hours * 6 * c.PerDetector
	rate := float64(alarms) / want
	t.Logf("alarms %d, expected %.0f (ratio %.2f); energy alone %d, expected %.0f",
		alarms, want, rate, energyAlarms, hours*2*c.PerDetector)
	if rate < 0.5 || rate > 2 {
		t.Errorf("false-alarm count %d is not within 2× of %.0f", alarms, want)
	}
	if r := float64(energyAlarms) / (hours * 2 * c.PerDetector); r < 0.5 || r > 2 {
		t.Errorf("energy false alarms %d not within 2× of %.0f", energyAlarms, hours*2*c.PerDetector)
	}
}

// TestEnergyDetectsShifts: a 6σ hour opens at once; a persistent 1.5σ shift
// opens through the CUSUM within a day (Siegmund: out-of-control ARL at
// μ = 1.5 for the default h ≈ 8.38 is about 9 hours).
func TestEnergyDetectsShifts(t *testing.T) {
	t.Parallel()
	c, _ := Calibrate(DefaultAnomalyConfig())
	var st CUSUMState
	v := c.ScoreEnergy(&st, 6)
	if !v.Instant || v.Direction != 1 || st.EnergyHigh != 0 {
		t.Errorf("6σ hour: %+v, state %+v; want an instant upward signal and a restarted CUSUM", v, st)
	}
	st = CUSUMState{}
	rng := rand.New(rand.NewPCG(3, 4))
	delays := 0.0
	const trials = 500
	for range trials {
		st = CUSUMState{}
		for n := 1; ; n++ {
			v := c.ScoreEnergy(&st, 1.5+rng.NormFloat64())
			if v.Opens() {
				if v.Direction != 1 {
					t.Fatalf("upward shift signalled downward")
				}
				delays += float64(n)
				break
			}
		}
	}
	arl := SiegmundARL(1.5, 0.5, c.EnergyH)
	mean := delays / trials
	t.Logf("1.5σ shift: mean delay %.2f h, Siegmund %.2f h", mean, arl)
	if mean > 24 || math.Abs(mean-arl)/arl > 0.2 {
		t.Errorf("mean detection delay %.2f h; want within 20 %% of Siegmund's %.2f and under a day", mean, arl)
	}
}

func TestRobustStatsKnownAnswer(t *testing.T) {
	t.Parallel()
	// 1..25: median 13; |i − 13| sorted = 0,1,1,2,2,…,12,12, whose median
	// (13th value) is 6; scale = 1.482602·6 = 8.895613.
	xs := make([]float64, 25)
	for i := range xs {
		xs[i] = float64(i + 1)
	}
	r, ok := RobustStats(xs)
	if !ok || r.Median != 13 || math.Abs(r.Scale-6*MADScale) > 1e-12 {
		t.Errorf("RobustStats(1..25) = %+v ok=%v, want median 13 scale %v", r, ok, 6*MADScale)
	}
	if z := r.Z(13 + 2*r.Scale); math.Abs(z-2) > 1e-12 {
		t.Errorf("Z = %v, want 2", z)
	}
	// One outlier does not move them.
	xs[24] = 1e6
	if r2, _ := RobustStats(xs); r2.Median != 13 || r2.Scale != r.Scale {
		t.Errorf("outlier moved the robust stats: %+v", r2)
	}
	// Mostly constant: MAD 0, mean absolute deviation used. 30 values, 27 of
	// them 5 and three 8: median 5, mean |dev| = 9/30 = 0.3, scale 0.3·√(π/2).
	c := make([]float64, 30)
	for i := range c {
		c[i] = 5
	}
	c[0], c[1], c[2] = 8, 8, 8
	if r3, ok := RobustStats(c); !ok || math.Abs(r3.Scale-0.3*MeanAbsScale) > 1e-12 {
		t.Errorf("mostly constant: %+v ok=%v, want scale %v", r3, ok, 0.3*MeanAbsScale)
	}
	if _, ok := RobustStats(c[3:]); ok {
		t.Error("a constant signal gave a usable scale")
	}
	if _, ok := RobustStats(xs[:MinRobustSamples-1]); ok {
		t.Error("too few samples accepted")
	}
}

func TestScoreSignalTails(t *testing.T) {
	t.Parallel()
	c, _ := Calibrate(DefaultAnomalyConfig())
	if v := c.ScoreSignal(-4.5, TwoSided); !v.Opens || v.Direction != -1 {
		t.Errorf("pressure drop of 4.5σ: %+v", v)
	}
	if v := c.ScoreSignal(-4.5, Upper); v.Opens {
		t.Errorf("a low temperature opened an upper-tail detector: %+v", v)
	}
	if v := c.ScoreSignal(3.9, Upper); !v.Opens {
		t.Errorf("3.9σ above the one-sided threshold 3.803 did not open: %+v", v)
	}
}

func TestConfidenceAndEquivalentZ(t *testing.T) {
	t.Parallel()
	// 1 − p at z = 1.959964 is 0.95 (R: 2*pnorm(-1.959964) = 0.05).
	if got := ConfidenceFromP(TwoSidedPValue(1.959963985)); math.Abs(got-0.95) > 1e-9 {
		t.Errorf("confidence at 1.96σ = %v, want 0.95", got)
	}
	if ConfidenceFromP(2) != 0 || ConfidenceFromP(-1) != 1 || ConfidenceFromP(math.NaN()) != 0 {
		t.Error("confidence not clamped to [0, 1]")
	}
	if z := EquivalentZ(0.05); math.Abs(z-1.959963985) > 1e-8 {
		t.Errorf("EquivalentZ(0.05) = %v", z)
	}
}

// TestMedianBySelection compares the selection median with sorting on
// random samples of every length from 1 to 60, with ties.
func TestMedianBySelection(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(8, 8))
	for n := 1; n <= 60; n++ {
		for range 20 {
			xs := make([]float64, n)
			for i := range xs {
				xs[i] = float64(rng.IntN(10))
			}
			sorted := slices.Clone(xs)
			slices.Sort(sorted)
			want := sorted[n/2]
			if n%2 == 0 {
				want = (sorted[n/2-1] + sorted[n/2]) / 2
			}
			if got := median(xs); got != want {
				t.Fatalf("median of %v = %v, want %v", sorted, got, want)
			}
		}
	}
}
