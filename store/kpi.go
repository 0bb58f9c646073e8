package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// KPI results mirror the EnMS KPI functions (migration 000004): each field is
// one result column. Totals are 0, never nil, when the window holds no data;
// a ratio that is undefined (SEC without production, a load factor without
// load) is nil.

// MachineRef names the machine a KPI was computed for.
type MachineRef struct {
	MachineID   string
	MachineName string
	MachineType string
}

// SEC is calculate_sec: specific energy consumption, kWh per unit produced.
type SEC struct {
	MachineRef
	SECKWhPerUnit        *float64
	TotalEnergyKWh       float64
	TotalProductionUnits float64
	TimePeriodHours      float64
}

// PeakDemand is calculate_peak_demand: the largest 15-minute average power.
type PeakDemand struct {
	MachineRef
	PeakDemandKW float64
	PeakTime     *time.Time // nil when the window holds no readings
	AvgPowerKW   float64
}

// LoadFactor is calculate_load_factor: average over peak power.
type LoadFactor struct {
	MachineRef
	LoadFactor        *float64
	LoadFactorPercent *float64
	AvgPowerKW        float64
	MaxPowerKW        float64
}

// EnergyCost is calculate_energy_cost: energy priced with the factory's tariffs.
type EnergyCost struct {
	MachineRef
	TotalCost      float64
	TotalEnergyKWh float64
	AvgRatePerKWh  float64
	Currency       string
}

// CarbonIntensity is calculate_carbon_intensity: CO₂ of the energy used.
type CarbonIntensity struct {
	MachineRef
	TotalCO2Kg     float64
	TotalEnergyKWh float64
	EmissionFactor float64
	CO2PerUnitKg   *float64
}

// AllKPIs is calculate_all_kpis, plus the currency of the cost (both from
// analytics_all_kpis, one pass).
type AllKPIs struct {
	MachineRef
	TimePeriodHours      float64
	TotalEnergyKWh       float64
	AvgPowerKW           float64
	PeakDemandKW         float64
	TotalProductionUnits float64
	SECKWhPerUnit        *float64
	LoadFactor           *float64
	LoadFactorPercent    *float64
	TotalCost            float64
	CostPerUnit          *float64
	TotalCO2Kg           float64
	CO2PerUnitKg         *float64
	Currency             string
}

// FactorySummary is get_factory_summary.
type FactorySummary struct {
	FactoryID      string
	FactoryName    string
	MachineCount   int
	ActiveMachines int
	TotalEnergyKWh float64
	TotalCost      float64
	TotalCO2Kg     float64
	AvgLoadFactor  *float64
}

// kpiQuery runs a KPI function for one machine over [start, end). The
// machine is joined first so that an unknown id yields no row (ErrNotFound)
// instead of a row of zeros. cols are the function's result columns to
// select, as expressions over k.
func (s *Store) kpiQuery(ctx context.Context, op, fn, cols, machineID string, start, end time.Time, dest ...any) error {
	q := `SELECT m.id::text, m.name, m.type::text, ` + cols + `
		FROM machines m LEFT JOIN LATERAL ` + fn + `(m.id, $2::timestamptz, $3::timestamptz) k ON true
		WHERE m.id = $1`
	err := s.pool.QueryRow(ctx, q, machineID, start, end).Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s: machine %s: %w", op, machineID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", op, unavailable(err))
	}
	return nil
}

func (r *MachineRef) dest() []any { return []any{&r.MachineID, &r.MachineName, &r.MachineType} }

// SEC computes the specific energy consumption of a machine over [start, end).
func (s *Store) SEC(ctx context.Context, machineID string, start, end time.Time) (SEC, error) {
	var v SEC
	err := s.kpiQuery(ctx, "calculate sec", "calculate_sec", `
		k.sec_kwh_per_unit::float8, coalesce(k.total_energy_kwh, 0)::float8,
		coalesce(k.total_production_units, 0)::float8, coalesce(k.time_period_hours, 0)::float8`,
		machineID, start, end, append(v.dest(),
			&v.SECKWhPerUnit, &v.TotalEnergyKWh, &v.TotalProductionUnits, &v.TimePeriodHours)...)
	return v, err
}

