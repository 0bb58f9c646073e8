package analytics

import (
	"math"
	"slices"
)

// MADScale is 1/Φ⁻¹(3/4): it makes the median absolute deviation a
// consistent estimator of σ for normal data.
const MADScale = 1.482602218505602

// MeanAbsScale is √(π/2): it makes the mean absolute deviation a consistent
// estimator of σ for normal data.
const MeanAbsScale = 1.2533141373155003

// MinRobustSamples is the fewest history values RobustStats accepts.
const MinRobustSamples = 24

// Robust is the robust location and scale of a signal's recent normal hours.
type Robust struct {
	N      int     `json:"n"`
	Median float64 `json:"median"`
	// Scale is MADScale·MAD, or MeanAbsScale·(mean absolute deviation
	// from the median) when the MAD is zero (a signal that mostly repeats
	// one value).
	Scale float64 `json:"scale"`
}

// RobustStats returns the median and robust scale of values (NaNs skipped).
// ok is false with fewer than MinRobustSamples values or a zero scale (a
// constant signal cannot say what is unusual). values is not modified.
func RobustStats(values []float64) (r Robust, ok bool) {
	xs := make([]float64, 0, len(values))
	for _, v := range values {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			xs = append(xs, v)
		}
	}
	if len(xs) < MinRobustSamples {
		return Robust{N: len(xs)}, false
	}
	med := median(xs)
	dev := make([]float64, len(xs))
	var sumAbs float64
	for i, v := range xs {
		dev[i] = math.Abs(v - med)
		sumAbs += dev[i]
	}
	scale := MADScale * median(dev)
	if scale == 0 {
		scale = MeanAbsScale * sumAbs / float64(len(xs))
	}
	r = Robust{N: len(xs), Median: med, Scale: scale}
	return r, scale > 0
}

// Z returns (x − Median) / Scale.
func (r Robust) Z(x float64) float64 { return (x - r.Median) / r.Scale }

// median returns the median of xs (reordering xs) in expected linear time
// by selection, not sorting: the mean of the two middle order statistics
// when len(xs) is even.
func median(xs []float64) float64 {
	n := len(xs)
	hi := selectKth(xs, n/2)
	if n%2 == 1 {
		return hi
	}
	// After selection every element left of n/2 is ≤ hi: the largest of
	// them is the other middle value.
	return (slices.Max(xs[:n/2]) + hi) / 2
}

// selectKth reorders xs so that xs[k] is the k-th smallest (0-based), every
// element before it ≤ it and every one after ≥ it (Hoare's quickselect with
// a median-of-three pivot), and returns xs[k].
func selectKth(xs []float64, k int) float64 {
	lo, hi := 0, len(xs)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		if xs[mid] < xs[lo] {
			xs[mid], xs[lo] = xs[lo], xs[mid]
		}
		if xs[hi] < xs[lo] {
			xs[hi], xs[lo] = xs[lo], xs[hi]
		}
		if xs[hi] < xs[mid] {
			xs[hi], xs[mid] = xs[mid], xs[hi]
		}
		pivot := xs[mid]
		i, j := lo, hi
		for i <= j {
			for xs[i] < pivot {
				i++
			}
			for xs[j] > pivot {
				j--
			}
			if i <= j {
				xs[i], xs[j] = xs[j], xs[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return xs[k]
		}
	}
	return xs[k]
}

// Tail says which side of a signal is anomalous.
type Tail int

// Tails of a process signal.
const (
	TwoSided Tail = iota // both (pressure)
	Upper                // only high values (temperature, vibration)
)

// SignalVerdict is a process signal's judgement of one hour.
type SignalVerdict struct {
	Z         float64
	Opens     bool
	Direction Direction
	PValue    float64 // in-control probability of a deviation at least this large
}

// ScoreSignal judges robust z of a process signal against the detector's
// share of the budget: |z| ≥ InstantZ for a two-sided signal, z ≥ OneSidedZ
// for an upper one.
func (c Calibration) ScoreSignal(z float64, tail Tail) SignalVerdict {
	v := SignalVerdict{Z: z, Direction: 1}
	if z < 0 {
		v.Direction = -1
	}
	switch tail {
	case Upper:
		v.PValue = OneSidedPValue(z)
		v.Opens = z >= c.OneSidedZ
	default:
		v.PValue = TwoSidedPValue(z)
		v.Opens = math.Abs(z) >= c.InstantZ
	}
	return v
}
