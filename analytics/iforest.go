package analytics

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Isolation Forest (Liu, Ting and Zhou, "Isolation Forest", ICDM 2008): a
// point that random axis-parallel splits isolate in few steps is unusual.
// The anomaly score of x is
//
//	s(x) = 2^(−E[h(x)] / c(ψ)),  c(n) = 2H(n−1) − 2(n−1)/n,  H(i) ≈ ln i + γ,
//
// with h(x) the path length in one tree (plus c(size) at a leaf that was not
// split further) and ψ the subsample size. The forest is deterministic: the
// same data, configuration and seed give the same trees and scores (PCG
// generator of math/rand/v2).
//
// Its alarm threshold is calibrated, not a fixed share of any window: each
// training point is scored out of bag (only by trees whose subsample did not
// contain it), and the threshold is the 1 − rate quantile of those scores.
// When the sample is too small to hold that quantile (n·rate < TailExceedances)
// the upper tail is extrapolated peaks-over-threshold style: the top
// m = max(TailExceedances, 5 % of n) scores above u (the next score below
// them) are taken as exponential with mean β, so P(S > u + t) ≈ (m/n)·e^(−t/β)
// and the threshold is u + β·ln(m / (n·rate)).

// TailExceedances is the fewest scores the tail model is fitted to.
const TailExceedances = 10

// MinForestSamples is the fewest training rows FitIsolationForest accepts.
const MinForestSamples = 50

// ForestConfig configures an Isolation Forest. Zero fields take the
// defaults of Liu et al.: 100 trees, subsample 256.
type ForestConfig struct {
	Trees      int
	SampleSize int
	Seed       uint64
}

// IsolationForest is a fitted, calibrated forest. Safe for concurrent Score.
type IsolationForest struct {
	Dims       int
	SampleSize int
	Seed       uint64
	trees      []itree
	cn         float64
	// Calibration of the tail (see the package comment above).
	TrainScores []float64 // out-of-bag scores of the training rows, sorted
	tailU       float64
	tailBeta    float64
	tailFrac    float64 // m/n
}

type inode struct {
	feature     int // −1 for a leaf
	split       float64
	left, right int32
	size        int32 // rows reaching a leaf
}

type itree struct {
	nodes  []inode
	sample []int32 // training row indices of the subsample, sorted
}

// FitIsolationForest grows a forest on rows (each of length dims, no NaN)
// and scores every row out of bag for calibration.
func FitIsolationForest(rows [][]float64, cfg ForestConfig) (*IsolationForest, error) {
	n := len(rows)
	if n < MinForestSamples {
		return nil, fmt.Errorf("isolation forest needs at least %d training hours, got %d", MinForestSamples, n)
	}
	dims := len(rows[0])
	for i, r := range rows {
		if len(r) != dims {
			return nil, fmt.Errorf("training row %d has %d features, want %d", i, len(r), dims)
		}
		for _, v := range r {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("training row %d has a missing or infinite feature", i)
			}
		}
	}
	if cfg.Trees <= 0 {
		cfg.Trees = 100
	}
	if cfg.SampleSize <= 0 {
		cfg.SampleSize = 256
	}
	psi := min(cfg.SampleSize, n)
	f := &IsolationForest{Dims: dims, SampleSize: psi, Seed: cfg.Seed, cn: avgPathLength(psi)}
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	maxDepth := int(math.Ceil(math.Log2(float64(psi))))
	perm := make([]int32, n)
	for i := range perm {
		perm[i] = int32(i)
	}
	for range cfg.Trees {
		// Partial Fisher–Yates: the first psi entries are a uniform subsample.
		for i := range psi {
			j := i + rng.IntN(n-i)
			perm[i], perm[j] = perm[j], perm[i]
		}
		sample := slices.Clone(perm[:psi])
		t := itree{sample: sample}
		work := slices.Clone(sample)
		t.grow(rows, work, 0, maxDepth, rng)
		slices.Sort(t.sample)
		f.trees = append(f.trees, t)
	}
	f.TrainScores = f.outOfBagScores(rows)
	if err := f.fitTail(); err != nil {
		return nil, err
	}
	return f, nil
}

// grow appends the subtree over idx and returns its node index.
func (t *itree) grow(rows [][]float64, idx []int32, depth, maxDepth int, rng *rand.Rand) int32 {
	me := int32(len(t.nodes))
	t.nodes = append(t.nodes, inode{feature: -1, size: int32(len(idx))})
	if len(idx) <= 1 || depth >= maxDepth {
		return me
	}
	dims := len(rows[idx[0]])
	// Choose uniformly among the features that still vary.
	var varying []int
	lo := make([]float64, dims)
	hi := make([]float64, dims)
	for d := range dims {
		lo[d], hi[d] = math.Inf(1), math.Inf(-1)
		for _, i := range idx {
			v := rows[i][d]
			lo[d] = math.Min(lo[d], v)
			hi[d] = math.Max(hi[d], v)
		}
		if hi[d] > lo[d] {
			varying = append(varying, d)
		}
	}
	if len(varying) == 0 {
		return me
	}
	d := varying[rng.IntN(len(varying))]
	split := lo[d] + rng.Float64()*(hi[d]-lo[d])
	// Partition idx in place: < split to the left.
	k := 0
	for j, i := range idx {
		if rows[i][d] < split {
			idx[k], idx[j] = idx[j], idx[k]
			k++
		}
	}
	if k == 0 || k == len(idx) { // split landed on the boundary value
		return me
	}
	left := t.grow(rows, idx[:k], depth+1, maxDepth, rng)
	right := t.grow(rows, idx[k:], depth+1, maxDepth, rng)
	t.nodes[me] = inode{feature: d, split: split, left: left, right: right, size: int32(len(idx))}
	return me
}

