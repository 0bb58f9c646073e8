// Package simulator generates realistic, deterministic telemetry for the EnMS
// demo plant's machine types — compressor, HVAC, conveyor motor, hydraulic
// pump, injection moulding — and writes it to the EnMS tables: readings with
// COPY, machine_status transitions as upserts (so machine_status_history is
// replayed), and the incidents it injects as labels in simulator_labels.
//
// # Determinism
//
// Everything a reading holds is a function of (seed, machine id, time): each
// machine-day (UTC) is simulated from its own PCG stream seeded with the
// seed, the machine and the day number, starting from a fixed state at
// midnight UTC; the plan of a day (scheduled maintenance, faults, incidents)
// comes from a separate stream, and weather, order levels and measurement
// noise are hashes of the time. So the same seed gives byte-identical rows
// whether a period is generated at once, day by day or live, and a gap can
// be filled later with exactly the rows a continuous run would have written.
// No map iteration order and no wall clock reach the output.
//
// # Time and energy
//
// Each machine is simulated in ticks of its sampling interval
// (machines.data_interval_seconds); inside a tick, load/unload switching and
// press or moulding cycle phases are integrated exactly (event by event), so
// the energy of a tick is the integral of power over it. A reading stamped t
// reports the interval [t, t+step): energy_kwh is the sum of its ticks'
// energy and power_kw the interval's mean power (energy_kwh·3600/step), so
// Σ power_kw·step/3600 = Σ energy_kwh for any step. The step is the sampling
// interval live and may be coarser for history (a whole multiple of the
// interval that divides a day — 60 s by default for backfills): the
// simulated machine is the same, only the aggregation differs, so a
// machine-day holds the same energy at every step.
package simulator

import (
	"errors"
	"fmt"
	"math"
	"time"
	_ "time/tzdata" // factory timezones without relying on the system's zoneinfo
)

// MachineType is the EnMS machine_type enum.
type MachineType string

// The machine types the simulator has a model for. Conveyor and Other use the
// motor model.
const (
	Compressor       MachineType = "compressor"
	HVAC             MachineType = "hvac"
	Motor            MachineType = "motor"
	Pump             MachineType = "pump"
	InjectionMolding MachineType = "injection_molding"
	Conveyor         MachineType = "conveyor"
	Other            MachineType = "other"
)

// Mode is the EnMS operating_mode enum.
type Mode string

// Operating modes.
const (
	Idle        Mode = "idle"
	Running     Mode = "running"
	Maintenance Mode = "maintenance"
	Fault       Mode = "fault"
	Offline     Mode = "offline"
)

var modes = [...]Mode{Idle, Running, Maintenance, Fault, Offline}

// IncidentType names an injected incident.
type IncidentType string

// The incidents the simulator injects.
const (
	AirLeak        IncidentType = "air_leak"        // compressor: extra air demand, visible at night
	EfficiencyLoss IncidentType = "efficiency_loss" // any machine: more power for the same work
	HeaterFault    IncidentType = "heater_fault"    // injection moulding: a heater zone fails, the others work harder, melt runs cold, scrap rises
	BearingWear    IncidentType = "bearing_wear"    // rotating machines: vibration, temperature and friction losses ramp up
	SensorDrift    IncidentType = "sensor_drift"    // a process sensor drifts; on HVAC the controller follows it and overcools
)

// Site is the factory a machine stands in: its clock, weather and grid.
type Site struct {
	Name        string // factories.name; also keys the site's weather
	Location    *time.Location
	Climate     Climate
	VoltageV    float64 // nominal line-to-line voltage
	FrequencyHz float64
}

// Climate parameterises a site's outdoor temperature:
//
//	T(t) = MeanC + SeasonalAmpC·cos(2π(doy − WarmestDay)/365.25)
//	     + DiurnalAmpC·cos(2π(local hour − 15)/24) + WeatherSDC·w(t)
//
// where w is smooth noise with unit variance and knots every six hours.
type Climate struct {
	MeanC, SeasonalAmpC float64
	WarmestDay          int
	DiurnalAmpC         float64
	WeatherSDC          float64
	HumidityPct         float64 // mean relative humidity
}

