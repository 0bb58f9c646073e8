package simulator

import (
	"math"
	"math/rand/v2"
)

// Measured quantities, averaged over a step (NaN = not measured).
const (
	mSpeed = iota
	mMoisture
	mOutdoor
	mHumidity
	mIndoor
	mMachineTemp
	mPressure
	mSetpoint
	mFlow
	mCOP
	mVibration
	nMeasures
)

// tickOut is what one tick produces.
type tickOut struct {
	kwh     float64
	measure [nMeasures]float64
}

// model is the physics of one machine type; tick advances it by dt seconds
// under r.env, adds the tick's energy and measurements to out and its
// production to r.units and r.badUnits. Random draws come from r.rng only,
// a fixed number per tick, so the trajectory does not depend on the step.
type model interface {
	tick(r *dayRun, dt float64, out *tickOut)
}

func newModel(m Machine, dt float64, rng *rand.Rand) model {
	switch m.Type {
	case Compressor:
		return &compressor{p: 7.0, temp: 80, ar: newAR(dt, 600)}
	case HVAC:
		return &hvac{temp: 45, ar: newAR(dt, 1800)}
	case Pump:
		return &pump{temp: 45, cyc: newCycler(pumpPhases, rng), ar: newAR(dt, 900)}
	case InjectionMolding:
		return &moulder{temp: 228, cyc: newCycler(mouldPhases, rng), ar: newAR(dt, 900)}
	default:
		return &motor{temp: 50, ar: newAR(dt, 900)}
	}
}

// ar is a unit-variance AR(1) process with time constant tau, sampled every dt.
type ar struct{ phi, sq, x float64 }

func newAR(dt, tau float64) ar {
	phi := math.Exp(-dt / tau)
	return ar{phi: phi, sq: math.Sqrt(1 - phi*phi)}
}

func (a *ar) next(r *rand.Rand) float64 {
	a.x = a.phi*a.x + a.sq*r.NormFloat64()
	return a.x
}

// lag moves x towards target with time constant tau over dt (first-order lag).
func lag(x, target, dt, tau float64) float64 {
	return target + (x-target)*math.Exp(-dt/tau)
}

// compressor is a load/unload screw compressor holding a 6.5–7.5 bar band.
// Loaded, the receiver fills at k·(1 − d) bar/s and the motor draws 86–98 %
// of rated power (more at higher pressure); unloaded, it drains at k·d bar/s
// at 26 % of rated power. The air demand d (share of capacity) follows
// production plus any leak. Switching inside a tick is integrated exactly.
type compressor struct {
	p       float64
	loaded  bool
	temp    float64
	loadEMA float64
	ar      ar
}

const (
	pLow, pHigh   = 6.5, 7.5
	pSetpoint     = 7.0
	fillRate      = 1.0 / 30 // bar/s at full surplus capacity
	capacityPerKW = 10.5     // m³/h free air per kW rated
)

func (c *compressor) tick(r *dayRun, dt float64, out *tickOut) {
	e, P := &r.env, r.m.RatedKW
	noise := c.ar.next(r.rng)
	vib := r.rng.NormFloat64()
	var kwh, pInt, loadedSec float64
	if e.mode != Running {
		p0 := c.p
		c.p = math.Max(0, c.p-0.01*dt)
		pInt = (p0 + c.p) / 2 * dt
		kwh = 0.004 * P * dt / 3600
		c.loaded = false
	} else {
		d := clamp(0.12+0.55*e.prod+e.leak+0.04*noise, 0.03, 0.97)
		for rem := dt; rem > 0; {
			if c.loaded && c.p >= pHigh {
				c.loaded = false
			} else if !c.loaded && c.p <= pLow {
				c.loaded = true
			}
			rate, bound := -fillRate*d, pLow
			if c.loaded {
				rate, bound = fillRate*(1-d), pHigh
			}
			seg := rem
			p0 := c.p
			if toBound := (bound - c.p) / rate; toBound <= rem {
				seg, c.p = toBound, bound
			} else {
				c.p += rate * seg
			}
			power := 0.26 * P
			if c.loaded {
				power = P * (0.86 + 0.12*((p0+c.p)/2-pLow))
				loadedSec += seg
			}
			kwh += power * seg / 3600
			pInt += (p0 + c.p) / 2 * seg
			rem -= seg
		}
		kwh *= (1 + e.effLoss) * (1 + 0.05*e.bearing)
	}
	load := loadedSec / dt
	c.loadEMA = lag(c.loadEMA, load, dt, 900)
	running := e.mode == Running
	target := e.outdoor + 8
	if running {
		target = 72 + 18*c.loadEMA + 0.25*(e.outdoor-15) + 12*e.bearing
	}
	c.temp = lag(c.temp, target, dt, 900)
	out.kwh = kwh
	out.measure[mPressure] = pInt / dt * (1 + e.drift)
	out.measure[mSetpoint] = pSetpoint
	out.measure[mFlow] = load * capacityPerKW * P
	out.measure[mSpeed] = 100 * load
	out.measure[mMachineTemp] = c.temp
	out.measure[mVibration] = 0.05
	if running {
		out.measure[mVibration] = 2.0 + 0.8*load + 7*e.bearing + 0.1*vib
	}
	r.units += e.prod * plantRate * dt / 3600
	r.badUnits += e.prod * plantRate * dt / 3600 * 0.02
}