func (t *itree) pathLength(x []float64) float64 {
	var depth float64
	n := int32(0)
	for {
		nd := &t.nodes[n]
		if nd.feature < 0 {
			return depth + avgPathLength(int(nd.size))
		}
		if x[nd.feature] < nd.split {
			n = nd.left
		} else {
			n = nd.right
		}
		depth++
	}
}

// avgPathLength is c(n), the average path length of an unsuccessful search
// in a binary search tree of n keys: 2H(n−1) − 2(n−1)/n; c(1) = 0, c(2) = 1.
func avgPathLength(n int) float64 {
	switch {
	case n <= 1:
		return 0
	case n == 2:
		return 1
	}
	m := float64(n - 1)
	return 2*(math.Log(m)+0.5772156649015329) - 2*m/float64(n)
}

// Score returns s(x) in (0, 1]; higher is more anomalous (≈ 0.5 or below
// for ordinary points). x must have Dims features.
func (f *IsolationForest) Score(x []float64) float64 {
	if len(x) != f.Dims {
		panic(fmt.Sprintf("isolation forest: %d features, want %d", len(x), f.Dims))
	}
	var sum float64
	for i := range f.trees {
		sum += f.trees[i].pathLength(x)
	}
	return f.scoreFromMean(sum / float64(len(f.trees)))
}

func (f *IsolationForest) scoreFromMean(meanPath float64) float64 {
	if f.cn == 0 {
		return 0.5
	}
	return math.Exp2(-meanPath / f.cn)
}

func (f *IsolationForest) outOfBagScores(rows [][]float64) []float64 {
	out := make([]float64, len(rows))
	for i, x := range rows {
		var sum float64
		var m int
		for t := range f.trees {
			if _, in := slices.BinarySearch(f.trees[t].sample, int32(i)); in {
				continue
			}
			sum += f.trees[t].pathLength(x)
			m++
		}
		if m == 0 { // in every subsample (psi = n): in-bag is all there is
			out[i] = f.Score(x)
			continue
		}
		out[i] = f.scoreFromMean(sum / float64(m))
	}
	slices.Sort(out)
	return out
}

func (f *IsolationForest) fitTail() error {
	s := f.TrainScores
	n := len(s)
	m := max(TailExceedances, int(math.Ceil(0.05*float64(n))))
	if m >= n {
		return errors.New("isolation forest: too few training scores for a tail model")
	}
	u := s[n-m-1]
	var sum float64
	for _, v := range s[n-m:] {
		sum += v - u
	}
	f.tailU, f.tailBeta, f.tailFrac = u, sum/float64(m), float64(m)/float64(n)
	return nil
}

// Threshold returns the score above which a point is flagged at the given
// in-control rate: the empirical 1 − rate quantile of the out-of-bag
// training scores when at least TailExceedances of them lie above it, else
// the exponential tail extrapolation (which may exceed 1: such a small rate
// cannot be flagged with this forest).
func (f *IsolationForest) Threshold(rate float64) float64 {
	s := f.TrainScores
	n := float64(len(s))
	if n*rate >= TailExceedances {
		// Smallest score with at most n·rate scores strictly above it.
		i := int(math.Ceil((1-rate)*n)) - 1
		return s[max(0, min(len(s)-1, i))]
	}
	if f.tailBeta == 0 {
		return math.Nextafter(s[len(s)-1], math.Inf(1))
	}
	return f.tailU + f.tailBeta*math.Log(f.tailFrac/rate)
}

// TailProbability estimates the in-control probability of a score ≥ score:
// the empirical share of out-of-bag training scores at or above it, or the
// exponential tail model above u.
func (f *IsolationForest) TailProbability(score float64) float64 {
	s := f.TrainScores
	if score > f.tailU {
		if f.tailBeta == 0 {
			return 1 / float64(len(s)+1)
		}
		return f.tailFrac * math.Exp(-(score-f.tailU)/f.tailBeta)
	}
	i, _ := slices.BinarySearch(s, score)
	return float64(len(s)-i) / float64(len(s))
}

// Fingerprint is a hash of every split and leaf of the forest: two forests
// with the same fingerprint have the same trees.
func (f *IsolationForest) Fingerprint() uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	mix := func(v uint64) { h = (h ^ v) * prime }
	for _, t := range f.trees {
		for _, nd := range t.nodes {
			mix(uint64(int64(nd.feature)))
			mix(math.Float64bits(nd.split))
			mix(uint64(nd.left)<<32 | uint64(uint32(nd.right)))
			mix(uint64(nd.size))
		}
	}
	return h
}