// SiteFor returns the site of a factory from its name, timezone and grid
// region (factories.metadata->>'grid_region'): a Californian or central
// European climate and grid for the demo regions, a temperate default
// otherwise.
func SiteFor(name, timezone, gridRegion string) (Site, error) {
	loc, err := time.LoadLocation(timezone)
	if err != nil {
		return Site{}, fmt.Errorf("factory %q: timezone %q is not known: %w", name, timezone, err)
	}
	s := Site{Name: name, Location: loc, VoltageV: 400, FrequencyHz: 50,
		Climate: Climate{MeanC: 12, SeasonalAmpC: 8, WarmestDay: 205, DiurnalAmpC: 5, WeatherSDC: 2.5, HumidityPct: 68}}
	switch {
	case gridRegion == "US-California":
		s.VoltageV, s.FrequencyHz = 480, 60
		s.Climate = Climate{MeanC: 17.5, SeasonalAmpC: 4.5, WarmestDay: 225, DiurnalAmpC: 6.5, WeatherSDC: 2.0, HumidityPct: 62}
	case gridRegion == "Germany":
		s.Climate = Climate{MeanC: 9.8, SeasonalAmpC: 9.0, WarmestDay: 200, DiurnalAmpC: 4.5, WeatherSDC: 3.0, HumidityPct: 76}
	case len(gridRegion) > 3 && gridRegion[:3] == "US-":
		s.VoltageV, s.FrequencyHz = 480, 60
	}
	return s, nil
}

// Machine is what the generator needs to know about a machine.
type Machine struct {
	ID       UUID
	Name     string
	Type     MachineType
	RatedKW  float64
	Interval time.Duration // sampling interval; a whole number of seconds that divides a day
	Site     Site
}

// DemoMachines returns the demo plant's machines with their fixed ids, for
// tests and benchmarks that generate without a database. Machines loaded from
// a database (Machines) carry that database's ids.
func DemoMachines() []Machine {
	sites := map[string]Site{}
	for _, f := range DemoPlant.Factories {
		s, err := SiteFor(f.Name, f.Timezone, f.GridRegion)
		if err != nil {
			panic(err)
		}
		sites[f.Name] = s
	}
	out := make([]Machine, len(DemoPlant.Machines))
	for i, m := range DemoPlant.Machines {
		out[i] = Machine{ID: m.ID, Name: m.Name, Type: m.Type, RatedKW: m.RatedKW, Interval: m.Interval, Site: sites[m.Factory]}
	}
	return out
}

// Reading is one step of one machine: a row of energy_readings,
// production_data and environmental_data each, stamped Time and covering
// [Time, Time+Step). Quantities a machine does not measure are NaN and are
// written as NULL.
type Reading struct {
	Time      time.Time
	MachineID UUID
	Step      time.Duration

	// energy_readings
	PowerKW     float64 // mean power over the step
	EnergyKWh   float64 // ∫ power dt over the step
	VoltageV    float64
	CurrentA    float64
	PowerFactor float64
	FrequencyHz float64

	// production_data
	Count, Good, Bad  int64
	ThroughputPerHour float64
	Mode              Mode // the mode the machine spent most of the step in
	SpeedPercent      float64
	DowntimeSeconds   float64 // seconds in maintenance, fault or offline
	MaterialMoisture  float64 // %, metadata.material_moisture

	// environmental_data (means over the step)
	OutdoorTempC        float64
	IndoorTempC         float64
	MachineTempC        float64
	HumidityPercent     float64
	PressureBar         float64
	PressureSetpointBar float64
	FlowRateM3h         float64
	COP                 float64
	VibrationMMS        float64
}