// hvac is a heat pump conditioning the hall: the load is the building's
// conductance UA = 0.1·rated kW/K times the gap between the free-floating
// indoor temperature (outdoor + internal gains / UA, gains following
// production) and the comfort band (20–22.5 °C occupied, 16–26 °C set back);
// cooling COP falls with outdoor heat (6.2 − 0.11·(T − 10)), heating COP
// rises with it (3.0 + 0.05·T); fans add 12 % of rated power (6 % set back).
type hvac struct {
	temp float64
	ar   ar
}

func (h *hvac) tick(r *dayRun, dt float64, out *tickOut) {
	e, P := &r.env, r.m.RatedKW
	noise := h.ar.next(r.rng)
	vib := r.rng.NormFloat64()
	ua := 0.1 * P
	gains := P * (0.06 + 0.2*e.prod)
	cool, heat, fans, airflow := 22.5, 20.0, 0.12*P, 40*P
	if !e.occupied {
		cool, heat, fans, airflow = 26, 16, 0.06*P, 20*P
	}
	// A drifting sensor reads high by driftC; the controller holds the
	// reading at the setpoint, so the hall really sits driftC lower.
	driftC := 10 * e.drift
	cool -= driftC
	heat -= driftC
	free := e.outdoor + gains/ua
	running := e.mode == Running
	var q, cop, indoor float64
	switch {
	case !running:
		indoor, fans, airflow = (free+20)/2, 0.005*P, 0
	case free > cool:
		q, cop, indoor = ua*(free-cool), clamp(6.2-0.11*(e.outdoor-10), 2, 6.5), cool
	case free < heat:
		q, cop, indoor = ua*(heat-free), clamp(3.0+0.05*e.outdoor, 2, 4.5), heat
	default:
		indoor = free
	}
	compressorKW := 0.0
	if q > 0 {
		compressorKW = q / cop
	}
	power := math.Min((fans*(1+0.06*e.bearing)+compressorKW)*(1+e.effLoss)*(1+0.02*noise), 1.1*P)
	out.kwh = power * dt / 3600
	h.temp = lag(h.temp, 38+0.6*math.Max(e.outdoor, 0)+10*compressorKW/P+8*e.bearing, dt, 600)
	out.measure[mIndoor] = indoor + driftC
	out.measure[mMachineTemp] = h.temp
	out.measure[mFlow] = airflow
	if q > 0 {
		out.measure[mCOP] = cop / (1 + e.effLoss)
	}
	out.measure[mSpeed] = 100 * airflow / (40 * P)
	out.measure[mVibration] = 0.05
	if running {
		out.measure[mVibration] = 1.1 + 6*e.bearing + 0.08*vib
	}
	r.units += e.prod * plantRate * dt / 3600
	r.badUnits += e.prod * plantRate * dt / 3600 * 0.02
}

