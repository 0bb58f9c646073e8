package simulator

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// monday is a Monday midnight UTC in autumn (the demo's season).
var monday = time.Date(2026, 10, 5, 0, 0, 0, 0, time.UTC)

func newGen(t testing.TB, seed uint64, rate float64) *Generator {
	t.Helper()
	g, err := New(Config{Seed: seed, IncidentRate: rate})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func generate(t testing.TB, g *Generator, ms []Machine, from, to time.Time, step time.Duration) Batch {
	t.Helper()
	b, err := g.Generate(ms, from, to, step)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// digest hashes every value of every reading and transition, bit for bit.
func digest(b Batch) string {
	h := sha256.New()
	var buf [8]byte
	f := func(v float64) {
		binary.LittleEndian.PutUint64(buf[:], math.Float64bits(v))
		h.Write(buf[:])
	}
	i := func(v int64) { f(math.Float64frombits(uint64(v))) }
	for _, r := range b.Readings {
		i(r.Time.UnixNano())
		h.Write(r.MachineID[:])
		i(int64(r.Step))
		for _, v := range []float64{r.PowerKW, r.EnergyKWh, r.VoltageV, r.CurrentA, r.PowerFactor, r.FrequencyHz,
			r.ThroughputPerHour, r.SpeedPercent, r.DowntimeSeconds, r.MaterialMoisture, r.OutdoorTempC, r.IndoorTempC,
			r.MachineTempC, r.HumidityPercent, r.PressureBar, r.PressureSetpointBar, r.FlowRateM3h, r.COP, r.VibrationMMS} {
			f(v)
		}
		i(r.Count)
		i(r.Good)
		i(r.Bad)
		h.Write([]byte(r.Mode))
	}
	for _, tr := range b.Transitions {
		i(tr.At.UnixNano())
		h.Write(tr.MachineID[:])
		h.Write([]byte(tr.Mode))
		f(tr.PowerKW)
	}
	for _, inc := range b.Incidents {
		i(inc.Start.UnixNano())
		i(inc.End.UnixNano())
		h.Write([]byte(inc.Type))
		f(inc.Magnitude)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestSameSeedSameTelemetry(t *testing.T) {
	t.Parallel()
	ms := DemoMachines()
	from, to := monday, monday.Add(24*time.Hour)
	a := digest(generate(t, newGen(t, 42, 0.5), ms, from, to, time.Minute))
	b := digest(generate(t, newGen(t, 42, 0.5), ms, from, to, time.Minute))
	c := digest(generate(t, newGen(t, 43, 0.5), ms, from, to, time.Minute))
	if a != b {
		t.Errorf("seed 42 twice: digests %s and %s differ", a, b)
	}
	if a == c {
		t.Errorf("seeds 42 and 43 give the same telemetry (%s)", a)
	}
}

// TestChunkingDoesNotChangeTelemetry: a period generated at once, in
// irregular pieces through one stream, and as two streams split at a
// mid-day point (a resumed backfill) gives identical readings.
func TestChunkingDoesNotChangeTelemetry(t *testing.T) {
	t.Parallel()
	g := newGen(t, 7, 0.5)
	ms := DemoMachines()
	from, to := monday.Add(-6*time.Hour), monday.Add(30*time.Hour)
	whole := generate(t, g, ms, from, to, time.Minute)

	var pieces Batch
	for _, m := range ms {
		s, err := g.Stream(m, from, StepFor(m, time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		for u := from; u.Before(to); u = u.Add(37 * time.Minute) {
			s.Next(u, &pieces)
		}
		s.Next(to, &pieces)
	}
	mid := monday.Add(13*time.Hour + 17*time.Minute)
	var split Batch
	for _, m := range ms {
		first := generate(t, g, []Machine{m}, from, mid, time.Minute)
		second := generate(t, g, []Machine{m}, mid, to, time.Minute)
		split.Readings = append(append(split.Readings, first.Readings...), second.Readings...)
	}
	if len(whole.Readings) != len(pieces.Readings) || len(whole.Readings) != len(split.Readings) {
		t.Fatalf("readings: whole %d, pieces %d, split %d", len(whole.Readings), len(pieces.Readings), len(split.Readings))
	}
	readingsOnly := func(b Batch) string { return digest(Batch{Readings: b.Readings}) }
	if readingsOnly(whole) != readingsOnly(pieces) {
		t.Error("generating in 37-minute pieces changed the readings")
	}
	if readingsOnly(whole) != readingsOnly(split) {
		t.Error("generating as two streams split at 13:17 changed the readings")
	}
	if digest(Batch{Transitions: whole.Transitions}) != digest(Batch{Transitions: pieces.Transitions}) {
		t.Error("generating in pieces changed the mode transitions")
	}
}

// TestEnergyIsIntegratedOverTheSamplingInterval: per machine-day, the
// energy of the readings at the machine's own sampling interval, at one
// minute and at 15 minutes is the same simulated energy (to 1e-9), and
// Σ power_kw·step/3600 — what a consumer integrating the reported power gets —
// matches Σ energy_kwh within 0.5 %.
func TestEnergyIsIntegratedOverTheSamplingInterval(t *testing.T) {
	t.Parallel()
	g := newGen(t, 3, 0.3)
	from, to := monday, monday.Add(24*time.Hour)
	for _, m := range DemoMachines() {
		var energy []float64
		for _, step := range []time.Duration{m.Interval, time.Minute, 15 * time.Minute} {
			b := generate(t, g, []Machine{m}, from, to, step)
			// One reading per step over the day: 86400 s / step.
			if want := int(24 * time.Hour / step); len(b.Readings) != want {
				t.Fatalf("%s at %v: %d readings, want %d", m.Name, step, len(b.Readings), want)
			}
			var kwh, integrated float64
			for _, r := range b.Readings {
				if r.EnergyKWh < 0 || r.PowerKW > 1.1*m.RatedKW {
					t.Fatalf("%s at %v: reading %+v outside 0 … 1.1 × rated", m.Name, step, r)
				}
				kwh += r.EnergyKWh
				integrated += r.PowerKW * step.Hours()
			}
			if math.Abs(integrated-kwh) > 0.005*kwh {
				t.Errorf("%s at %v: Σ power·Δt = %.4f kWh, Σ energy_kwh = %.4f kWh (more than 0.5 %% apart)", m.Name, step, integrated, kwh)
			}
			energy = append(energy, kwh)
		}
		for _, e := range energy[1:] {
			if math.Abs(e-energy[0]) > 1e-9*energy[0] {
				t.Errorf("%s: day energy depends on the step: %v kWh", m.Name, energy)
			}
		}
		// A day of any machine uses between 2 % and 100 % of its rated
		// energy (rated kW × 24 h): idle floors and the physics' caps.
		if e := energy[0]; e < 0.02*m.RatedKW*24 || e > m.RatedKW*24 {
			t.Errorf("%s: %.1f kWh in a day, outside 2–100 %% of rated %.0f kWh", m.Name, e, m.RatedKW*24)
		}
	}
}

// TestCycleIntegrationIsExact: the press cycle advanced in 30-second ticks
// and in 1-second ticks draws the same cycles (the same random durations)
// and so the same energy-share integral, to rounding.
func TestCycleIntegrationIsExact(t *testing.T) {
	t.Parallel()
	for _, ph := range [][]phase{pumpPhases, mouldPhases} {
		c30 := newCycler(ph, rand.New(rand.NewPCG(1, 2)))
		c1 := newCycler(ph, rand.New(rand.NewPCG(1, 2)))
		r30, r1 := rand.New(rand.NewPCG(3, 4)), rand.New(rand.NewPCG(3, 4))
		var f30, f1, p30, p1 float64
		var n30, n1 int
		for range 120 { // one hour
			f, p, n := c30.advance(30, 0.9, r30)
			f30, p30, n30 = f30+f, p30+p, n30+n
			for range 30 {
				f, p, n := c1.advance(1, 0.9, r1)
				f1, p1, n1 = f1+f, p1+p, n1+n
			}
		}
		if n30 != n1 || math.Abs(f30-f1) > 1e-6 || math.Abs(p30-p1) > 1e-6*p30+1e-9 {
			t.Errorf("30 s ticks: %d cycles, %.9f s·share, %.6f bar·s; 1 s ticks: %d, %.9f, %.6f", n30, f30, p30, n1, f1, p1)
		}
		// Cycles per hour at prod 0.9: the nominal cycle plus a dwell
		// stretched by 1 + 3·(1 − 0.9) = 1.3, with ±5 % jitter: within 10 %.
		nominal := 0.0
		for i, p := range ph {
			d := p.dur
			if i == len(ph)-1 {
				d *= 1.3
			}
			nominal += d
		}
		if want := 3600 / nominal; math.Abs(float64(n30)-want) > 0.1*want {
			t.Errorf("%d cycles in an hour, want about %.0f", n30, want)
		}
	}
}

// energyBy sums energy per machine for readings whose time satisfies keep.
func energyBy(b Batch, keep func(Reading) bool) map[UUID]float64 {
	out := map[UUID]float64{}
	for _, r := range b.Readings {
		if keep(r) {
			out[r.MachineID] += r.EnergyKWh
		}
	}
	return out
}

// TestPlantBehavesLikeAPlant checks the couplings the analytics rely on.
func TestPlantBehavesLikeAPlant(t *testing.T) {
	t.Parallel()
	var ms []Machine // the compressors' 1 s ticks would triple the cost; TestIncidents covers them
	for _, m := range DemoMachines() {
		if m.Type != Compressor {
			ms = append(ms, m)
		}
	}
	byName := map[string]Machine{}
	for _, m := range ms {
		byName[m.Name] = m
	}
	g := newGen(t, 11, 0)
	from := monday
	to := from.Add(14 * 24 * time.Hour)
	b := generate(t, g, ms, from, to, 15*time.Minute)

	local := func(r Reading) time.Time { return r.Time.In(byName["Conveyor-A"].Site.Location) }
	sunday := energyBy(b, func(r Reading) bool { return local(r).Weekday() == time.Sunday })
	tuesday := energyBy(b, func(r Reading) bool { return local(r).Weekday() == time.Tuesday })
	conv := byName["Conveyor-A"].ID
	// Idle Sundays: 3 % of 22 kW for 24 h = 15.8 kWh per Sunday, vs a
	// two-shift weekday of several hundred kWh.
	if sunday[conv] > 0.2*tuesday[conv] {
		t.Errorf("Conveyor-A: Sundays %.0f kWh vs Tuesdays %.0f kWh; want Sundays below 20 %%", sunday[conv], tuesday[conv])
	}

	// Production counts follow energy: per day, the moulding machine's
	// parts and kWh are positively correlated.
	im := byName["Injection-Molding-1"].ID
	var parts, kwh [14]float64
	for _, r := range b.Readings {
		if r.MachineID == im {
			d := int(r.Time.Sub(from).Hours() / 24)
			parts[d] += float64(r.Count)
			kwh[d] += r.EnergyKWh
		}
	}
	if c := correlation(parts[:], kwh[:]); c < 0.8 {
		t.Errorf("Injection-Molding-1: daily parts vs kWh correlation %.2f, want ≥ 0.8", c)
	}

	// HVAC: while cooling, COP falls as it gets hotter outside.
	hv := byName["HVAC-Main"].ID
	var temps, cops []float64
	for _, r := range b.Readings {
		if r.MachineID == hv && !math.IsNaN(r.COP) && r.OutdoorTempC > 18 {
			temps, cops = append(temps, r.OutdoorTempC), append(cops, r.COP)
		}
	}
	if len(temps) < 50 || correlation(temps, cops) > -0.5 {
		t.Errorf("HVAC-Main: %d cooling readings, COP vs outdoor correlation %.2f; want a falling COP", len(temps), correlation(temps, cops))
	}

	// Modes: production machines idle at night, Sunday maintenance and
	// faults occur, and every transition really changes the mode.
	seen := map[Mode]int{}
	last := map[UUID]Mode{}
	for _, tr := range b.Transitions {
		if m, ok := last[tr.MachineID]; ok && m == tr.Mode {
			t.Errorf("transition at %v keeps mode %s", tr.At, tr.Mode)
		}
		last[tr.MachineID] = tr.Mode
		seen[tr.Mode]++
		if tr.Mode == Maintenance {
			lt := tr.At.In(ms[0].Site.Location)
			for _, m := range ms {
				if m.ID == tr.MachineID {
					lt = tr.At.In(m.Site.Location)
				}
			}
			if lt.Weekday() != time.Sunday || lt.Hour() != 7 {
				t.Errorf("maintenance starts %v local, want Sunday 07:00", lt)
			}
		}
	}
	if seen[Idle] < 10 || seen[Running] < 10 || seen[Maintenance] == 0 {
		t.Errorf("mode transitions over 14 days: %v; want idle and running each shift, and maintenance", seen)
	}
}

// TestIncidentsAreInjectedAndLabelled: with incidents on, every label names
// a window in which the machine's behaviour differs from the same seed
// without incidents; an air leak raises the compressor's energy.
func TestIncidentsAreInjectedAndLabelled(t *testing.T) {
	t.Parallel()
	ms := DemoMachines()[:1] // Compressor-1
	from, to := monday, monday.Add(10*24*time.Hour)
	with := generate(t, newGen(t, 5, 1), ms, from, to, time.Minute)
	without := generate(t, newGen(t, 5, 0), ms, from, to, time.Minute)
	if len(without.Incidents) != 0 {
		t.Fatalf("incident rate 0 gave %d incidents", len(without.Incidents))
	}
	uniq := map[Incident]bool{}
	for _, inc := range with.Incidents {
		uniq[inc] = true
	}
	// Rate 1 starts one incident per machine-day: 10 days plus up to 3
	// earlier days whose incidents reach into the period.
	if len(uniq) < 10 || len(uniq) > 13 {
		t.Fatalf("%d distinct incidents in 10 days at rate 1, want 10–13", len(uniq))
	}
	leaks := 0
	for inc := range uniq {
		if inc.End.Sub(inc.Start) < 6*time.Hour || inc.Description == "" {
			t.Errorf("incident %+v: shorter than 6 h or undescribed", inc)
		}
		if inc.Type != AirLeak || inc.Start.Before(from) {
			continue
		}
		leaks++
		inWindow := func(r Reading) bool { return !r.Time.Before(inc.Start) && r.Time.Before(inc.End) && r.Time.Before(to) }
		e1, e0 := energyBy(with, inWindow)[ms[0].ID], energyBy(without, inWindow)[ms[0].ID]
		// A leak of m × capacity adds about m × (loaded − unloaded power)
		// = m × 0.65 × 55 kW; require at least a third of that.
		hours := math.Min(inc.End.Sub(inc.Start).Hours(), to.Sub(inc.Start).Hours())
		if e1-e0 < inc.Magnitude*0.65*55*hours/3 {
			t.Errorf("air leak %.0f %% over %.0f h: %.1f kWh with vs %.1f without", 100*inc.Magnitude, hours, e1, e0)
		}
	}
	if leaks == 0 {
		t.Error("no air leak among the compressor's incidents")
	}
}

func TestStepValidation(t *testing.T) {
	t.Parallel()
	m := DemoMachines()[3] // Hydraulic-Pump-1, 30 s
	for _, bad := range []time.Duration{0, 45 * time.Second, 7 * time.Minute, 1500 * time.Millisecond} {
		if err := CheckStep(m, bad); err == nil {
			t.Errorf("step %v accepted for a 30 s machine", bad)
		}
	}
	for _, good := range []time.Duration{30 * time.Second, time.Minute, 15 * time.Minute, time.Hour} {
		if err := CheckStep(m, good); err != nil {
			t.Errorf("step %v: %v", good, err)
		}
	}
	// StepFor rounds up to a usable step: 45 s → 60 s (30 s multiples dividing a day).
	if s := StepFor(m, 45*time.Second); s != time.Minute {
		t.Errorf("StepFor(45s) = %v, want 1m", s)
	}
	if _, err := New(Config{IncidentRate: -1}); err == nil {
		t.Error("a negative incident rate was accepted")
	}
}

func correlation(x, y []float64) float64 {
	n := float64(len(x))
	var sx, sy, sxx, syy, sxy float64
	for i := range x {
		sx, sy = sx+x[i], sy+y[i]
		sxx, syy, sxy = sxx+x[i]*x[i], syy+y[i]*y[i], sxy+x[i]*y[i]
	}
	return (sxy - sx*sy/n) / math.Sqrt((sxx-sx*sx/n)*(syy-sy*sy/n))
}