// Transition is a change of a machine's operating mode at At, to be upserted
// into machine_status with last_updated = At.
type Transition struct {
	MachineID UUID
	At        time.Time
	Mode      Mode
	PowerKW   float64 // power in the step the transition falls in
}

// Running reports whether the mode counts as running (machine_status.is_running).
func (t Transition) Running() bool { return t.Mode == Running }

// Incident is an injected incident, written to simulator_labels.
type Incident struct {
	MachineID   UUID
	Type        IncidentType
	Start, End  time.Time
	Magnitude   float64 // fractional effect; see the incident type
	Description string
}

// Batch collects a stretch of generated telemetry for one write.
type Batch struct {
	Readings    []Reading
	Transitions []Transition // in time order per machine
	Incidents   []Incident   // incidents overlapping the stretch (repeats are harmless: labels upsert)
	// Current is each machine's state at the end of the stretch: the mode
	// it is in, the power of its last step and that step's time.
	Current []Transition

	until time.Time // a backfill chunk's end
}

// Reset empties b, keeping its capacity.
func (b *Batch) Reset() {
	b.Readings = b.Readings[:0]
	b.Transitions = b.Transitions[:0]
	b.Incidents = b.Incidents[:0]
	b.Current = b.Current[:0]
}

// Config configures a Generator.
type Config struct {
	// Seed selects the plant's history; the same seed gives the same rows.
	Seed uint64
	// IncidentRate is the expected number of injected incidents starting per
	// machine-day (0.04 ≈ one per machine every 25 days); zero injects none.
	IncidentRate float64
	// FaultRate is the expected number of faults (trips of 15 min to 2 h)
	// per machine-day. Zero means DefaultFaultRate; negative means none.
	FaultRate float64
}

// Defaults of Config.
const (
	DefaultIncidentRate = 0.04
	DefaultFaultRate    = 1.0 / 30
)

// Generator produces telemetry for any machine and period.
type Generator struct {
	cfg Config
}

// New returns a generator. Rates must be finite and IncidentRate in [0, 1].
func New(cfg Config) (*Generator, error) {
	if math.IsNaN(cfg.IncidentRate) || cfg.IncidentRate < 0 || cfg.IncidentRate > 1 {
		return nil, fmt.Errorf("incident rate %v is not valid: want expected incidents per machine-day between 0 and 1", cfg.IncidentRate)
	}
	if math.IsNaN(cfg.FaultRate) || cfg.FaultRate > 1 {
		return nil, fmt.Errorf("fault rate %v is not valid: want expected faults per machine-day of at most 1", cfg.FaultRate)
	}
	if cfg.FaultRate == 0 {
		cfg.FaultRate = DefaultFaultRate
	}
	if cfg.FaultRate < 0 {
		cfg.FaultRate = 0
	}
	return &Generator{cfg: cfg}, nil
}

// Seed returns the generator's seed.
func (g *Generator) Seed() uint64 { return g.cfg.Seed }

const day = 86400 // seconds

// CheckStep reports whether step can be used for m: a whole number of
// seconds, a multiple of the machine's interval, dividing a day.
func CheckStep(m Machine, step time.Duration) error {
	iv := m.Interval
	if iv <= 0 || iv%time.Second != 0 || day%int64(iv/time.Second) != 0 {
		return fmt.Errorf("machine %s: sampling interval %v is not usable; want whole seconds dividing a day", m.Name, iv)
	}
	if step <= 0 || step%iv != 0 || day%int64(step/time.Second) != 0 {
		return fmt.Errorf("machine %s: step %v is not usable; want a multiple of its %v sampling interval that divides a day (e.g. 60s, 5m, 15m, 1h)", m.Name, step, iv)
	}
	return nil
}