// motor is a conveyor drive: power = rated·(0.10 + 0.32·speed + 0.42·load·speed)
// with speed the shift's belt speed and load the material on the belt
// (production, heavier when the material is wet); 3 % of rated when idle.
// At full speed it moves 720 items an hour.
type motor struct {
	temp float64
	ar   ar
}

func (c *motor) tick(r *dayRun, dt float64, out *tickOut) {
	e, P := &r.env, r.m.RatedKW
	noise := c.ar.next(r.rng)
	vib := r.rng.NormFloat64()
	var power, speed float64
	switch e.mode {
	case Running:
		speed = e.level
		load := clamp(e.prod/math.Max(e.level, 0.01)*(0.85+0.1*noise)*(1+0.03*(e.moisture-10)), 0, 1.3)
		power = P * (0.10 + 0.32*speed + 0.42*load*speed) * (1 + e.effLoss) * (1 + 0.08*e.bearing)
		r.units += 720 * e.prod * dt / 3600
		r.badUnits += 720 * e.prod * dt / 3600 * 0.005
	case Idle:
		power = 0.03 * P
	default:
		power = 0.002 * P
	}
	out.kwh = power * dt / 3600
	c.temp = lag(c.temp, 30+45*power/P+15*e.bearing, dt, 1200)
	out.measure[mSpeed] = 100 * speed
	out.measure[mMachineTemp] = c.temp * (1 + e.drift)
	out.measure[mVibration] = 0.1
	if e.mode == Running {
		out.measure[mVibration] = 1.6 + 1.2*speed + 7*e.bearing + 0.1*vib
	}
}

// phase is a stage of a machine cycle: its nominal duration, the share of
// the machine's cycle power it draws, and the pressure ramp across it.
type phase struct {
	dur, frac, p0, p1 float64
}

// Press cycle of the hydraulic pump: build pressure (7 s), hold at 180 bar
// (9 s), return (5 s), then dwell while parts are loaded (3 s at full
// production, longer when slower).
var pumpPhases = []phase{{7, 0.95, 20, 180}, {9, 0.55, 180, 180}, {5, 0.40, 180, 20}, {3, 0.22, 20, 20}}

// Moulding cycle: close (2 s), inject (3 s), hold (4 s), cool (16 s),
// open and eject (3 s), dwell (1 s at full production); cycle power is the
// hydraulics' share, the barrel heaters come on top.
var mouldPhases = []phase{{2, 0.45, 0, 0}, {3, 1.0, 0, 0}, {4, 0.6, 0, 0}, {16, 0.12, 0, 0}, {3, 0.35, 0, 0}, {1, 0.08, 0, 0}}

// cycler steps through phases; each cycle's durations are drawn when it starts.
type cycler struct {
	phases []phase
	durs   []float64
	idx    int
	left   float64
}

func newCycler(ph []phase, rng *rand.Rand) cycler {
	c := cycler{phases: ph, durs: make([]float64, len(ph))}
	c.restart(1, rng)
	// Start at a random point of the dwell so machines are out of phase.
	c.idx = len(ph) - 1
	c.left = c.durs[c.idx] * rng.Float64()
	return c
}

// restart draws the next cycle: ±5 % jitter on every phase, the dwell
// stretched as production slows (1 + 3·(1 − prod) times nominal).
func (c *cycler) restart(prod float64, rng *rand.Rand) {
	for i, p := range c.phases {
		c.durs[i] = p.dur * (1 + 0.05*rng.NormFloat64())
	}
	last := len(c.phases) - 1
	c.durs[last] *= 1 + 3*(1-clamp(prod, 0, 1))
	c.durs[last] = math.Max(c.durs[last], 0.2)
	c.idx, c.left = 0, c.durs[0]
}