// PeakDemand computes the peak demand of a machine over [start, end).
func (s *Store) PeakDemand(ctx context.Context, machineID string, start, end time.Time) (PeakDemand, error) {
	var v PeakDemand
	err := s.kpiQuery(ctx, "calculate peak demand", "calculate_peak_demand", `
		coalesce(k.peak_demand_kw, 0)::float8, k.peak_time, coalesce(k.avg_power_kw, 0)::float8`,
		machineID, start, end, append(v.dest(), &v.PeakDemandKW, &v.PeakTime, &v.AvgPowerKW)...)
	return v, err
}

// LoadFactor computes the load factor of a machine over [start, end).
func (s *Store) LoadFactor(ctx context.Context, machineID string, start, end time.Time) (LoadFactor, error) {
	var v LoadFactor
	err := s.kpiQuery(ctx, "calculate load factor", "calculate_load_factor", `
		k.load_factor::float8, k.load_factor_percent::float8,
		coalesce(k.avg_power_kw, 0)::float8, coalesce(k.max_power_kw, 0)::float8`,
		machineID, start, end, append(v.dest(),
			&v.LoadFactor, &v.LoadFactorPercent, &v.AvgPowerKW, &v.MaxPowerKW)...)
	return v, err
}

// EnergyCost computes the energy cost of a machine over [start, end).
func (s *Store) EnergyCost(ctx context.Context, machineID string, start, end time.Time) (EnergyCost, error) {
	var v EnergyCost
	err := s.kpiQuery(ctx, "calculate energy cost", "calculate_energy_cost", `
		coalesce(k.total_cost, 0)::float8, coalesce(k.total_energy_kwh, 0)::float8,
		coalesce(k.avg_rate_per_kwh, 0)::float8, coalesce(k.currency, 'USD')::text`,
		machineID, start, end, append(v.dest(),
			&v.TotalCost, &v.TotalEnergyKWh, &v.AvgRatePerKWh, &v.Currency)...)
	return v, err
}

// CarbonIntensity computes the CO₂ emissions of a machine over [start, end).
func (s *Store) CarbonIntensity(ctx context.Context, machineID string, start, end time.Time) (CarbonIntensity, error) {
	var v CarbonIntensity
	err := s.kpiQuery(ctx, "calculate carbon intensity", "calculate_carbon_intensity", `
		coalesce(k.total_co2_kg, 0)::float8, coalesce(k.total_energy_kwh, 0)::float8,
		coalesce(k.emission_factor, 0)::float8, k.co2_per_unit_kg::float8`,
		machineID, start, end, append(v.dest(),
			&v.TotalCO2Kg, &v.TotalEnergyKWh, &v.EmissionFactor, &v.CO2PerUnitKg)...)
	return v, err
}

// AllKPIs computes every KPI of a machine over [start, end) in one statement.
func (s *Store) AllKPIs(ctx context.Context, machineID string, start, end time.Time) (AllKPIs, error) {
	var v AllKPIs
	err := s.kpiQuery(ctx, "calculate all kpis", "analytics_all_kpis", `
		coalesce(k.time_period_hours, 0)::float8, coalesce(k.total_energy_kwh, 0)::float8,
		coalesce(k.avg_power_kw, 0)::float8, coalesce(k.peak_demand_kw, 0)::float8,
		coalesce(k.total_production_units, 0)::float8, k.sec_kwh_per_unit::float8,
		k.load_factor::float8, k.load_factor_percent::float8,
		coalesce(k.total_cost, 0)::float8, k.cost_per_unit::float8,
		coalesce(k.total_co2_kg, 0)::float8, k.co2_per_unit_kg::float8,
		coalesce(k.currency, 'USD')::text`,
		machineID, start, end, append(v.dest(),
			&v.TimePeriodHours, &v.TotalEnergyKWh, &v.AvgPowerKW, &v.PeakDemandKW,
			&v.TotalProductionUnits, &v.SECKWhPerUnit, &v.LoadFactor, &v.LoadFactorPercent,
			&v.TotalCost, &v.CostPerUnit, &v.TotalCO2Kg, &v.CO2PerUnitKg, &v.Currency)...)
	return v, err
}

