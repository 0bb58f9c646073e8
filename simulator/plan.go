package simulator

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// Shifts (factory local time): weekdays 06–14 at full output and 14–22 at
// 80 %, Saturdays 06–14 at 50 %, nights and Sundays no production.
func shiftLevel(wd time.Weekday, hour int) float64 {
	switch {
	case hour < 6 || hour >= 22 || wd == time.Sunday:
		return 0
	case wd == time.Saturday:
		if hour < 14 {
			return 0.5
		}
		return 0
	case hour < 14:
		return 1
	default:
		return 0.8
	}
}

// plantRate is the plant's output at full production, units per hour; the
// compressor and the HVAC report it as their production_count (the
// production they serve).
const plantRate = 300

// window is a span of a forced mode (maintenance or fault), unix seconds.
type window struct {
	start, end int64
	mode       Mode
}

// incidentSpan is an incident in unix seconds.
type incidentSpan struct {
	start, end int64
	typ        IncidentType
	mag        float64
}

// env is a machine's surroundings at a minute: what the plant, the weather
// and the injected incidents impose.
type env struct {
	mode     Mode
	level    float64 // shift level (0, 0.5, 0.8, 1)
	prod     float64 // production intensity: level × the day's order book × noise
	occupied bool    // the hall is in use (HVAC comfort setpoints)
	outdoor  float64
	humidity float64
	moisture float64 // material moisture %, NaN where the machine has none

	leak, effLoss, heater, bearing, drift float64
}

// dayRun simulates one machine through one UTC day.
type dayRun struct {
	g         *Generator
	m         Machine
	day       int64
	start     int64
	rng       *rand.Rand
	windows   []window
	spans     []incidentSpan
	incidents []Incident

	env      env
	envUntil int64
	model    model

	units, badUnits float64 // cumulative since midnight UTC
}

func (g *Generator) newDayRun(m Machine, d int64) *dayRun {
	id := idHash(m.ID)
	r := &dayRun{
		g: g, m: m, day: d, start: d * day,
		rng: rand.New(rand.NewPCG(g.cfg.Seed, mix(id^mix(uint64(d)^0xD1B54A32D192ED03)))),
	}
	r.windows = g.maintenance(m, r.start)
	for pd := d - 3; pd <= d; pd++ {
		fault, inc := g.plan(m, pd)
		if fault.end > r.start && fault.start < r.start+day && pd >= d-1 {
			r.windows = append(r.windows, fault)
		}
		if inc.end > r.start && inc.start < r.start+day {
			r.spans = append(r.spans, inc)
			r.incidents = append(r.incidents, Incident{
				MachineID: m.ID, Type: inc.typ, Magnitude: inc.mag,
				Start: time.Unix(inc.start, 0).UTC(), End: time.Unix(inc.end, 0).UTC(),
				Description: describe(m, inc),
			})
		}
	}
	slices.SortFunc(r.windows, func(a, b window) int { return int(a.start - b.start) })
	r.model = newModel(m, float64(m.Interval/time.Second), r.rng)
	return r
}

// maintenance returns the scheduled maintenance windows overlapping the UTC
// day starting at start: every fourth Sunday, 07:00–11:00 local time, the
// week chosen per machine.
func (g *Generator) maintenance(m Machine, start int64) []window {
	var out []window
	loc := m.Site.Location
	for off := int64(-1); off <= 1; off++ {
		noon := time.Unix(start+off*day+day/2, 0).In(loc)
		if noon.Weekday() != time.Sunday {
			continue
		}
		y, mo, dd := noon.Date()
		week := floorDiv(time.Date(y, mo, dd, 0, 0, 0, 0, time.UTC).Unix(), 7*day)
		if (uint64(week)+idHash(m.ID))%4 != 0 {
			continue
		}
		w := window{
			start: time.Date(y, mo, dd, 7, 0, 0, 0, loc).Unix(),
			end:   time.Date(y, mo, dd, 11, 0, 0, 0, loc).Unix(),
			mode:  Maintenance,
		}
		if w.end > start && w.start < start+day {
			out = append(out, w)
		}
	}
	return out
}

// plan draws the day's fault and incident of a machine. The draws are made
// in a fixed order whatever their outcome, so changing a rate does not move
// the other events. An event that does not happen has start = end = 0.
func (g *Generator) plan(m Machine, d int64) (fault window, inc incidentSpan) {
	r := rand.New(rand.NewPCG(g.cfg.Seed^0x5EEDFA17, mix(idHash(m.ID)^mix(uint64(d)^0x8CB92BA72F3D8DD7))))
	uFault, faultMin, faultDur := r.Float64(), r.Int64N(1440), 15+r.Int64N(106)
	uInc, incKind, incMin, incHours, incMag := r.Float64(), r.IntN(1<<20), r.Int64N(1440), 6+r.Int64N(67), r.Float64()
	start := d * day
	if uFault < g.cfg.FaultRate {
		fault = window{start: start + faultMin*60, end: start + (faultMin+faultDur)*60, mode: Fault}
	}
	kinds := incidentKinds(m.Type)
	if uInc < g.cfg.IncidentRate && len(kinds) > 0 {
		k := kinds[incKind%len(kinds)]
		lo, hi := magnitudeRange(k)
		inc = incidentSpan{start: start + incMin*60, end: start + incMin*60 + incHours*3600, typ: k, mag: lo + (hi-lo)*incMag}
	}
	return fault, inc
}

func incidentKinds(t MachineType) []IncidentType {
	switch t {
	case Compressor:
		return []IncidentType{AirLeak, EfficiencyLoss, BearingWear, SensorDrift}
	case InjectionMolding:
		return []IncidentType{HeaterFault, EfficiencyLoss, SensorDrift}
	default:
		return []IncidentType{EfficiencyLoss, BearingWear, SensorDrift}
	}
}

// magnitudeRange is the range of an incident's magnitude: for an air leak
// the leak's flow as a share of compressor capacity, for an efficiency loss
// the extra power, for a heater fault the extra heater duty, for bearing
// wear the final severity (power +8 %, vibration +7 mm/s at 1), for sensor
// drift the final relative error of the reading.
func magnitudeRange(k IncidentType) (lo, hi float64) {
	switch k {
	case AirLeak:
		return 0.10, 0.25
	case EfficiencyLoss:
		return 0.08, 0.20
	case HeaterFault:
		return 0.30, 0.60
	case BearingWear:
		return 0.40, 1.00
	default: // SensorDrift
		return 0.05, 0.15
	}
}

func describe(m Machine, s incidentSpan) string {
	pct := s.mag * 100
	switch s.typ {
	case AirLeak:
		return fmt.Sprintf("%s: compressed-air leak of %.0f %% of capacity; load rises, most visible at night and on weekends", m.Name, pct)
	case EfficiencyLoss:
		return fmt.Sprintf("%s: efficiency loss, %.0f %% more power for the same work", m.Name, pct)
	case HeaterFault:
		return fmt.Sprintf("%s: barrel heater zone fault; other zones run %.0f %% harder, melt temperature drops, scrap rises", m.Name, pct)
	case BearingWear:
		return fmt.Sprintf("%s: bearing wear ramping to severity %.2f (vibration, temperature and friction losses rise)", m.Name, s.mag)
	default:
		if m.Type == HVAC {
			return fmt.Sprintf("%s: indoor temperature sensor drifting to %.1f °C high; the controller follows it and overcools", m.Name, s.mag*10)
		}
		return fmt.Sprintf("%s: process sensor (pressure or temperature) drifting to %.0f %% high", m.Name, pct)
	}
}

// tick advances the machine by one sampling interval starting at t and
// returns the mode it was in.
func (r *dayRun) tick(t int64, dt float64, out *tickOut) Mode {
	if t >= r.envUntil {
		r.refreshEnv(t)
		r.envUntil = (floorDiv(t, 60) + 1) * 60
	}
	*out = tickOut{}
	for i := range out.measure {
		out.measure[i] = math.NaN()
	}
	out.measure[mOutdoor] = r.env.outdoor
	out.measure[mHumidity] = r.env.humidity
	out.measure[mMoisture] = r.env.moisture
	r.model.tick(r, dt, out)
	return r.env.mode
}

// refreshEnv evaluates the machine's surroundings at t (once a minute).
func (r *dayRun) refreshEnv(t int64) {
	g, m := r.g, r.m
	site := m.Site
	lt := time.Unix(t, 0).In(site.Location)
	wd, hour := lt.Weekday(), lt.Hour()
	e := &r.env
	e.level = shiftLevel(wd, hour)
	y, mo, dd := lt.Date()
	localDay := uint64(time.Date(y, mo, dd, 0, 0, 0, 0, time.UTC).Unix() / day)
	order := clamp(1+0.08*gauss(g.siteKey(site.Name, localDay, 1)), 0.75, 1.2)
	e.prod = 0
	if e.level > 0 {
		e.prod = e.level * order * (1 + 0.04*gauss(g.siteKey(site.Name, uint64(t/60), 2)))
	}
	e.occupied = e.level > 0 || (wd != time.Sunday && wd != time.Saturday && hour >= 5 && hour < 23)

	c := site.Climate
	doy := float64(lt.YearDay())
	localHour := float64(hour) + float64(lt.Minute())/60
	e.outdoor = c.MeanC +
		c.SeasonalAmpC*math.Cos(2*math.Pi*(doy-float64(c.WarmestDay))/365.25) +
		c.DiurnalAmpC*math.Cos(2*math.Pi*(localHour-15)/24) +
		c.WeatherSDC*smooth(g.siteKey(site.Name, 0, 3), t, 6*3600)
	// Relative humidity falls as the day warms (−2.5 %/K around the mean).
	e.humidity = clamp(c.HumidityPct-2.5*(e.outdoor-c.MeanC-c.SeasonalAmpC*math.Cos(2*math.Pi*(doy-float64(c.WarmestDay))/365.25))+
		6*smooth(g.siteKey(site.Name, 0, 4), t, 6*3600), 15, 100)

	switch m.Type {
	case InjectionMolding: // pellet moisture, % by lot (every 4 h)
		e.moisture = clamp(0.14+0.05*smooth(g.key(m.ID, 0, 5), t, 4*3600), 0.03, 0.3)
	case Motor, Conveyor, Other: // bulk material moisture, %
		e.moisture = clamp(10+2*smooth(g.key(m.ID, 0, 5), t, 4*3600), 5, 16)
	default:
		e.moisture = math.NaN()
	}

	e.mode = Running
	if producesParts(m.Type) && e.level == 0 {
		e.mode = Idle
	}
	for _, w := range r.windows {
		if t >= w.start && t < w.end {
			e.mode = w.mode
			if w.mode == Maintenance {
				break
			}
		}
	}

	e.leak, e.effLoss, e.heater, e.bearing, e.drift = 0, 0, 0, 0, 0
	for _, s := range r.spans {
		if t < s.start || t >= s.end {
			continue
		}
		progress := float64(t-s.start) / float64(s.end-s.start)
		switch s.typ {
		case AirLeak:
			e.leak += s.mag
		case EfficiencyLoss:
			e.effLoss += s.mag
		case HeaterFault:
			e.heater += s.mag
		case BearingWear:
			e.bearing += s.mag * progress
		case SensorDrift:
			e.drift += s.mag * progress
		}
	}
}

// producesParts reports whether the machine stops (idles) outside shifts;
// compressors and HVAC run around the clock.
func producesParts(t MachineType) bool {
	return t != Compressor && t != HVAC
}