// StepFor returns step when it fits m, else the machine's interval when
// step is zero, else the nearest usable step at least as long as step.
func StepFor(m Machine, step time.Duration) time.Duration {
	if step <= m.Interval {
		return m.Interval
	}
	for s := step.Truncate(m.Interval); s <= 24*time.Hour; s += m.Interval {
		if s >= step && CheckStep(m, s) == nil {
			return s
		}
	}
	return 24 * time.Hour
}

// Stream generates one machine's readings in time order.
type Stream struct {
	g       *Generator
	m       Machine
	step    int64 // seconds
	dt      int64 // tick, seconds
	pos     int64 // start of the next step, unix seconds
	run     *dayRun
	mode    Mode
	emitted bool
	acc     stepAcc
}

// Stream returns a stream of m's readings starting at from, which is
// truncated to a multiple of step (counted from midnight UTC). See CheckStep
// for valid steps.
func (g *Generator) Stream(m Machine, from time.Time, step time.Duration) (*Stream, error) {
	if err := CheckStep(m, step); err != nil {
		return nil, err
	}
	if m.Site.Location == nil {
		return nil, fmt.Errorf("machine %s: site has no timezone", m.Name)
	}
	if !(m.RatedKW > 0) {
		return nil, fmt.Errorf("machine %s: rated power %v kW is not positive", m.Name, m.RatedKW)
	}
	s := &Stream{g: g, m: m, step: int64(step / time.Second), dt: int64(m.Interval / time.Second)}
	s.pos = floorDiv(from.Unix(), s.step) * s.step
	// Fast-forward from midnight UTC: the state at pos is what a run from
	// the start of the day would have.
	s.ensureDay(s.pos)
	var scratch tickOut
	for t := s.run.start; t < s.pos; t += s.dt {
		s.mode = s.run.tick(t, float64(s.dt), &scratch)
	}
	return s, nil
}

// Machine returns the stream's machine.
func (s *Stream) Machine() Machine { return s.m }

// Pos returns the start of the next step the stream will emit.
func (s *Stream) Pos() time.Time { return time.Unix(s.pos, 0).UTC() }

// Step returns the stream's step.
func (s *Stream) Step() time.Duration { return time.Duration(s.step) * time.Second }

// Next appends to b every reading whose step ends at or before until, with
// the mode transitions inside them and the incidents of the days they fall in.
func (s *Stream) Next(until time.Time, b *Batch) {
	end := until.Unix()
	n := len(b.Readings)
	for s.pos+s.step <= end {
		newDay := s.ensureDay(s.pos)
		if newDay || !s.emitted {
			b.Incidents = append(b.Incidents, s.run.incidents...)
		}
		s.emitStep(b)
	}
	if len(b.Readings) > n {
		last := b.Readings[len(b.Readings)-1]
		b.Current = append(b.Current, Transition{MachineID: s.m.ID, At: last.Time, Mode: s.mode, PowerKW: last.PowerKW})
	}
}

func (s *Stream) ensureDay(t int64) bool {
	d := floorDiv(t, day)
	if s.run != nil && s.run.day == d {
		return false
	}
	s.run = s.g.newDayRun(s.m, d)
	return true
}

// stepAcc accumulates ticks into one reading.
type stepAcc struct {
	kwh, units, bad float64
	sum             [nMeasures]float64
	n               [nMeasures]int
	modeSec         [len(modes)]float64
	transitionFrom  int
}