// FactorySummary computes get_factory_summary over [start, end); an unknown
// factory is an error wrapping ErrNotFound.
func (s *Store) FactorySummary(ctx context.Context, factoryID string, start, end time.Time) (FactorySummary, error) {
	v := FactorySummary{FactoryID: factoryID}
	err := s.pool.QueryRow(ctx, `
		SELECT f.name, coalesce(k.machine_count, 0)::int, coalesce(k.active_machines, 0)::int,
		       coalesce(k.total_energy_kwh, 0)::float8, coalesce(k.total_cost, 0)::float8,
		       coalesce(k.total_co2_kg, 0)::float8, k.avg_load_factor::float8
		FROM factories f LEFT JOIN LATERAL get_factory_summary(f.id, $2::timestamptz, $3::timestamptz) k ON true
		WHERE f.id = $1`, factoryID, start, end).Scan(&v.FactoryName, &v.MachineCount, &v.ActiveMachines,
		&v.TotalEnergyKWh, &v.TotalCost, &v.TotalCO2Kg, &v.AvgLoadFactor)
	if errors.Is(err, pgx.ErrNoRows) {
		return v, fmt.Errorf("factory summary: factory %s: %w", factoryID, ErrNotFound)
	}
	if err != nil {
		return v, fmt.Errorf("factory summary: %w", unavailable(err))
	}
	return v, nil
}

// KPIDay is one row of kpi_daily_snapshots: a machine's KPIs over one
// factory-local day.
type KPIDay struct {
	MachineID            string
	Day                  time.Time // midnight UTC of the local date; only the date counts
	Timezone             string
	PeriodStart          time.Time
	PeriodEnd            time.Time
	TimePeriodHours      float64
	TotalEnergyKWh       float64
	AvgPowerKW           float64
	PeakDemandKW         float64
	TotalProductionUnits float64
	SECKWhPerUnit        *float64
	LoadFactor           *float64
	LoadFactorPercent    *float64
	TotalCost            float64
	Currency             string
	CostPerUnit          *float64
	TotalCO2Kg           float64
	CO2PerUnitKg         *float64
	ComputedAt           time.Time
}

const kpiDayColumns = `machine_id::text, day, timezone, period_start, period_end, time_period_hours,
	total_energy_kwh, avg_power_kw, peak_demand_kw, total_production_units, sec_kwh_per_unit,
	load_factor, load_factor_percent, total_cost, currency, cost_per_unit, total_co2_kg,
	co2_per_unit_kg, computed_at`

func scanKPIDay(row pgx.Row) (KPIDay, error) {
	var d KPIDay
	err := row.Scan(&d.MachineID, &d.Day, &d.Timezone, &d.PeriodStart, &d.PeriodEnd, &d.TimePeriodHours,
		&d.TotalEnergyKWh, &d.AvgPowerKW, &d.PeakDemandKW, &d.TotalProductionUnits, &d.SECKWhPerUnit,
		&d.LoadFactor, &d.LoadFactorPercent, &d.TotalCost, &d.Currency, &d.CostPerUnit, &d.TotalCO2Kg,
		&d.CO2PerUnitKg, &d.ComputedAt)
	return d, err
}

// SnapshotKPIDay computes and upserts the KPI snapshot of a machine's
// factory-local day (day's year, month and date; its clock and zone are
// ignored) and returns it. Idempotent.
func (s *Store) SnapshotKPIDay(ctx context.Context, machineID string, day time.Time) (KPIDay, error) {
	date := time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, time.UTC)
	d, err := scanKPIDay(s.pool.QueryRow(ctx,
		`SELECT `+kpiDayColumns+` FROM kpi_snapshot_day($1, $2::date)`, machineID, date.Format(time.DateOnly)))
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "P0002" {
			return KPIDay{}, fmt.Errorf("snapshot kpi day: machine %s: %w", machineID, ErrNotFound)
		}
		return KPIDay{}, fmt.Errorf("snapshot kpi day %s of %s: %w", date.Format(time.DateOnly), machineID, unavailable(err))
	}
	return d, nil
}

