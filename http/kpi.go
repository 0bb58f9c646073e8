package http

import (
	"errors"
	nethttp "net/http"
	"time"

	"github.com/uptrace/bunrouter"

	"github.com/enms/enms-analytics/store"
)

// MaxKPIWindow is the longest window a KPI route computes over.
const MaxKPIWindow = 400 * 24 * time.Hour

// kpiSubject is the part every single-machine KPI response shares.
type kpiSubject struct {
	MachineID   string    `json:"machine_id"`
	MachineName string    `json:"machine_name"`
	MachineType string    `json:"machine_type"`
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
}

func subject(m store.MachineRef, start, end time.Time) kpiSubject {
	return kpiSubject{MachineID: m.MachineID, MachineName: m.MachineName, MachineType: m.MachineType, Start: start, End: end}
}

type secResponse struct {
	kpiSubject
	Value                *float64 `json:"value"` // null when nothing was produced
	Unit                 string   `json:"unit"`
	SECKWhPerUnit        *float64 `json:"sec_kwh_per_unit"`
	TotalEnergyKWh       float64  `json:"total_energy_kwh"`
	TotalProductionUnits float64  `json:"total_production_units"`
	TimePeriodHours      float64  `json:"time_period_hours"`
}

type peakDemandResponse struct {
	kpiSubject
	Value        float64    `json:"value"`
	Unit         string     `json:"unit"`
	PeakDemandKW float64    `json:"peak_demand_kw"`
	PeakTime     *time.Time `json:"peak_time"` // null when the window holds no readings
	AvgPowerKW   float64    `json:"avg_power_kw"`
}

type loadFactorResponse struct {
	kpiSubject
	Value             *float64 `json:"value"` // null when the machine drew no power
	Unit              string   `json:"unit"`
	LoadFactor        *float64 `json:"load_factor"`
	LoadFactorPercent *float64 `json:"load_factor_percent"`
	AvgPowerKW        float64  `json:"avg_power_kw"`
	MaxPowerKW        float64  `json:"max_power_kw"`
}

type energyCostResponse struct {
	kpiSubject
	Value          float64 `json:"value"`
	Unit           string  `json:"unit"`
	Currency       string  `json:"currency"`
	TotalCost      float64 `json:"total_cost"`
	TotalEnergyKWh float64 `json:"total_energy_kwh"`
	AvgRatePerKWh  float64 `json:"avg_rate_per_kwh"`
}

type carbonResponse struct {
	kpiSubject
	Value          float64  `json:"value"`
	Unit           string   `json:"unit"`
	TotalCO2Kg     float64  `json:"total_co2_kg"`
	TotalEnergyKWh float64  `json:"total_energy_kwh"`
	EmissionFactor float64  `json:"emission_factor"`
	CO2PerUnitKg   *float64 `json:"co2_per_unit_kg"`
}

type timePeriod struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Hours float64   `json:"hours"`
}

type kpiValue struct {
	Value       *float64 `json:"value"`
	Unit        string   `json:"unit"`
	Description string   `json:"description"`
}

type loadFactorValue struct {
	Value       *float64 `json:"value"`
	Percent     *float64 `json:"percent"`
	Unit        string   `json:"unit"`
	Description string   `json:"description"`
}

type costValue struct {
	Value       float64  `json:"value"`
	CostPerUnit *float64 `json:"cost_per_unit"`
	Unit        string   `json:"unit"`
	Currency    string   `json:"currency"`
	Description string   `json:"description"`
}

type carbonValue struct {
	Value       float64  `json:"value"`
	CO2PerUnit  *float64 `json:"co2_per_unit"`
	Unit        string   `json:"unit"`
	Description string   `json:"description"`
}

type allKPIs struct {
	SEC             kpiValue        `json:"sec"`
	PeakDemand      kpiValue        `json:"peak_demand"`
	LoadFactor      loadFactorValue `json:"load_factor"`
	EnergyCost      costValue       `json:"energy_cost"`
	CarbonIntensity carbonValue     `json:"carbon_intensity"`
}

type kpiTotals struct {
	TotalEnergyKWh       float64 `json:"total_energy_kwh"`
	AvgPowerKW           float64 `json:"avg_power_kw"`
	PeakDemandKW         float64 `json:"peak_demand_kw"`
	TotalProductionUnits float64 `json:"total_production_units"`
	TotalCost            float64 `json:"total_cost"`
	TotalCO2Kg           float64 `json:"total_co2_kg"`
}

type allKPIsResponse struct {
	kpiSubject
	TimePeriod timePeriod `json:"time_period"`
	KPIs       allKPIs    `json:"kpis"`
	Totals     kpiTotals  `json:"totals"`
}

type factorySummaryResponse struct {
	FactoryID      string    `json:"factory_id"`
	FactoryName    string    `json:"factory_name"`
	Start          time.Time `json:"start"`
	End            time.Time `json:"end"`
	MachineCount   int       `json:"machine_count"`
	ActiveMachines int       `json:"active_machines"`
	TotalEnergyKWh float64   `json:"total_energy_kwh"`
	TotalCost      float64   `json:"total_cost"`
	TotalCO2Kg     float64   `json:"total_co2_kg"`
	AvgLoadFactor  *float64  `json:"avg_load_factor"` // null when no machine drew power
}

type kpiDay struct {
	Day                  string    `json:"day"` // factory-local date, YYYY-MM-DD
	Timezone             string    `json:"timezone"`
	PeriodStart          time.Time `json:"period_start"`
	PeriodEnd            time.Time `json:"period_end"`
	TimePeriodHours      float64   `json:"time_period_hours"`
	TotalEnergyKWh       float64   `json:"total_energy_kwh"`
	AvgPowerKW           float64   `json:"avg_power_kw"`
	PeakDemandKW         float64   `json:"peak_demand_kw"`
	TotalProductionUnits float64   `json:"total_production_units"`
	SECKWhPerUnit        *float64  `json:"sec_kwh_per_unit"`
	LoadFactor           *float64  `json:"load_factor"`
	LoadFactorPercent    *float64  `json:"load_factor_percent"`
	TotalCost            float64   `json:"total_cost"`
	Currency             string    `json:"currency"`
	CostPerUnit          *float64  `json:"cost_per_unit"`
	TotalCO2Kg           float64   `json:"total_co2_kg"`
	CO2PerUnitKg         *float64  `json:"co2_per_unit_kg"`
	ComputedAt           time.Time `json:"computed_at"`
}

type kpiDailyResponse struct {
	MachineID string   `json:"machine_id"`
	Start     string   `json:"start"` // first date, inclusive
	End       string   `json:"end"`   // last date, exclusive
	Count     int      `json:"count"`
	Days      []kpiDay `json:"days"`
}

// kpiRequest parses machine_id, start and end, the parameters of every
// single-machine KPI route.
func kpiRequest(req bunrouter.Request) (id string, start, end time.Time, err error) {
	p := queryOf(req)
	if id, err = p.uuid("machine_id"); err != nil {
		return
	}
	start, end, err = p.window(MaxKPIWindow)
	return
}

// machineNotFound turns the store's not-found into a sentence naming the id.
func machineNotFound(err error, id string) error {
	if errors.Is(err, store.ErrNotFound) {
		return notFoundf("no machine has id %s; GET machines lists them", id)
	}
	return err
}

func (s *Server) kpiSEC(w nethttp.ResponseWriter, req bunrouter.Request) error {
	id, start, end, err := kpiRequest(req)
	if err != nil {
		return err
	}
	k, err := s.cfg.Store.SEC(req.Context(), id, start, end)
	if err != nil {
		return machineNotFound(err, id)
	}
	writeJSON(w, nethttp.StatusOK, secResponse{kpiSubject: subject(k.MachineRef, start, end),
		Value: k.SECKWhPerUnit, Unit: "kWh/unit", SECKWhPerUnit: k.SECKWhPerUnit,
		TotalEnergyKWh: k.TotalEnergyKWh, TotalProductionUnits: k.TotalProductionUnits, TimePeriodHours: k.TimePeriodHours})
	return nil
}

func (s *Server) kpiPeakDemand(w nethttp.ResponseWriter, req bunrouter.Request) error {
	id, start, end, err := kpiRequest(req)
	if err != nil {
		return err
	}
	k, err := s.cfg.Store.PeakDemand(req.Context(), id, start, end)
	if err != nil {
		return machineNotFound(err, id)
	}
	writeJSON(w, nethttp.StatusOK, peakDemandResponse{kpiSubject: subject(k.MachineRef, start, end),
		Value: k.PeakDemandKW, Unit: "kW", PeakDemandKW: k.PeakDemandKW, PeakTime: utcPtr(k.PeakTime), AvgPowerKW: k.AvgPowerKW})
	return nil
}

func (s *Server) kpiLoadFactor(w nethttp.ResponseWriter, req bunrouter.Request) error {
	id, start, end, err := kpiRequest(req)
	if err != nil {
		return err
	}
	k, err := s.cfg.Store.LoadFactor(req.Context(), id, start, end)
	if err != nil {
		return machineNotFound(err, id)
	}
	writeJSON(w, nethttp.StatusOK, loadFactorResponse{kpiSubject: subject(k.MachineRef, start, end),
		Value: k.LoadFactor, Unit: "ratio", LoadFactor: k.LoadFactor, LoadFactorPercent: k.LoadFactorPercent,
		AvgPowerKW: k.AvgPowerKW, MaxPowerKW: k.MaxPowerKW})
	return nil
}

func (s *Server) kpiEnergyCost(w nethttp.ResponseWriter, req bunrouter.Request) error {
	id, start, end, err := kpiRequest(req)
	if err != nil {
		return err
	}
	k, err := s.cfg.Store.EnergyCost(req.Context(), id, start, end)
	if err != nil {
		return machineNotFound(err, id)
	}
	writeJSON(w, nethttp.StatusOK, energyCostResponse{kpiSubject: subject(k.MachineRef, start, end),
		Value: k.TotalCost, Unit: k.Currency, Currency: k.Currency, TotalCost: k.TotalCost,
		TotalEnergyKWh: k.TotalEnergyKWh, AvgRatePerKWh: k.AvgRatePerKWh})
	return nil
}

func (s *Server) kpiCarbon(w nethttp.ResponseWriter, req bunrouter.Request) error {
	id, start, end, err := kpiRequest(req)
	if err != nil {
		return err
	}
	k, err := s.cfg.Store.CarbonIntensity(req.Context(), id, start, end)
	if err != nil {
		return machineNotFound(err, id)
	}
	writeJSON(w, nethttp.StatusOK, carbonResponse{kpiSubject: subject(k.MachineRef, start, end),
		Value: k.TotalCO2Kg, Unit: "kg CO2", TotalCO2Kg: k.TotalCO2Kg, TotalEnergyKWh: k.TotalEnergyKWh,
		EmissionFactor: k.EmissionFactor, CO2PerUnitKg: k.CO2PerUnitKg})
	return nil
}

func (s *Server) kpiAll(w nethttp.ResponseWriter, req bunrouter.Request) error {
	id, start, end, err := kpiRequest(req)
	if err != nil {
		return err
	}
	k, err := s.cfg.Store.AllKPIs(req.Context(), id, start, end)
	if err != nil {
		return machineNotFound(err, id)
	}
	peak := k.PeakDemandKW
	writeJSON(w, nethttp.StatusOK, allKPIsResponse{
		kpiSubject: subject(k.MachineRef, start, end),
		TimePeriod: timePeriod{Start: start, End: end, Hours: k.TimePeriodHours},
		KPIs: allKPIs{
			SEC:        kpiValue{Value: k.SECKWhPerUnit, Unit: "kWh/unit", Description: "Specific Energy Consumption"},
			PeakDemand: kpiValue{Value: &peak, Unit: "kW", Description: "Maximum 15-minute average power"},
			LoadFactor: loadFactorValue{Value: k.LoadFactor, Percent: k.LoadFactorPercent, Unit: "ratio",
				Description: "Average over peak power"},
			EnergyCost: costValue{Value: k.TotalCost, CostPerUnit: k.CostPerUnit, Unit: k.Currency, Currency: k.Currency,
				Description: "Total energy cost with the factory's tariffs"},
			CarbonIntensity: carbonValue{Value: k.TotalCO2Kg, CO2PerUnit: k.CO2PerUnitKg, Unit: "kg CO2",
				Description: "Total CO2 emissions of the energy used"},
		},
		Totals: kpiTotals{TotalEnergyKWh: k.TotalEnergyKWh, AvgPowerKW: k.AvgPowerKW, PeakDemandKW: k.PeakDemandKW,
			TotalProductionUnits: k.TotalProductionUnits, TotalCost: k.TotalCost, TotalCO2Kg: k.TotalCO2Kg},
	})
	return nil
}

func (s *Server) kpiFactory(w nethttp.ResponseWriter, req bunrouter.Request) error {
	id, err := pathUUID(req, "id")
	if err != nil {
		return err
	}
	start, end, err := queryOf(req).window(MaxKPIWindow)
	if err != nil {
		return err
	}
	f, err := s.cfg.Store.FactorySummary(req.Context(), id, start, end)
	if errors.Is(err, store.ErrNotFound) {
		return notFoundf("no factory has id %s", id)
	}
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, factorySummaryResponse{FactoryID: f.FactoryID, FactoryName: f.FactoryName,
		Start: start, End: end, MachineCount: f.MachineCount, ActiveMachines: f.ActiveMachines,
		TotalEnergyKWh: f.TotalEnergyKWh, TotalCost: f.TotalCost, TotalCO2Kg: f.TotalCO2Kg, AvgLoadFactor: f.AvgLoadFactor})
	return nil
}

// MaxKPIDays is the most daily snapshots one request returns.
const MaxKPIDays = 1000

func (s *Server) kpiDaily(w nethttp.ResponseWriter, req bunrouter.Request) error {
	p := queryOf(req)
	id, err := p.uuid("machine_id")
	if err != nil {
		return err
	}
	start, end, err := p.window(MaxKPIDays * 24 * time.Hour)
	if err != nil {
		return err
	}
	limit, err := p.limit(MaxKPIDays, MaxKPIDays)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Store.Machine(req.Context(), id); err != nil {
		return machineNotFound(err, id)
	}
	// Days are factory-local dates: the window's dates select them.
	from, to := start.Format(time.DateOnly), end.Format(time.DateOnly)
	fromDay, _ := time.Parse(time.DateOnly, from)
	toDay, _ := time.Parse(time.DateOnly, to)
	days, err := s.cfg.Store.KPIDays(req.Context(), id, fromDay, toDay, limit)
	if err != nil {
		return err
	}
	resp := kpiDailyResponse{MachineID: id, Start: from, End: to, Count: len(days), Days: make([]kpiDay, len(days))}
	for i, d := range days {
		resp.Days[i] = kpiDay{Day: d.Day.Format(time.DateOnly), Timezone: d.Timezone,
			PeriodStart: d.PeriodStart.UTC(), PeriodEnd: d.PeriodEnd.UTC(), TimePeriodHours: d.TimePeriodHours,
			TotalEnergyKWh: d.TotalEnergyKWh, AvgPowerKW: d.AvgPowerKW, PeakDemandKW: d.PeakDemandKW,
			TotalProductionUnits: d.TotalProductionUnits, SECKWhPerUnit: d.SECKWhPerUnit, LoadFactor: d.LoadFactor,
			LoadFactorPercent: d.LoadFactorPercent, TotalCost: d.TotalCost, Currency: d.Currency,
			CostPerUnit: d.CostPerUnit, TotalCO2Kg: d.TotalCO2Kg, CO2PerUnitKg: d.CO2PerUnitKg, ComputedAt: d.ComputedAt.UTC()}
	}
	writeJSON(w, nethttp.StatusOK, resp)
	return nil
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
