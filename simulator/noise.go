package simulator

import (
	"encoding/binary"
	"math"
)

// mix is SplitMix64's finaliser: a bijective scramble of 64 bits.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

const golden = 0x9E3779B97F4A7C15

func idHash(id UUID) uint64 {
	return mix(binary.LittleEndian.Uint64(id[:8]) ^ mix(binary.LittleEndian.Uint64(id[8:])))
}

func stringHash(s string) uint64 {
	h := uint64(14695981039346656037) // FNV-1a
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return mix(h)
}

// key derives a hash from the seed, a machine, a position and a salt.
func (g *Generator) key(id UUID, pos, salt uint64) uint64 {
	return mix(g.cfg.Seed ^ mix(idHash(id)^mix(pos+salt*golden)))
}

// siteKey derives a hash from the seed, a site, a position and a salt.
func (g *Generator) siteKey(site string, pos, salt uint64) uint64 {
	return mix(g.cfg.Seed ^ mix(stringHash(site)^mix(pos+salt*golden)))
}

// uniform maps a hash to [0, 1).
func uniform(h uint64) float64 { return float64(mix(h)>>11) / (1 << 53) }

// gauss maps a hash to a standard normal value (Box–Muller).
func gauss(h uint64) float64 {
	u1 := (float64(mix(h)>>11) + 1) / (1<<53 + 1)
	u2 := float64(mix(h^golden)>>11) / (1 << 53)
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

// smooth is value noise with unit variance at the knots: normal values every
// spacing seconds (keyed by knot index), joined by cosine interpolation.
func smooth(base uint64, t, spacing int64) float64 {
	k := floorDiv(t, spacing)
	f := float64(t-k*spacing) / float64(spacing)
	w := (1 - math.Cos(math.Pi*f)) / 2
	a := gauss(mix(base ^ uint64(k)))
	b := gauss(mix(base ^ uint64(k+1)))
	return a + (b-a)*w
}