// advance runs the cycle for dt seconds and returns the integral of the
// phases' power share (seconds) and of pressure (bar·s), and how many cycles
// completed. A cycle starts only while the machine keeps producing.
func (c *cycler) advance(dt, prod float64, rng *rand.Rand) (fracSec, pressSec float64, cycles int) {
	for rem := dt; rem > 0; {
		seg := math.Min(rem, c.left)
		p := c.phases[c.idx]
		d := c.durs[c.idx]
		// Pressure ramps linearly from p0 to p1 across the phase.
		f0 := 1 - c.left/d
		f1 := f0 + seg/d
		pressSec += seg * (p.p0 + (p.p1-p.p0)*(f0+f1)/2)
		fracSec += seg * p.frac
		c.left -= seg
		rem -= seg
		if c.left <= 1e-12 {
			if c.idx == len(c.phases)-1 {
				cycles++
				c.restart(prod, rng)
			} else {
				c.idx++
				c.left = c.durs[c.idx]
			}
		}
	}
	return fracSec, pressSec, cycles
}

// pump is a hydraulic press pump running press cycles (one part each) while
// production runs, unloaded at 8 % of rated power between shifts.
type pump struct {
	temp float64
	cyc  cycler
	ar   ar
}

func (p *pump) tick(r *dayRun, dt float64, out *tickOut) {
	e, P := &r.env, r.m.RatedKW
	noise := p.ar.next(r.rng)
	vib := r.rng.NormFloat64()
	var kwh, pressure, duty float64
	switch e.mode {
	case Running:
		fracSec, pressSec, cycles := p.cyc.advance(dt, e.prod, r.rng)
		duty = fracSec / dt
		kwh = P * fracSec / 3600 * (1 + e.effLoss) * (1 + 0.08*e.bearing) * (1 + 0.01*noise)
		pressure = pressSec / dt
		r.units += float64(cycles)
		r.badUnits += float64(cycles) * 0.01
	case Idle:
		duty, pressure = 0.08, 5
		kwh = 0.08 * P * dt / 3600
	default:
		kwh = 0.002 * P * dt / 3600
	}
	out.kwh = kwh
	p.temp = lag(p.temp, 32+30*duty+12*e.bearing, dt, 1800)
	out.measure[mPressure] = pressure * (1 + e.drift)
	out.measure[mSetpoint] = 180
	out.measure[mSpeed] = 100 * e.prod
	if e.mode != Running {
		out.measure[mSpeed] = 0
	}
	out.measure[mMachineTemp] = p.temp
	out.measure[mVibration] = 0.1
	if e.mode == Running {
		out.measure[mVibration] = 2.8 + 6*e.bearing + 0.12*vib
	}
}

// moulder is an injection-moulding machine: hydraulics (72 % of rated power
// at full draw) follow the moulding cycle, four parts per shot; the barrel
// heaters (28 % of rated) run at a duty that rises with pellet moisture and a
// cold hall, and harder when a zone has failed. Idle, the heaters keep the
// barrel warm at 30 % duty.
type moulder struct {
	temp float64
	cyc  cycler
	ar   ar
}

const cavities = 4

func (m *moulder) tick(r *dayRun, dt float64, out *tickOut) {
	e, P := &r.env, r.m.RatedKW
	noise := m.ar.next(r.rng)
	vib := r.rng.NormFloat64()
	var kwh, duty, speed float64
	melt := e.outdoor + 5
	switch e.mode {
	case Running:
		fracSec, _, cycles := m.cyc.advance(dt, e.prod, r.rng)
		duty = clamp((0.42+0.35*e.moisture+0.004*(20-e.outdoor))*(1+e.heater), 0, 1)
		kwh = (0.72*P*fracSec/dt*(1+e.effLoss) + 0.28*P*duty) * dt / 3600 * (1 + 0.01*noise)
		parts := float64(cycles * cavities)
		r.units += parts
		r.badUnits += parts * (0.015 + 0.25*e.heater)
		melt = 228 - 30*e.heater + 1.5*noise
		speed = 100 * e.prod
	case Idle:
		duty = 0.3
		kwh = (0.28*P*duty + 0.03*P) * dt / 3600
		melt = 200
	default:
		kwh = 0.002 * P * dt / 3600
	}
	out.kwh = kwh
	m.temp = lag(m.temp, melt, dt, 600)
	out.measure[mMachineTemp] = m.temp * (1 + e.drift)
	out.measure[mSpeed] = speed
	out.measure[mVibration] = 0.1
	if e.mode == Running {
		out.measure[mVibration] = 1.4 + 5*e.bearing + 0.1*vib
	}
}