// SnapshotKPIDayIfClosed is what the worker calls for every hour_closed and
// hour_revised event: when the hour starting at bucket is the last hour of
// its factory-local day, the day's snapshot is (re)written and returned with
// closed = true; otherwise nothing is written.
func (s *Store) SnapshotKPIDayIfClosed(ctx context.Context, machineID string, bucket time.Time) (day KPIDay, closed bool, err error) {
	var date *time.Time
	if err := s.pool.QueryRow(ctx, `SELECT kpi_day_closed_by($1, $2)`, machineID, bucket).Scan(&date); err != nil {
		return KPIDay{}, false, fmt.Errorf("day closed by hour %s of %s: %w", bucket.Format(time.RFC3339), machineID, unavailable(err))
	}
	if date == nil {
		return KPIDay{}, false, nil
	}
	day, err = s.SnapshotKPIDay(ctx, machineID, *date)
	return day, err == nil, err
}

// SnapshotKPIDaysIfClosed is SnapshotKPIDayIfClosed for a run of hours of
// one machine, asking in one round trip which local days the hours close,
// and returns the snapshots written, oldest day first.
func (s *Store) SnapshotKPIDaysIfClosed(ctx context.Context, machineID string, buckets []time.Time) ([]KPIDay, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT d FROM (SELECT DISTINCT kpi_day_closed_by($1, b) AS d FROM unnest($2::timestamptz[]) AS b) days
		 WHERE d IS NOT NULL ORDER BY d`, machineID, buckets)
	if err != nil {
		return nil, fmt.Errorf("days closed by %d hours of %s: %w", len(buckets), machineID, unavailable(err))
	}
	dates, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	if err != nil {
		return nil, fmt.Errorf("days closed by %d hours of %s: %w", len(buckets), machineID, unavailable(err))
	}
	days := make([]KPIDay, 0, len(dates))
	for _, date := range dates {
		day, err := s.SnapshotKPIDay(ctx, machineID, date)
		if err != nil {
			return days, err
		}
		days = append(days, day)
	}
	return days, nil
}

// RefreshKPIDayOfHour is what the worker calls for an hour_revised event:
// when the factory-local day holding the hour starting at bucket already
// has a snapshot (its day closed), the snapshot is recomputed and returned
// with refreshed = true; a day still open is left alone (it is written when
// it closes).
func (s *Store) RefreshKPIDayOfHour(ctx context.Context, machineID string, bucket time.Time) (day KPIDay, refreshed bool, err error) {
	var date *time.Time
	err = s.pool.QueryRow(ctx, `
		SELECT d.day FROM machines m JOIN factories f ON f.id = m.factory_id
		JOIN kpi_daily_snapshots d ON d.machine_id = m.id AND d.day = ($2::timestamptz AT TIME ZONE f.timezone)::date
		WHERE m.id = $1`, machineID, bucket).Scan(&date)
	if errors.Is(err, pgx.ErrNoRows) {
		return KPIDay{}, false, nil
	}
	if err != nil {
		return KPIDay{}, false, fmt.Errorf("day of revised hour %s of %s: %w", bucket.Format(time.RFC3339), machineID, unavailable(err))
	}
	day, err = s.SnapshotKPIDay(ctx, machineID, *date)
	return day, err == nil, err
}

// KPIDays returns a machine's daily snapshots with from <= day < to (dates),
// oldest first, at most limit of them.
func (s *Store) KPIDays(ctx context.Context, machineID string, from, to time.Time, limit int) ([]KPIDay, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+kpiDayColumns+` FROM kpi_daily_snapshots
		WHERE machine_id = $1 AND day >= $2::date AND day < $3::date ORDER BY day LIMIT $4`,
		machineID, from.Format(time.DateOnly), to.Format(time.DateOnly), limit)
	if err != nil {
		return nil, fmt.Errorf("list kpi days: %w", unavailable(err))
	}
	days, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (KPIDay, error) { return scanKPIDay(r) })
	if err != nil {
		return nil, fmt.Errorf("list kpi days: %w", unavailable(err))
	}
	if days == nil {
		days = []KPIDay{}
	}
	return days, nil
}