func (s *Stream) emitStep(b *Batch) {
	a := &s.acc
	*a = stepAcc{transitionFrom: len(b.Transitions)}
	r := s.run
	unitsBefore, badBefore := r.units, r.badUnits
	var out tickOut
	for t := s.pos; t < s.pos+s.step; t += s.dt {
		mode := r.tick(t, float64(s.dt), &out)
		if !s.emitted || mode != s.mode {
			b.Transitions = append(b.Transitions, Transition{MachineID: s.m.ID, At: time.Unix(t, 0).UTC(), Mode: mode})
			s.emitted = true
		}
		s.mode = mode
		a.kwh += out.kwh
		for i, v := range out.measure {
			if !math.IsNaN(v) {
				a.sum[i] += v
				a.n[i]++
			}
		}
		a.modeSec[modeIndex(mode)] += float64(s.dt)
	}
	stepSec := float64(s.step)
	rd := Reading{Time: time.Unix(s.pos, 0).UTC(), MachineID: s.m.ID, Step: time.Duration(s.step) * time.Second}
	rd.EnergyKWh = a.kwh
	rd.PowerKW = a.kwh * 3600 / stepSec
	rd.Count = int64(math.Floor(r.units)) - int64(math.Floor(unitsBefore))
	rd.Bad = min(int64(math.Floor(r.badUnits))-int64(math.Floor(badBefore)), rd.Count)
	rd.Good = rd.Count - rd.Bad
	rd.ThroughputPerHour = float64(rd.Count) * 3600 / stepSec
	best := 0
	for i, sec := range a.modeSec {
		if sec > a.modeSec[best] {
			best = i
		}
	}
	rd.Mode = modes[best]
	rd.DowntimeSeconds = a.modeSec[modeIndex(Maintenance)] + a.modeSec[modeIndex(Fault)] + a.modeSec[modeIndex(Offline)]
	mean := func(i int) float64 {
		if a.n[i] == 0 {
			return math.NaN()
		}
		return a.sum[i] / float64(a.n[i])
	}
	rd.SpeedPercent = mean(mSpeed)
	rd.MaterialMoisture = mean(mMoisture)
	rd.OutdoorTempC = mean(mOutdoor)
	rd.HumidityPercent = mean(mHumidity)
	rd.IndoorTempC = mean(mIndoor)
	rd.MachineTempC = mean(mMachineTemp)
	rd.PressureBar = mean(mPressure)
	rd.PressureSetpointBar = mean(mSetpoint)
	rd.FlowRateM3h = mean(mFlow)
	rd.COP = mean(mCOP)
	rd.VibrationMMS = mean(mVibration)
	s.electrical(&rd)
	for i := a.transitionFrom; i < len(b.Transitions); i++ {
		b.Transitions[i].PowerKW = rd.PowerKW
	}
	b.Readings = append(b.Readings, rd)
	s.pos += s.step
}

// electrical fills voltage, current, power factor and frequency: the power
// factor of an induction-motor load rises with its loading; current follows
// from P = √3·V·I·pf. Measurement noise is a hash of the time, so it does not
// depend on the step.
func (s *Stream) electrical(rd *Reading) {
	site := s.m.Site
	key := s.g.key(s.m.ID, uint64(s.pos), 0xE1)
	load := clamp(rd.PowerKW/s.m.RatedKW, 0, 1.2)
	rd.VoltageV = site.VoltageV * (1 + 0.006*gauss(key))
	rd.FrequencyHz = site.FrequencyHz + 0.015*gauss(key^0x9E3779B97F4A7C15)
	rd.PowerFactor = clamp(0.62+0.3*load, 0.5, 0.96)
	rd.CurrentA = rd.PowerKW * 1000 / (math.Sqrt(3) * rd.VoltageV * rd.PowerFactor)
}

func modeIndex(m Mode) int {
	for i, x := range modes {
		if x == m {
			return i
		}
	}
	panic("simulator: unknown mode " + string(m))
}

// Generate returns the readings of machines over [from, to) at step
// (StepFor each machine), machine by machine. It is Stream and Next for
// callers that want everything at once (tests, small periods).
func (g *Generator) Generate(machines []Machine, from, to time.Time, step time.Duration) (Batch, error) {
	var b Batch
	if !to.After(from) {
		return b, errors.New("generate: the period is empty; want from before to")
	}
	for _, m := range machines {
		s, err := g.Stream(m, from, StepFor(m, step))
		if err != nil {
			return b, err
		}
		s.Next(to, &b)
	}
	return b, nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }
