package simulator

import (
	"fmt"
	"strings"
	"time"
)

// Factory is a site of the demo plant as it is stored in `factories`.
type Factory struct {
	ID         UUID
	Name       string
	Location   string
	Timezone   string
	GridRegion string // factories.metadata->>'grid_region'
}

// MachineSpec is a machine of the demo plant as it is stored in `machines`.
type MachineSpec struct {
	ID         UUID
	Factory    string // Factory.Name
	Name       string
	Type       MachineType
	RatedKW    float64
	Interval   time.Duration // data_interval_seconds
	IsCritical bool
}

// Tariff is a row of `energy_tariffs`. StartHour/EndHour and Days are used
// only when TimeOfUse is set; Days uses 0 = Sunday, and nil means every day.
type Tariff struct {
	ID        UUID
	Factory   string
	Name      string
	Rate      float64
	Currency  string
	TimeOfUse bool
	StartHour int
	EndHour   int
	Days      []int32
}

// CarbonFactor is a row of `carbon_factors` (kg CO₂ per kWh of a grid region).
type CarbonFactor struct {
	ID       UUID
	Region   string
	KgPerKWh float64
	Source   string
}

// Plant is a set of factories, machines, tariffs and carbon factors that
// SeedPlant loads into a database.
type Plant struct {
	Factories     []Factory
	Machines      []MachineSpec
	Tariffs       []Tariff
	CarbonFactors []CarbonFactor
}

// DemoPlant is the EnMS demo plant: two factories, seven machines, a
// time-of-use tariff in California, a flat tariff in Germany and the grid
// carbon factors. Its ids are fixed, so URLs in the README stay valid; a
// database that already has a factory or machine of the same name keeps its
// own id.
var DemoPlant = Plant{
	Factories: []Factory{
		{ID: mustUUID("6f1c0a00-0000-4000-8000-000000000001"), Name: "Demo Manufacturing Plant", Location: "California, USA", Timezone: "America/Los_Angeles", GridRegion: "US-California"},
		{ID: mustUUID("6f1c0a00-0000-4000-8000-000000000002"), Name: "European Production Facility", Location: "Berlin, Germany", Timezone: "Europe/Berlin", GridRegion: "Germany"},
	},
	Machines: []MachineSpec{
		{ID: mustUUID("6f1c0a00-0000-4000-8000-000000000101"), Factory: "Demo Manufacturing Plant", Name: "Compressor-1", Type: Compressor, RatedKW: 55, Interval: time.Second, IsCritical: true},
		{ID: mustUUID("6f1c0a00-0000-4000-8000-000000000102"), Factory: "Demo Manufacturing Plant", Name: "HVAC-Main", Type: HVAC, RatedKW: 150, Interval: 10 * time.Second},
		{ID: mustUUID("6f1c0a00-0000-4000-8000-000000000103"), Factory: "Demo Manufacturing Plant", Name: "Conveyor-A", Type: Motor, RatedKW: 22, Interval: 10 * time.Second},
		{ID: mustUUID("6f1c0a00-0000-4000-8000-000000000104"), Factory: "Demo Manufacturing Plant", Name: "Hydraulic-Pump-1", Type: Pump, RatedKW: 45, Interval: 30 * time.Second},
		{ID: mustUUID("6f1c0a00-0000-4000-8000-000000000105"), Factory: "Demo Manufacturing Plant", Name: "Injection-Molding-1", Type: InjectionMolding, RatedKW: 120, Interval: 30 * time.Second, IsCritical: true},
		{ID: mustUUID("6f1c0a00-0000-4000-8000-000000000201"), Factory: "European Production Facility", Name: "Compressor-EU-1", Type: Compressor, RatedKW: 90, Interval: time.Second, IsCritical: true},
		{ID: mustUUID("6f1c0a00-0000-4000-8000-000000000202"), Factory: "European Production Facility", Name: "HVAC-EU-North", Type: HVAC, RatedKW: 200, Interval: 10 * time.Second},
	},
	Tariffs: []Tariff{
		{ID: mustUUID("6f1c0a00-0000-4000-8000-000000000301"), Factory: "Demo Manufacturing Plant", Name: "Peak (weekdays 09-21)", Rate: 0.25, Currency: "USD", TimeOfUse: true, StartHour: 9, EndHour: 21, Days: []int32{1, 2, 3, 4, 5}},
		{ID: mustUUID("6f1c0a00-0000-4000-8000-000000000302"), Factory: "Demo Manufacturing Plant", Name: "Off-peak (21-09)", Rate: 0.10, Currency: "USD", TimeOfUse: true, StartHour: 21, EndHour: 9},
		{ID: mustUUID("6f1c0a00-0000-4000-8000-000000000303"), Factory: "European Production Facility", Name: "Flat rate", Rate: 0.18, Currency: "EUR"},
	},
	CarbonFactors: []CarbonFactor{
		{ID: mustUUID("6f1c0a00-0000-4000-8000-000000000401"), Region: "US-California", KgPerKWh: 0.22, Source: "EnMS demo (CAISO grid average)"},
		{ID: mustUUID("6f1c0a00-0000-4000-8000-000000000402"), Region: "Germany", KgPerKWh: 0.35, Source: "EnMS demo (German grid average)"},
		{ID: mustUUID("6f1c0a00-0000-4000-8000-000000000403"), Region: "default", KgPerKWh: 0.45, Source: "EnMS demo (world average)"},
	},
}

// Names returns the plant's machine names in order.
func (p Plant) Names() []string {
	out := make([]string, len(p.Machines))
	for i, m := range p.Machines {
		out[i] = m.Name
	}
	return out
}

// UUID is a 16-byte identifier, as stored in uuid columns.
type UUID [16]byte

// ParseUUID parses the canonical 8-4-4-4-12 hex form.
func ParseUUID(s string) (UUID, error) {
	var u UUID
	h := strings.ReplaceAll(s, "-", "")
	if len(h) != 32 || len(s) != 36 {
		return u, fmt.Errorf("%q is not a UUID (want 8-4-4-4-12 hex digits)", s)
	}
	for i := range 16 {
		hi, ok1 := hexDigit(h[2*i])
		lo, ok2 := hexDigit(h[2*i+1])
		if !ok1 || !ok2 {
			return u, fmt.Errorf("%q is not a UUID (want 8-4-4-4-12 hex digits)", s)
		}
		u[i] = hi<<4 | lo
	}
	return u, nil
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func mustUUID(s string) UUID {
	u, err := ParseUUID(s)
	if err != nil {
		panic(err)
	}
	return u
}

// String formats u in the canonical 8-4-4-4-12 form.
func (u UUID) String() string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
