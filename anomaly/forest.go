package anomaly

import (
	"hash/fnv"
	"math"
	"sync"
	"time"

	"github.com/enms/enms-analytics/analytics"
	"github.com/enms/enms-analytics/store"
)

// The isolation forest's features of an hour, in order: the energy residual
// z, average power, average and maximum machine temperature, average
// pressure, and the hour of the week as a point on the unit circle (so that
// Sunday 23:00 is next to Monday 00:00).
var forestFeatureNames = []string{"energy_z", "avg_power_kw", "avg_machine_temp_c", "max_machine_temp_c",
	"avg_pressure_bar", "how_sin", "how_cos"}

func forestFeatures(h store.AnomalyHour) []float64 {
	how := hourOfWeek(h.Hour)
	a := 2 * math.Pi * float64(how) / 168
	return []float64{h.Z, h.AvgPowerKW, h.AvgMachineTempC, h.MaxMachineTempC, h.AvgPressureBar, math.Sin(a), math.Cos(a)}
}

// hourOfWeek counts hours from Sunday 00:00 UTC (0..167).
func hourOfWeek(t time.Time) int {
	t = t.UTC()
	return int(t.Weekday())*24 + t.Hour()
}

// MinForestHours is how many normal hours the forest needs to be trained.
const MinForestHours = 168

// trainedForest is a forest with the feature columns it uses.
type trainedForest struct {
	before    time.Time
	dims      []int // indexes into forestFeatureNames
	forest    *analytics.IsolationForest
	threshold float64
	seed      uint64
	n         int
}

// forestCache keeps each machine's current forest; a forest is a pure
// function of (machine, trained-before time, the learning hours before it),
// so a cache miss is rebuilt identically from the database.
type forestCache struct {
	mu sync.Mutex
	m  map[string]*trainedForest
}

func (c *forestCache) get(machineID string, before time.Time) *trainedForest {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f := c.m[machineID]; f != nil && f.before.Equal(before) {
		return f
	}
	return nil
}

func (c *forestCache) put(machineID string, f *trainedForest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*trainedForest{}
	}
	c.m[machineID] = f
}

// forestSeed derives the seed of a machine's forest trained before t from
// the configured seed: the same inputs give the same trees.
func forestSeed(base uint64, machineID string, before time.Time) uint64 {
	h := fnv.New64a()
	h.Write([]byte(machineID))
	return base ^ h.Sum64() ^ uint64(before.Unix())
}

// trainForest fits a forest on the normal hours among learning (newest
// first). Feature columns present in fewer than 95 % of them are left out,
// and then hours missing a kept column. nil when too few hours remain.
func trainForest(learning []store.AnomalyHour, before time.Time, seed uint64, trees int, rate float64) *trainedForest {
	var rows [][]float64
	for _, h := range learning {
		if h.Status == StatusNormal {
			rows = append(rows, forestFeatures(h))
		}
	}
	if len(rows) < MinForestHours {
		return nil
	}
	var dims []int
	for d := range forestFeatureNames {
		present := 0
		for _, r := range rows {
			if !math.IsNaN(r[d]) {
				present++
			}
		}
		if float64(present) >= 0.95*float64(len(rows)) {
			dims = append(dims, d)
		}
	}
	var train [][]float64
	for _, r := range rows {
		if x, ok := project(r, dims); ok {
			train = append(train, x)
		}
	}
	if len(train) < MinForestHours {
		return nil
	}
	// Oldest first, so the row order (and with it the forest) does not
	// depend on how the caller sorted.
	for i, j := 0, len(train)-1; i < j; i, j = i+1, j-1 {
		train[i], train[j] = train[j], train[i]
	}
	f, err := analytics.FitIsolationForest(train, analytics.ForestConfig{Trees: trees, Seed: seed})
	if err != nil {
		return nil
	}
	return &trainedForest{before: before, dims: dims, forest: f, threshold: f.Threshold(rate), seed: seed, n: len(train)}
}

func project(r []float64, dims []int) ([]float64, bool) {
	x := make([]float64, len(dims))
	for i, d := range dims {
		if math.IsNaN(r[d]) || math.IsInf(r[d], 0) {
			return nil, false
		}
		x[i] = r[d]
	}
	return x, true
}

// finding scores one hour with the forest.
func (f *trainedForest) finding(h store.AnomalyHour) (finding, map[string]any, bool) {
	x, ok := project(forestFeatures(h), f.dims)
	if !ok {
		return finding{}, nil, false
	}
	s := f.forest.Score(x)
	p := f.forest.TailProbability(s)
	z := analytics.EquivalentZ(p)
	if math.IsInf(z, 1) {
		z = 40 // beyond any threshold; keeps JSON finite
	}
	return finding{Type: TypeMultivariate, Opens: s >= f.threshold, Z: z, Dir: 1, P: p, Method: "isolation_forest",
			Metric: "isolation_score", Value: s, Expect: f.threshold},
		map[string]any{"score": s, "threshold": f.threshold, "p": p, "trained_before": f.before, "n": f.n, "seed": f.seed}, true
}
