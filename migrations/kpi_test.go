package migrations_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the tests place local days in America/Los_Angeles and Europe/Berlin

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/enms/enms-analytics/internal/testdb"
	"github.com/enms/enms-analytics/migrations"
)

// The KPI tests below run the functions of 000004 against the demo plant of
// issue 2: Demo Manufacturing Plant (America/Los_Angeles, grid region
// US-California 0.22 kg/kWh, tariffs weekday 09–21 0.25 USD and every day
// 21–09 0.10 USD) and European Production Facility (Europe/Berlin, Germany
// 0.35 kg/kWh, flat 0.18 EUR). The fixture's 'default' region factor is 0.40,
// not the built-in 0.45, so that a test can tell the two apart.

var (
	losAngeles = mustLoad("America/Los_Angeles")
	berlin     = mustLoad("Europe/Berlin")
)

func mustLoad(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// kpiPlant is the demo plant in a fresh database.
type kpiPlant struct {
	pool     *pgxpool.Pool
	demo     string // Demo Manufacturing Plant
	eu       string // European Production Facility
	hvac     string // HVAC-Main, demo plant, 10 s readings
	conveyor string // Conveyor-A, demo plant, 10 s readings
	pump     string // Hydraulic-Pump-1, demo plant, 30 s readings
	euComp   string // Compressor-EU-1, European facility
}

func setupPlant(t *testing.T) kpiPlant {
	t.Helper()
	p := kpiPlant{pool: testdb.New(t)}
	p.demo = p.id(t, `INSERT INTO factories (name, location, timezone, metadata)
		VALUES ('Demo Manufacturing Plant', 'California', 'America/Los_Angeles', '{"grid_region": "US-California"}')
		RETURNING id::text`)
	p.eu = p.id(t, `INSERT INTO factories (name, location, timezone, metadata)
		VALUES ('European Production Facility', 'Germany', 'Europe/Berlin', '{"grid_region": "Germany"}')
		RETURNING id::text`)
	machine := func(factory, name, typ string, kw float64, interval int) string {
		return p.id(t, `INSERT INTO machines (factory_id, name, type, rated_power_kw, data_interval_seconds)
			VALUES ($1, $2, $3, $4, $5) RETURNING id::text`, factory, name, typ, kw, interval)
	}
	p.hvac = machine(p.demo, "HVAC-Main", "hvac", 150, 10)
	p.conveyor = machine(p.demo, "Conveyor-A", "conveyor", 22, 10)
	p.pump = machine(p.demo, "Hydraulic-Pump-1", "pump", 45, 30)
	p.euComp = machine(p.eu, "Compressor-EU-1", "compressor", 90, 1)
	p.exec(t, `INSERT INTO energy_tariffs (factory_id, name, rate_per_kwh, currency, is_time_of_use, start_hour, end_hour, applicable_days, valid_from, valid_to, is_active) VALUES
		($1, 'Peak (weekdays 09-21)', 0.25, 'USD', true, 9, 21, '{1,2,3,4,5}', '2024-01-01', NULL, true),
		($1, 'Off-peak (21-09)', 0.10, 'USD', true, 21, 9, NULL, '2024-01-01', NULL, true),
		-- never applies: inactive, and expired; each would dominate the cost if it did
		($1, 'Old peak (inactive)', 9.99, 'USD', true, 0, 24, NULL, NULL, NULL, false),
		($1, 'Peak 2025 (expired)', 5.00, 'USD', true, 0, 24, NULL, '2025-01-01', '2025-12-31', true),
		($2, 'EU flat', 0.18, 'EUR', false, NULL, NULL, NULL, '2024-01-01', NULL, true)`, p.demo, p.eu)
	p.exec(t, `INSERT INTO carbon_factors (region, emission_factor_kg_co2_per_kwh, source, valid_from, is_active) VALUES
		('US-California', 0.22, 'CARB', '2024-01-01', true),
		('Germany', 0.35, 'UBA', '2024-01-01', true),
		('default', 0.40, 'fixture', '2024-01-01', true),
		('Germany', 0.99, 'superseded', '2020-01-01', true),
		('US-California', 0.99, 'withdrawn', '2025-06-01', false)`)
	return p
}

func (p kpiPlant) id(t *testing.T, sql string, args ...any) string {
	t.Helper()
	var id string
	if err := p.pool.QueryRow(context.Background(), sql, args...).Scan(&id); err != nil {
		t.Fatalf("%s: %v", firstLine(sql), err)
	}
	return id
}

func (p kpiPlant) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := p.pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", firstLine(sql), err)
	}
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// energyHour writes one energy_readings_1hour row: 360 readings (10 s) of
// average power avgKW, energy kwh, and the hour's peak 15-minute demand.
func (p kpiPlant) energyHour(t *testing.T, machine string, bucket time.Time, kwh, avgKW, peakKW float64, peakAt time.Time) {
	t.Helper()
	p.exec(t, `INSERT INTO energy_readings_1hour
		(bucket, machine_id, reading_count, sum_power_kw, min_power_kw, max_power_kw, total_energy_kwh, peak_demand_kw, peak_demand_at)
		VALUES ($1, $2, 360, $3::float8 * 360, $3::float8, $4, $5, $4, $6)`, bucket, machine, avgKW, peakKW, kwh, peakAt)
}

// productionHour writes one production_data_1hour row.
func (p kpiPlant) productionHour(t *testing.T, machine string, bucket time.Time, units int64, running, idle, maintenance, fault, offline float64) {
	t.Helper()
	p.exec(t, `INSERT INTO production_data_1hour
		(bucket, machine_id, reading_count, total_production_count, running_seconds, idle_seconds,
		 maintenance_seconds, fault_seconds, offline_seconds)
		VALUES ($1, $2, 360, $3, $4, $5, $6, $7, $8)`, bucket, machine, units, running, idle, maintenance, fault, offline)
}

// rampDay writes the local day starting at midnight: in local hour k
// (0–23) the machine uses 10+k kWh at an average of 10+k kW, its peak
// 15-minute demand is 12+k kW at k:15, and it makes 100 units. It also
// writes a 1000 kWh hour just before and just after the day, which a
// half-open window over the day must not count.
func (p kpiPlant) rampDay(t *testing.T, machine string, midnight time.Time) {
	t.Helper()
	for k := -1; k <= 24; k++ {
		bucket := midnight.Add(time.Duration(k) * time.Hour)
		if k < 0 || k == 24 {
			p.energyHour(t, machine, bucket, 1000, 1000, 1000, bucket)
			p.productionHour(t, machine, bucket, 1000, 3600, 0, 0, 0, 0)
			continue
		}
		v := float64(10 + k)
		p.energyHour(t, machine, bucket, v, v, v+2, bucket.Add(15*time.Minute))
		p.productionHour(t, machine, bucket, 100, 3600, 0, 0, 0, 0)
	}
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// rows runs a query and returns its rows as column → value maps.
func rows(t *testing.T, q querier, sql string, args ...any) []map[string]any {
	t.Helper()
	r, err := q.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	ms, err := pgx.CollectRows(r, pgx.RowToMap)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return ms
}

// one runs a query that must return exactly one row.
func one(t *testing.T, q querier, sql string, args ...any) map[string]any {
	t.Helper()
	ms := rows(t, q, sql, args...)
	if len(ms) != 1 {
		t.Fatalf("%s: %d rows, want 1", sql, len(ms))
	}
	return ms[0]
}

// expect compares the named columns of a row: float64 within 1e-9 relative
// (1e-12 absolute near 0), nil for SQL NULL, others by equality.
func expect(t *testing.T, what string, row map[string]any, want map[string]any) {
	t.Helper()
	cols := make([]string, 0, len(want))
	for c := range want {
		cols = append(cols, c)
	}
	sort.Strings(cols)
	for _, c := range cols {
		got, ok := row[c]
		if !ok {
			t.Errorf("%s: no column %q in %v", what, c, row)
			continue
		}
		switch w := want[c].(type) {
		case nil:
			if got != nil {
				t.Errorf("%s: %s = %v, want NULL", what, c, got)
			}
		case float64:
			g, ok := got.(float64)
			if !ok {
				t.Errorf("%s: %s = %v (%T), want %v", what, c, got, got, w)
			} else if math.Abs(g-w) > 1e-9*math.Max(math.Abs(w), 1e-3) {
				t.Errorf("%s: %s = %.12g, want %.12g", what, c, g, w)
			}
		case time.Time:
			g, ok := got.(time.Time)
			if !ok || !g.Equal(w) {
				t.Errorf("%s: %s = %v, want %v", what, c, got, w.UTC())
			}
		default:
			if fmt.Sprint(got) != fmt.Sprint(w) {
				t.Errorf("%s: %s = %v, want %v", what, c, got, w)
			}
		}
	}
}

// Expectations for rampDay on a weekday of the demo plant, computed by hand:
//
//	energy  Σ_{k=0..23} (10+k)                       = 240 + 276          = 516 kWh
//	  off-peak hours 0–8 and 21–23 (21→9 wraps):  Σ_{0..8}(10+k) = 90+36 = 126,
//	                                              Σ_{21..23}(10+k) = 30+66 = 96  → 222 kWh
//	  peak hours 9–20:                            Σ_{9..20}(10+k) = 120+174       = 294 kWh
//	cost    222 × 0.10 + 294 × 0.25 = 22.2 + 73.5                           = 95.7 USD
//	units   24 × 100                                                        = 2400
//	avg kW  Σ sum_power / Σ count = 516·360 / (24·360)                      = 21.5
//	peak    12 + 23 = 35 kW at 23:15 local
//	CO₂     516 × 0.22 (US-California)                                      = 113.52 kg
const (
	rampEnergy   = 516.0
	rampOffPeak  = 222.0
	rampPeakHrs  = 294.0
	rampUnits    = 2400
	rampAvgPower = 21.5
	rampPeak     = 35.0
)

// TestKPIWeekdayAcrossWrappingTariff prices a whole Wednesday of the demo
// plant: the 21→9 tariff matches across midnight, the weekday tariff in
// between, both in Los Angeles time (the UTC hours are 7 hours later), and
// the inactive and expired tariffs never apply.
func TestKPIWeekdayAcrossWrappingTariff(t *testing.T) {
	t.Parallel()
	p := setupPlant(t)
	start := time.Date(2026, 6, 10, 0, 0, 0, 0, losAngeles) // Wednesday, PDT = UTC−7
	end := start.AddDate(0, 0, 1)
	p.rampDay(t, p.hvac, start)

	cost := 0.10*rampOffPeak + 0.25*rampPeakHrs // 95.7 USD
	co2 := 0.22 * rampEnergy                    // 113.52 kg
	peakAt := time.Date(2026, 6, 10, 23, 15, 0, 0, losAngeles)

	expect(t, "calculate_energy_cost", one(t, p.pool, `SELECT * FROM calculate_energy_cost($1, $2, $3)`, p.hvac, start, end), map[string]any{
		"total_cost": cost, "total_energy_kwh": rampEnergy, "avg_rate_per_kwh": cost / rampEnergy, "currency": "USD",
	})
	expect(t, "calculate_sec", one(t, p.pool, `SELECT * FROM calculate_sec($1, $2, $3)`, p.hvac, start, end), map[string]any{
		"sec_kwh_per_unit": rampEnergy / rampUnits, // 0.215 kWh/unit
		"total_energy_kwh": rampEnergy, "total_production_units": int64(rampUnits), "time_period_hours": 24.0,
	})
	expect(t, "calculate_peak_demand", one(t, p.pool, `SELECT * FROM calculate_peak_demand($1, $2, $3)`, p.hvac, start, end), map[string]any{
		"peak_demand_kw": rampPeak, "peak_time": peakAt, "avg_power_kw": rampAvgPower,
	})
	expect(t, "calculate_load_factor", one(t, p.pool, `SELECT * FROM calculate_load_factor($1, $2, $3)`, p.hvac, start, end), map[string]any{
		"load_factor":         rampAvgPower / rampPeak, // 21.5 / 35 = 0.6142857…
		"load_factor_percent": 100 * rampAvgPower / rampPeak, "avg_power_kw": rampAvgPower, "max_power_kw": rampPeak,
	})
	expect(t, "calculate_carbon_intensity", one(t, p.pool, `SELECT * FROM calculate_carbon_intensity($1, $2, $3)`, p.hvac, start, end), map[string]any{
		"total_co2_kg": co2, "total_energy_kwh": rampEnergy, "emission_factor": 0.22,
		"co2_per_unit_kg": co2 / rampUnits, // 0.0473 kg/unit
	})
	// calculate_all_kpis agrees with every single function, tariff and factor included.
	expect(t, "calculate_all_kpis", one(t, p.pool, `SELECT * FROM calculate_all_kpis($1, $2, $3)`, p.hvac, start, end), map[string]any{
		"machine_name": "HVAC-Main", "time_period_hours": 24.0, "total_energy_kwh": rampEnergy,
		"avg_power_kw": rampAvgPower, "peak_demand_kw": rampPeak, "total_production_units": int64(rampUnits),
		"sec_kwh_per_unit": rampEnergy / rampUnits, "load_factor": rampAvgPower / rampPeak,
		"load_factor_percent": 100 * rampAvgPower / rampPeak, "total_cost": cost,
		"cost_per_unit": cost / rampUnits, // 0.039875 USD/unit
		"total_co2_kg":  co2, "co2_per_unit_kg": co2 / rampUnits,
	})
}

// TestKPIWeekendTariff prices a Saturday of the same profile. Only the
// every-day 21→9 tariff covers a weekend; the weekday tariff's
// applicable_days {1..5} leave 09–21 uncovered, and those hours fall to the
// factory's flat (non-time-of-use) tariff, else the default rate — 0.15, or
// the setting enms.default_rate_per_kwh.
func TestKPIWeekendTariff(t *testing.T) {
	t.Parallel()
	p := setupPlant(t)
	ctx := context.Background()
	sat := time.Date(2026, 6, 13, 0, 0, 0, 0, losAngeles)
	wed := time.Date(2026, 6, 10, 0, 0, 0, 0, losAngeles)
	p.rampDay(t, p.hvac, sat)
	p.rampDay(t, p.conveyor, wed)
	const q = `SELECT * FROM calculate_energy_cost($1, $2, $3)`

	// 222 × 0.10 + 294 × 0.15 (default) = 22.2 + 44.1 = 66.3 USD
	expect(t, "Saturday, default rate", one(t, p.pool, q, p.hvac, sat, sat.AddDate(0, 0, 1)), map[string]any{
		"total_cost": 0.10*rampOffPeak + 0.15*rampPeakHrs, "currency": "USD",
	})
	// calculate_all_kpis uses the same rule (not an average of the tariffs).
	expect(t, "Saturday, all kpis", one(t, p.pool, `SELECT * FROM calculate_all_kpis($1, $2, $3)`, p.hvac, sat, sat.AddDate(0, 0, 1)), map[string]any{
		"total_cost": 0.10*rampOffPeak + 0.15*rampPeakHrs,
	})

	// The configured default: 22.2 + 294 × 0.20 = 22.2 + 58.8 = 81.0 USD.
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT set_config('enms.default_rate_per_kwh', '0.20', true)`); err != nil {
		t.Fatal(err)
	}
	expect(t, "Saturday, configured default", one(t, tx, q, p.hvac, sat, sat.AddDate(0, 0, 1)), map[string]any{
		"total_cost": 0.10*rampOffPeak + 0.20*rampPeakHrs,
	})
	if _, err := tx.Exec(ctx, `SELECT set_config('enms.default_rate_per_kwh', 'cheap', true)`); err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(ctx, q, p.hvac, sat, sat.AddDate(0, 0, 1))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "22023" || !strings.Contains(pgErr.Message, "enms.default_rate_per_kwh must be a number") {
		t.Errorf("a non-numeric default rate: err = %v, want SQLSTATE 22023 naming the setting", err)
	}
	tx.Rollback(ctx)

	// A flat tariff of 0.12 takes the uncovered hours: 22.2 + 294 × 0.12 = 22.2 + 35.28 = 57.48.
	p.exec(t, `INSERT INTO energy_tariffs (factory_id, name, rate_per_kwh, currency, is_time_of_use)
		VALUES ($1, 'Flat', 0.12, 'USD', false)`, p.demo)
	expect(t, "Saturday, flat tariff", one(t, p.pool, q, p.hvac, sat, sat.AddDate(0, 0, 1)), map[string]any{
		"total_cost": 0.10*rampOffPeak + 0.12*rampPeakHrs,
	})
	// A matching time-of-use tariff still wins over the flat one, even the
	// cheaper night rate: the weekday stays 95.7.
	expect(t, "Wednesday with a flat tariff", one(t, p.pool, q, p.conveyor, wed, wed.AddDate(0, 0, 1)), map[string]any{
		"total_cost": 0.10*rampOffPeak + 0.25*rampPeakHrs,
	})
}

// TestKPIFactoryInAnotherTimezone prices a Berlin day with the EU flat
// tariff and Germany's carbon factor, then the same energy with the demo
// plant's tariffs (p_factory_id), whose hours are read in Los Angeles time.
func TestKPIFactoryInAnotherTimezone(t *testing.T) {
	t.Parallel()
	p := setupPlant(t)
	start := time.Date(2026, 6, 10, 0, 0, 0, 0, berlin) // CEST = UTC+2: 2026-06-09 22:00Z
	end := start.AddDate(0, 0, 1)
	for k := 0; k < 24; k++ {
		b := start.Add(time.Duration(k) * time.Hour)
		p.energyHour(t, p.euComp, b, 20, 20, 20, b) // 20 kWh every hour: 480 kWh
	}
	expect(t, "EU flat tariff", one(t, p.pool, `SELECT * FROM calculate_energy_cost($1, $2, $3)`, p.euComp, start, end), map[string]any{
		"total_cost": 480 * 0.18, "total_energy_kwh": 480.0, "avg_rate_per_kwh": 0.18, "currency": "EUR", // 86.4 EUR
	})
	expect(t, "Germany grid", one(t, p.pool, `SELECT * FROM calculate_carbon_intensity($1, $2, $3)`, p.euComp, start, end), map[string]any{
		"total_co2_kg": 480 * 0.35, "emission_factor": 0.35, "co2_per_unit_kg": nil, // 168 kg; no production
	})
	expect(t, "all kpis in Berlin", one(t, p.pool, `SELECT * FROM calculate_all_kpis($1, $2, $3)`, p.euComp, start, end), map[string]any{
		"total_cost": 480 * 0.18, "total_co2_kg": 480 * 0.35, "cost_per_unit": nil, "sec_kwh_per_unit": nil,
		"load_factor": 1.0, // constant 20 kW: average = peak
	})
	// The region argument wins (480 × 0.22 = 105.6); an unknown region falls
	// back to the factory's grid region.
	expect(t, "region argument", one(t, p.pool, `SELECT * FROM calculate_carbon_intensity($1, $2, $3, 'US-California')`, p.euComp, start, end), map[string]any{
		"total_co2_kg": 480 * 0.22, "emission_factor": 0.22,
	})
	expect(t, "unknown region", one(t, p.pool, `SELECT * FROM calculate_carbon_intensity($1, $2, $3, 'Atlantis')`, p.euComp, start, end), map[string]any{
		"total_co2_kg": 480 * 0.35, "emission_factor": 0.35,
	})
	// Priced with the demo plant's tariffs: the Berlin day is 2026-06-09 15:00
	// to 2026-06-10 15:00 in Los Angeles (Tuesday and Wednesday): peak hours
	// 15–20 and 9–14 (12 h), off-peak 21–23 and 0–8 (12 h):
	// 12 × 20 × 0.25 + 12 × 20 × 0.10 = 60 + 24 = 84 USD.
	expect(t, "priced by the demo plant", one(t, p.pool, `SELECT * FROM calculate_energy_cost($1, $2, $3, $4)`, p.euComp, start, end, p.demo), map[string]any{
		"total_cost": 84.0, "currency": "USD",
	})
	// Without a grid region the factor is region 'default' (0.40 in this
	// fixture), and without that the built-in 0.45.
	p.exec(t, `UPDATE factories SET metadata = '{}' WHERE id = $1`, p.eu)
	expect(t, "region 'default'", one(t, p.pool, `SELECT * FROM calculate_carbon_intensity($1, $2, $3)`, p.euComp, start, end), map[string]any{
		"total_co2_kg": 480 * 0.40, "emission_factor": 0.40,
	})
	p.exec(t, `UPDATE carbon_factors SET is_active = false WHERE region = 'default'`)
	expect(t, "built-in factor", one(t, p.pool, `SELECT * FROM calculate_all_kpis($1, $2, $3)`, p.euComp, start, end), map[string]any{
		"total_co2_kg": 480 * 0.45,
	})
}

// TestKPIEmptyWindow: an empty window, or one without data, is one row of
// zeros and NULL ratios; an unknown machine is no row; a reversed window is
// an error a person can read.
func TestKPIEmptyWindow(t *testing.T) {
	t.Parallel()
	p := setupPlant(t)
	at := time.Date(2026, 6, 10, 12, 0, 0, 0, losAngeles)
	p.rampDay(t, p.hvac, time.Date(2026, 6, 10, 0, 0, 0, 0, losAngeles))

	for _, w := range []struct {
		name       string
		start, end time.Time
		hours      float64
	}{
		{"start = end", at, at, 0},
		{"a day without data", at.AddDate(0, 1, 0), at.AddDate(0, 1, 1), 24},
	} {
		args := []any{p.hvac, w.start, w.end}
		expect(t, w.name+": sec", one(t, p.pool, `SELECT * FROM calculate_sec($1, $2, $3)`, args...), map[string]any{
			"sec_kwh_per_unit": nil, "total_energy_kwh": 0.0, "total_production_units": int64(0), "time_period_hours": w.hours,
		})
		expect(t, w.name+": peak", one(t, p.pool, `SELECT * FROM calculate_peak_demand($1, $2, $3)`, args...), map[string]any{
			"peak_demand_kw": 0.0, "peak_time": nil, "avg_power_kw": 0.0,
		})
		expect(t, w.name+": load factor", one(t, p.pool, `SELECT * FROM calculate_load_factor($1, $2, $3)`, args...), map[string]any{
			"load_factor": nil, "load_factor_percent": nil, "avg_power_kw": 0.0, "max_power_kw": 0.0,
		})
		expect(t, w.name+": cost", one(t, p.pool, `SELECT * FROM calculate_energy_cost($1, $2, $3)`, args...), map[string]any{
			"total_cost": 0.0, "total_energy_kwh": 0.0, "avg_rate_per_kwh": nil, "currency": "USD",
		})
		expect(t, w.name+": carbon", one(t, p.pool, `SELECT * FROM calculate_carbon_intensity($1, $2, $3)`, args...), map[string]any{
			"total_co2_kg": 0.0, "total_energy_kwh": 0.0, "emission_factor": 0.22, "co2_per_unit_kg": nil,
		})
		expect(t, w.name+": all", one(t, p.pool, `SELECT * FROM calculate_all_kpis($1, $2, $3)`, args...), map[string]any{
			"machine_name": "HVAC-Main", "time_period_hours": w.hours, "total_energy_kwh": 0.0, "avg_power_kw": 0.0,
			"peak_demand_kw": 0.0, "total_production_units": int64(0), "sec_kwh_per_unit": nil,
			"load_factor": nil, "load_factor_percent": nil, "total_cost": 0.0, "cost_per_unit": nil,
			"total_co2_kg": 0.0, "co2_per_unit_kg": nil,
		})
		expect(t, w.name+": operating hours", one(t, p.pool, `SELECT * FROM get_machine_operating_hours($1, $2, $3)`, args...), map[string]any{
			"total_hours": 0.0, "running_hours": 0.0, "idle_hours": 0.0, "downtime_hours": 0.0, "utilization_percent": nil,
		})
	}
	expect(t, "factory summary of an empty window", one(t, p.pool, `SELECT * FROM get_factory_summary($1, $2, $2)`, p.demo, at), map[string]any{
		"factory_name": "Demo Manufacturing Plant", "machine_count": int64(3), "active_machines": int64(3),
		"total_energy_kwh": 0.0, "total_cost": 0.0, "total_co2_kg": 0.0, "avg_load_factor": nil,
	})

	const unknown = "00000000-0000-0000-0000-000000000000"
	for _, fn := range []string{"calculate_sec", "calculate_peak_demand", "calculate_load_factor", "calculate_energy_cost",
		"calculate_carbon_intensity", "calculate_all_kpis", "get_machine_operating_hours", "get_factory_summary"} {
		if got := rows(t, p.pool, `SELECT * FROM `+fn+`($1, $2, $3)`, unknown, at, at.Add(time.Hour)); len(got) != 0 {
			t.Errorf("%s of an unknown id: %d rows, want 0", fn, len(got))
		}
		_, err := p.pool.Exec(context.Background(), `SELECT * FROM `+fn+`($1, $2, $3)`, p.hvac, at, at.Add(-time.Hour))
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "22023" || !strings.Contains(pgErr.Message, "ends") {
			t.Errorf("%s of a reversed window: err = %v, want SQLSTATE 22023 saying the window ends before it starts", fn, err)
		}
	}
}

// rawReadings inserts n readings of machine every 10 s from first, at
// power kw, with energy_kwh energy (nil: not reported).
func (p kpiPlant) rawReadings(t *testing.T, machine string, first time.Time, n int, kw float64, energy *float64) {
	t.Helper()
	p.exec(t, `INSERT INTO energy_readings (time, machine_id, power_kw, energy_kwh)
		SELECT $1::timestamptz + i * interval '10 seconds', $2::uuid, $3::float8, $4::float8
		FROM generate_series(0, $5::int - 1) AS i`,
		first, machine, kw, energy, n)
}

// TestKPIOneHour: a whole hour is read from the rollup; an hour that
// straddles a tariff boundary (08:30–09:30 local) is read from the raw
// readings and priced half at each rate, with readings on the boundaries
// of the half-open window counted exactly once.
func TestKPIOneHour(t *testing.T) {
	t.Parallel()
	p := setupPlant(t)
	p.rampDay(t, p.hvac, time.Date(2026, 6, 10, 0, 0, 0, 0, losAngeles))
	nine := time.Date(2026, 6, 10, 9, 0, 0, 0, losAngeles)
	// Local hour 9 of the ramp: 19 kWh at 0.25 = 4.75 USD; peak 21 kW at 09:15.
	expect(t, "whole hour", one(t, p.pool, `SELECT * FROM calculate_all_kpis($1, $2, $3)`, p.hvac, nine, nine.Add(time.Hour)), map[string]any{
		"time_period_hours": 1.0, "total_energy_kwh": 19.0, "total_cost": 19 * 0.25, "peak_demand_kw": 21.0,
		"avg_power_kw": 19.0, "total_production_units": int64(100), "total_co2_kg": 19 * 0.22,
	})

	// Conveyor-A samples every 10 s; energy_kwh is not reported, so each
	// reading stands for power × 10 s / 3600 s:
	//   08:30–09:00: 180 readings at 36 kW → 0.1 kWh each → 18 kWh at 0.10 = 1.8 USD
	//   09:00–09:30: 180 readings at 72 kW → 0.2 kWh each → 36 kWh at 0.25 = 9.0 USD
	// plus 1000 kW readings at 08:29:50 and at 09:30:00, just outside.
	p.rawReadings(t, p.conveyor, time.Date(2026, 6, 10, 8, 29, 50, 0, losAngeles), 1, 1000, nil)
	p.rawReadings(t, p.conveyor, time.Date(2026, 6, 10, 8, 30, 0, 0, losAngeles), 180, 36, nil)
	p.rawReadings(t, p.conveyor, nine, 180, 72, nil)
	p.rawReadings(t, p.conveyor, time.Date(2026, 6, 10, 9, 30, 0, 0, losAngeles), 1, 1000, nil)
	start, end := nine.Add(-30*time.Minute), nine.Add(30*time.Minute)
	expect(t, "straddling hour", one(t, p.pool, `SELECT * FROM calculate_energy_cost($1, $2, $3)`, p.conveyor, start, end), map[string]any{
		"total_energy_kwh": 54.0, "total_cost": 10.8, "avg_rate_per_kwh": 10.8 / 54,
	})
	// avg = (180·36 + 180·72) / 360 = 54 kW; peak = 72 kW from 09:00; 54/72 = 0.75.
	expect(t, "straddling hour peak", one(t, p.pool, `SELECT * FROM calculate_peak_demand($1, $2, $3)`, p.conveyor, start, end), map[string]any{
		"peak_demand_kw": 72.0, "peak_time": nine, "avg_power_kw": 54.0,
	})
	expect(t, "straddling hour load factor", one(t, p.pool, `SELECT * FROM calculate_load_factor($1, $2, $3)`, p.conveyor, start, end), map[string]any{
		"load_factor": 0.75, "load_factor_percent": 75.0, "max_power_kw": 72.0,
	})
	// A window inside one hour (09:05–09:20): 90 readings of 0.2 kWh = 18 kWh at 0.25.
	expect(t, "inside one hour", one(t, p.pool, `SELECT * FROM calculate_energy_cost($1, $2, $3)`, p.conveyor,
		nine.Add(5*time.Minute), nine.Add(20*time.Minute)), map[string]any{
		"total_energy_kwh": 18.0, "total_cost": 4.5,
	})
}

// TestKPIPartialHoursUseRawReadings: a window of 10:30–13:30 local reads
// 11:00 and 12:00 from the rollups and the half hours at its edges from
// the raw tables; a reported energy_kwh is used as reported.
func TestKPIPartialHoursUseRawReadings(t *testing.T) {
	t.Parallel()
	p := setupPlant(t)
	at := func(h, m int) time.Time { return time.Date(2026, 6, 10, h, m, 0, 0, losAngeles) }
	p.rawReadings(t, p.conveyor, at(10, 0), 180, 500, nil) // before the window
	p.rawReadings(t, p.conveyor, at(10, 30), 180, 36, nil) // 180 × 0.1 kWh = 18 kWh
	p.energyHour(t, p.conveyor, at(11, 0), 40, 40, 45, at(11, 15))
	p.energyHour(t, p.conveyor, at(12, 0), 50, 50, 55, at(12, 30))
	reported := 0.19                                            // metered, not 72 kW × 10 s = 0.2
	p.rawReadings(t, p.conveyor, at(13, 0), 180, 72, &reported) // 180 × 0.19 = 34.2 kWh
	p.rawReadings(t, p.conveyor, at(13, 30), 180, 500, nil)     // after the window
	p.exec(t, `INSERT INTO production_data (time, machine_id, production_count, operating_mode)
		SELECT $1::timestamptz + i * interval '10 seconds', $2::uuid, 5, 'running'::operating_mode FROM generate_series(0, 9) AS i`,
		at(10, 45), p.conveyor) // 10 × 5 = 50 units, 10 × 10 s = 100 s running
	p.productionHour(t, p.conveyor, at(11, 0), 300, 3600, 0, 0, 0, 0)
	p.productionHour(t, p.conveyor, at(12, 0), 300, 1800, 1800, 0, 0, 0)

	// energy 18 + 40 + 50 + 34.2 = 142.2 kWh, all in the weekday 09–21
	// tariff: 142.2 × 0.25 = 35.55 USD; units 50 + 300 + 300 = 650.
	// avg kW = (180·36 + 360·40 + 360·50 + 180·72) / 1080 = 51840 / 1080 = 48;
	// peak = max(36, 45, 55, 72) = 72 kW at 13:00; load factor 48/72.
	expect(t, "10:30–13:30", one(t, p.pool, `SELECT * FROM calculate_all_kpis($1, $2, $3)`, p.conveyor, at(10, 30), at(13, 30)), map[string]any{
		"time_period_hours": 3.0, "total_energy_kwh": 142.2, "total_cost": 142.2 * 0.25,
		"avg_power_kw": 48.0, "peak_demand_kw": 72.0, "load_factor": 48.0 / 72,
		"total_production_units": int64(650), "sec_kwh_per_unit": 142.2 / 650,
		"total_co2_kg": 142.2 * 0.22,
	})
	// running 100 + 3600 + 1800 = 5500 s, idle 1800 s, total 7300 s.
	expect(t, "operating hours 10:30–13:30", one(t, p.pool, `SELECT * FROM get_machine_operating_hours($1, $2, $3)`, p.conveyor, at(10, 30), at(13, 30)), map[string]any{
		"running_hours": 5500.0 / 3600, "idle_hours": 0.5, "total_hours": 7300.0 / 3600,
		"utilization_percent": 100 * 5500.0 / 7300,
	})
}

// TestKPIDaylightSavingDay prices the Sundays on which Los Angeles springs
// forward (2026-03-08: 23 hours, local 02:00 never happens) and falls back
// (2026-11-01: 25 hours): every hour is priced by its own local clock.
func TestKPIDaylightSavingDay(t *testing.T) {
	t.Parallel()
	p := setupPlant(t)
	start := time.Date(2026, 3, 8, 0, 0, 0, 0, losAngeles) // 08:00Z (PST)
	end := time.Date(2026, 3, 9, 0, 0, 0, 0, losAngeles)   // 07:00Z (PDT)
	for b := start; b.Before(end); b = b.Add(time.Hour) {
		p.energyHour(t, p.pump, b, 10, 10, 10, b)
	}
	// Local hours 0, 1, 3–8 and 21–23 (2 + 6 + 3 = 11) are off-peak at 0.10;
	// 9–20 (12 hours, a Sunday) fall to the default 0.15:
	// 11 × 10 × 0.10 + 12 × 10 × 0.15 = 11 + 18 = 29 USD over 230 kWh.
	expect(t, "spring forward", one(t, p.pool, `SELECT * FROM calculate_all_kpis($1, $2, $3)`, p.pump, start, end), map[string]any{
		"time_period_hours": 23.0, "total_energy_kwh": 230.0, "total_cost": 29.0,
	})

	// 2026-11-01, also a Sunday, falls back: 25 hours, local 01:00 twice.
	start = time.Date(2026, 11, 1, 0, 0, 0, 0, losAngeles) // 07:00Z (PDT)
	end = time.Date(2026, 11, 2, 0, 0, 0, 0, losAngeles)   // 08:00Z (PST)
	for b := start; b.Before(end); b = b.Add(time.Hour) {
		p.energyHour(t, p.pump, b, 10, 10, 10, b)
	}
	// Off-peak: 0, 1, 1, 2–8 and 21–23 (3 + 7 + 3 = 13 hours) at 0.10;
	// 9–20 (12 hours) at 0.15: 13 × 10 × 0.10 + 12 × 10 × 0.15 = 13 + 18 = 31 USD over 250 kWh.
	expect(t, "fall back", one(t, p.pool, `SELECT * FROM calculate_all_kpis($1, $2, $3)`, p.pump, start, end), map[string]any{
		"time_period_hours": 25.0, "total_energy_kwh": 250.0, "total_cost": 31.0,
	})
}

// TestKPIOperatingHours adds up the mode seconds of three hours.
func TestKPIOperatingHours(t *testing.T) {
	t.Parallel()
	p := setupPlant(t)
	start := time.Date(2026, 6, 10, 6, 0, 0, 0, time.UTC)
	p.productionHour(t, p.pump, start, 10, 3000, 600, 0, 0, 0)
	p.productionHour(t, p.pump, start.Add(time.Hour), 10, 1800, 0, 1200, 600, 0)
	p.productionHour(t, p.pump, start.Add(2*time.Hour), 0, 0, 0, 0, 0, 3600)
	p.productionHour(t, p.pump, start.Add(3*time.Hour), 0, 3600, 0, 0, 0, 0) // outside
	// running 3000 + 1800 = 4800 s, idle 600 s, downtime 1200 + 600 + 3600 =
	// 5400 s (maintenance + fault + offline), total 10800 s = 3 h;
	// utilization 4800 / 10800 = 44.4…%.
	expect(t, "three hours", one(t, p.pool, `SELECT * FROM get_machine_operating_hours($1, $2, $3)`, p.pump, start, start.Add(3*time.Hour)), map[string]any{
		"total_hours": 3.0, "running_hours": 4800.0 / 3600, "idle_hours": 600.0 / 3600,
		"downtime_hours": 1.5, "utilization_percent": 100 * 4800.0 / 10800,
	})
}

// TestKPIFactorySummary sums a factory's machines, each priced like
// calculate_energy_cost, and averages the load factors that exist.
func TestKPIFactorySummary(t *testing.T) {
	t.Parallel()
	p := setupPlant(t)
	start := time.Date(2026, 6, 10, 0, 0, 0, 0, losAngeles)
	p.rampDay(t, p.hvac, start)
	// Conveyor-A, inactive: 5 kWh every hour at 5 kW, peak 10 kW →
	// 120 kWh; 12 h × 5 × 0.10 + 12 h × 5 × 0.25 = 6 + 15 = 21 USD; load factor 0.5.
	p.exec(t, `UPDATE machines SET is_active = false WHERE id = $1`, p.conveyor)
	for k := 0; k < 24; k++ {
		b := start.Add(time.Duration(k) * time.Hour)
		p.energyHour(t, p.conveyor, b, 5, 5, 10, b)
	}
	// Hydraulic-Pump-1 has no data: no load factor, nothing to add.
	lfHVAC := rampAvgPower / rampPeak
	expect(t, "demo plant", one(t, p.pool, `SELECT * FROM get_factory_summary($1, $2, $3)`, p.demo, start, start.AddDate(0, 0, 1)), map[string]any{
		"factory_name": "Demo Manufacturing Plant", "machine_count": int64(3), "active_machines": int64(2),
		"total_energy_kwh": rampEnergy + 120,                         // 636 kWh
		"total_cost":       0.10*rampOffPeak + 0.25*rampPeakHrs + 21, // 116.7 USD
		"total_co2_kg":     (rampEnergy + 120) * 0.22,                // 139.92 kg
		"avg_load_factor":  (lfHVAC + 0.5) / 2,
	})
	if got := rows(t, p.pool, `SELECT * FROM get_factory_summary($1, $2, $3)`, "00000000-0000-0000-0000-000000000000", start, start.AddDate(0, 0, 1)); len(got) != 0 {
		t.Errorf("unknown factory: %d rows, want 0", len(got))
	}
}

// BenchmarkKPIAllKPIs times calculate_all_kpis over windows of one day and
// thirty days of hourly rollups (each hour priced and weighted on its own),
// both starting and ending mid-hour so the raw edges are read too.
func BenchmarkKPIAllKPIs(b *testing.B) {
	ctx := context.Background()
	pool := testdb.New(b)
	var demo, machine string
	if err := pool.QueryRow(ctx, `INSERT INTO factories (name, timezone, metadata)
		VALUES ('Demo Manufacturing Plant', 'America/Los_Angeles', '{"grid_region": "US-California"}') RETURNING id::text`).Scan(&demo); err != nil {
		b.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `INSERT INTO machines (factory_id, name, type, data_interval_seconds)
		VALUES ($1, 'HVAC-Main', 'hvac', 10) RETURNING id::text`, demo).Scan(&machine); err != nil {
		b.Fatal(err)
	}
	start := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	exec := func(q string, args ...any) {
		if _, err := pool.Exec(ctx, q, args...); err != nil {
			b.Fatalf("%s: %v", firstLine(q), err)
		}
	}
	exec(`INSERT INTO energy_tariffs (factory_id, name, rate_per_kwh, currency, is_time_of_use, start_hour, end_hour, applicable_days)
		VALUES ($1, 'Peak', 0.25, 'USD', true, 9, 21, '{1,2,3,4,5}'), ($1, 'Off-peak', 0.10, 'USD', true, 21, 9, NULL)`, demo)
	exec(`INSERT INTO carbon_factors (region, emission_factor_kg_co2_per_kwh) VALUES ('US-California', 0.22)`)
	// Raw readings (10 s) in the hours holding the windows' edges: 01:00–02:00 of days 0, 1 and 30.
	exec(`INSERT INTO energy_readings (time, machine_id, power_kw)
		SELECT $1::timestamptz + d * interval '1 day' + interval '1 hour' + s * interval '10 seconds', $2::uuid, 20
		FROM unnest(ARRAY[0, 1, 30]) AS d, generate_series(0, 359) AS s`, start, machine)
	// Every hour of 31 days in the rollup (rows the triggers made from the raw readings stay).
	exec(`INSERT INTO energy_readings_1hour (bucket, machine_id, reading_count, sum_power_kw, total_energy_kwh, peak_demand_kw, peak_demand_at)
		SELECT $1::timestamptz + h * interval '1 hour', $2::uuid, 360, 360 * 20, 20, 25, $1::timestamptz + h * interval '1 hour'
		FROM generate_series(0, 31 * 24) AS h
		ON CONFLICT (machine_id, bucket) DO NOTHING`, start, machine)
	for _, days := range []int{1, 30} {
		b.Run(fmt.Sprintf("days=%d", days), func(b *testing.B) {
			from := start.Add(90 * time.Minute) // 01:30: a half hour of raw readings at each edge
			to := from.AddDate(0, 0, days)
			for b.Loop() {
				var cost float64
				if err := pool.QueryRow(ctx, `SELECT total_cost FROM calculate_all_kpis($1, $2, $3)`, machine, from, to).Scan(&cost); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/call")
		})
	}
}

// TestKPIThroughRollupTriggers inserts raw readings only — shuffled, in
// batches, one hour first sent wrong and then re-sent — and reads the KPIs
// through the rollup triggers of 000003: whole hours from the rollups they
// maintain, the half hours at the window's edges from the raw tables.
func TestKPIThroughRollupTriggers(t *testing.T) {
	t.Parallel()
	p := setupPlant(t)
	ctx := context.Background()
	at := func(h, m int) time.Time { return time.Date(2026, 6, 10, h, m, 0, 0, losAngeles) } // a Wednesday
	// Hydraulic-Pump-1 reports every 30 s, power only: 60 kW in 20:00–21:00,
	// 30 kW in 21:00–22:00, 90 kW in 22:00–23:00, i.e. 0.5, 0.25 and 0.75 kWh
	// per reading (power × 30 s / 3600 s). One unit per reading; the machine
	// idles 21:00–21:30 and runs otherwise.
	type reading struct {
		at   time.Time
		kw   float64
		mode string
	}
	var readings []reading
	for ts := at(20, 0); ts.Before(at(23, 0)); ts = ts.Add(30 * time.Second) {
		r := reading{at: ts, kw: 60, mode: "running"}
		switch {
		case ts.Hour() == 21 && ts.Minute() < 30:
			r.kw, r.mode = 30, "idle"
		case ts.Hour() == 21:
			r.kw = 30
		case ts.Hour() == 22:
			r.kw = 90
		}
		readings = append(readings, r)
	}
	send := func(rs []reading) {
		t.Helper()
		times, kws, modes := make([]time.Time, len(rs)), make([]float64, len(rs)), make([]string, len(rs))
		for i, r := range rs {
			times[i], kws[i], modes[i] = r.at, r.kw, r.mode
		}
		p.exec(t, `INSERT INTO energy_readings (time, machine_id, power_kw)
			SELECT u.t, $1, u.kw FROM unnest($2::timestamptz[], $3::float8[]) AS u (t, kw)
			ON CONFLICT (machine_id, time) DO UPDATE SET power_kw = excluded.power_kw`, p.pump, times, kws)
		p.exec(t, `INSERT INTO production_data (time, machine_id, production_count, operating_mode)
			SELECT u.t, $1, 1, u.mode::operating_mode FROM unnest($2::timestamptz[], $3::text[]) AS u (t, mode)
			ON CONFLICT (machine_id, time) DO UPDATE SET operating_mode = excluded.operating_mode`, p.pump, times, modes)
	}
	// The 21:00 hour first arrives at 999 kW, all running, then is re-sent right.
	var wrong []reading
	for _, r := range readings {
		if r.at.Hour() == 21 {
			wrong = append(wrong, reading{at: r.at, kw: 999, mode: "running"})
		}
	}
	send(wrong)
	// Everything, in a fixed shuffled order (a seeded permutation), in batches of 37.
	order := rand.New(rand.NewPCG(2, 6)).Perm(len(readings))
	for i := 0; i < len(order); i += 37 {
		var batch []reading
		for _, j := range order[i:min(i+37, len(order))] {
			batch = append(batch, readings[j])
		}
		send(batch)
	}
	var rollupRows int
	if err := p.pool.QueryRow(ctx, `SELECT count(*) FROM energy_readings_1hour WHERE machine_id = $1`, p.pump).Scan(&rollupRows); err != nil {
		t.Fatal(err)
	}
	if rollupRows != 3 {
		t.Fatalf("energy_readings_1hour holds %d hours of the pump, want 3 (20:00, 21:00, 22:00): are the rollup triggers installed?", rollupRows)
	}

	// Whole hours 20:00–23:00, from the rollups alone:
	// 120 × 0.5 = 60 kWh at 0.25 (peak) + (120 × 0.25 + 120 × 0.75 = 30 + 90) kWh at 0.10 = 15 + 12 = 27 USD.
	expect(t, "20:00–23:00", one(t, p.pool, `SELECT * FROM calculate_all_kpis($1, $2, $3)`, p.pump, at(20, 0), at(23, 0)), map[string]any{
		"total_energy_kwh": 180.0, "total_cost": 27.0, "total_production_units": int64(360),
		"avg_power_kw": 60.0, "peak_demand_kw": 90.0, // (60 + 30 + 90) / 3 = 60 kW average
	})
	// 20:30–22:30 across the 21:00 tariff switch:
	//   20:30–21:00 raw:    60 readings × 0.5  = 30 kWh at 0.25 = 7.5
	//   21:00–22:00 rollup: 120 readings × 0.25 = 30 kWh at 0.10 = 3.0
	//   22:00–22:30 raw:    60 readings × 0.75 = 45 kWh at 0.10 = 4.5   → 105 kWh, 15.0 USD
	// avg = (60·60 + 120·30 + 60·90) / 240 = 12600 / 240 = 52.5 kW; peak 90 kW from 22:00;
	// units 60 + 120 + 60 = 240; CO₂ 105 × 0.22 = 23.1 kg.
	start, end := at(20, 30), at(22, 30)
	expect(t, "20:30–22:30", one(t, p.pool, `SELECT * FROM calculate_all_kpis($1, $2, $3)`, p.pump, start, end), map[string]any{
		"time_period_hours": 2.0, "total_energy_kwh": 105.0, "total_cost": 15.0,
		"avg_power_kw": 52.5, "peak_demand_kw": 90.0, "load_factor": 52.5 / 90,
		"total_production_units": int64(240), "sec_kwh_per_unit": 105.0 / 240,
		"cost_per_unit": 15.0 / 240, "total_co2_kg": 105 * 0.22, "co2_per_unit_kg": 105 * 0.22 / 240,
	})
	expect(t, "20:30–22:30 peak", one(t, p.pool, `SELECT * FROM calculate_peak_demand($1, $2, $3)`, p.pump, start, end), map[string]any{
		"peak_demand_kw": 90.0, "peak_time": at(22, 0), "avg_power_kw": 52.5,
	})
	// Running: 20:30–21:00, 21:30–22:00, 22:00–22:30 = 3 × 60 readings × 30 s = 5400 s;
	// idle 21:00–21:30 = 1800 s; total 7200 s; utilization 5400 / 7200 = 75 %.
	expect(t, "20:30–22:30 operating hours", one(t, p.pool, `SELECT * FROM get_machine_operating_hours($1, $2, $3)`, p.pump, start, end), map[string]any{
		"total_hours": 2.0, "running_hours": 1.5, "idle_hours": 0.5, "downtime_hours": 0.0, "utilization_percent": 75.0,
	})
}

// demoRate is the demo plant's price of energy used at t, written out
// independently of the SQL: 21→9 every day at 0.10, 09–21 on weekdays at
// 0.25, otherwise (weekend days) the default 0.15 — in Los Angeles time.
func demoRate(t time.Time) float64 {
	l := t.In(losAngeles)
	switch {
	case l.Hour() >= 21 || l.Hour() < 9:
		return 0.10
	case l.Weekday() >= time.Monday && l.Weekday() <= time.Friday:
		return 0.25
	default:
		return 0.15
	}
}

// TestKPIRandomWindowsMatchRawReadings compares the KPIs of random windows —
// any second, any length, across hours, days and the Friday→Saturday tariff
// change — with the same figures computed in Go straight from the readings
// that went in (through the rollup triggers).
func TestKPIRandomWindowsMatchRawReadings(t *testing.T) {
	t.Parallel()
	p := setupPlant(t)
	rng := rand.New(rand.NewPCG(50001, 4))
	// Hydraulic-Pump-1, every 30 s from Friday 2026-06-12 00:00 to Sunday 00:00
	// local: random power 20–80 kW; a third of the readings report their
	// energy (the rest are integrated, power × 30 s); 0–3 units each.
	first := time.Date(2026, 6, 12, 0, 0, 0, 0, losAngeles)
	type reading struct {
		at            time.Time
		kw, kwh       float64
		reported      *float64
		units         int64
		running, idle bool
	}
	var rs []reading
	var times []time.Time
	var kws []float64
	var reported []*float64
	var units []int64
	var modes []string
	for at := first; at.Before(first.AddDate(0, 0, 2)); at = at.Add(30 * time.Second) {
		r := reading{at: at, kw: 20 + 60*rng.Float64(), units: rng.Int64N(4)}
		r.kwh = r.kw * 30 / 3600
		if rng.IntN(3) == 0 {
			e := r.kwh * (0.9 + 0.2*rng.Float64()) // a meter that disagrees a little with power × time
			r.reported, r.kwh = &e, e
		}
		mode := [...]string{"running", "running", "running", "idle", "fault"}[rng.IntN(5)]
		r.running, r.idle = mode == "running", mode == "idle"
		rs = append(rs, r)
		times, kws, reported, units, modes = append(times, at), append(kws, r.kw), append(reported, r.reported), append(units, r.units), append(modes, mode)
	}
	p.exec(t, `INSERT INTO energy_readings (time, machine_id, power_kw, energy_kwh)
		SELECT u.t, $1, u.kw, u.e FROM unnest($2::timestamptz[], $3::float8[], $4::float8[]) AS u (t, kw, e)`,
		p.pump, times, kws, reported)
	p.exec(t, `INSERT INTO production_data (time, machine_id, production_count, operating_mode)
		SELECT u.t, $1, u.n, u.m::operating_mode FROM unnest($2::timestamptz[], $3::int8[], $4::text[]) AS u (t, n, m)`,
		p.pump, times, units, modes)

	for i := 0; i < 25; i++ {
		start := first.Add(time.Duration(rng.Int64N(int64(40 * time.Hour))))
		if i%5 == 0 {
			start = start.Truncate(time.Hour) // some windows start on an hour
		}
		start = start.Truncate(time.Second)
		end := start.Add(time.Duration(rng.Int64N(int64(8 * time.Hour)))).Truncate(time.Second)
		var n, runningS, idleS, totalS float64
		var kwh, sumKW, cost float64
		var made int64
		quarters := map[time.Time][2]float64{} // 15-minute interval → (sum kW, count)
		for _, r := range rs {
			if r.at.Before(start) || !r.at.Before(end) {
				continue
			}
			n++
			kwh += r.kwh
			sumKW += r.kw
			cost += r.kwh * demoRate(r.at)
			made += r.units
			q := r.at.Truncate(15 * time.Minute)
			quarters[q] = [2]float64{quarters[q][0] + r.kw, quarters[q][1] + 1}
			totalS += 30
			if r.running {
				runningS += 30
			}
			if r.idle {
				idleS += 30
			}
		}
		var peak float64
		var peakAt any // NULL when the window holds no reading
		for q, s := range quarters {
			if avg := s[0] / s[1]; avg > peak || (avg == peak && q.Before(peakAt.(time.Time))) {
				peak, peakAt = avg, q
			}
		}
		var avg, lf, sec, util any = 0.0, nil, nil, nil
		if n > 0 {
			avg, lf = sumKW/n, sumKW/n/peak
			util = 100 * runningS / totalS
		}
		if made > 0 {
			sec = kwh / float64(made)
		}
		what := fmt.Sprintf("window %d [%s, %s)", i, start.In(losAngeles).Format("Mon 15:04:05"), end.In(losAngeles).Format("Mon 15:04:05"))
		expect(t, what, one(t, p.pool, `SELECT * FROM calculate_all_kpis($1, $2, $3)`, p.pump, start, end), map[string]any{
			"time_period_hours": end.Sub(start).Hours(), "total_energy_kwh": kwh, "avg_power_kw": avg,
			"peak_demand_kw": peak, "load_factor": lf, "total_production_units": made, "sec_kwh_per_unit": sec,
			"total_cost": cost, "total_co2_kg": kwh * 0.22,
		})
		expect(t, what+" peak", one(t, p.pool, `SELECT * FROM calculate_peak_demand($1, $2, $3)`, p.pump, start, end), map[string]any{
			"peak_time": peakAt,
		})
		expect(t, what+" hours", one(t, p.pool, `SELECT * FROM get_machine_operating_hours($1, $2, $3)`, p.pump, start, end), map[string]any{
			"total_hours": totalS / 3600, "running_hours": runningS / 3600, "idle_hours": idleS / 3600,
			"downtime_hours": (totalS - runningS - idleS) / 3600, "utilization_percent": util,
		})
	}
}

// TestKPIReplacesOriginalEnMSFunctions: an EnMS database already holds the
// original KPI functions (DECIMAL results, the region as varchar). The
// migration replaces them, leaving one function per name, so a call with
// three arguments is not ambiguous between old and new.
func TestKPIReplacesOriginalEnMSFunctions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.EmptyURL(t)
	pool := testdb.Pool(t, url)
	// Stand-ins with the original signatures and result types; their bodies
	// do not matter (plpgsql bodies are not checked against tables).
	originals := []string{
		`calculate_sec(p_machine_id uuid, p_start_time timestamptz, p_end_time timestamptz)
			RETURNS TABLE (machine_id uuid, sec_kwh_per_unit decimal(10,4), total_energy_kwh decimal(15,3), total_production_units bigint, time_period_hours decimal(10,2))`,
		`calculate_peak_demand(p_machine_id uuid, p_start_time timestamptz, p_end_time timestamptz)
			RETURNS TABLE (machine_id uuid, peak_demand_kw decimal(10,3), peak_time timestamptz, avg_power_kw decimal(10,3))`,
		`calculate_load_factor(p_machine_id uuid, p_start_time timestamptz, p_end_time timestamptz)
			RETURNS TABLE (machine_id uuid, load_factor decimal(5,4), load_factor_percent decimal(5,2), avg_power_kw decimal(10,3), max_power_kw decimal(10,3))`,
		`calculate_energy_cost(p_machine_id uuid, p_start_time timestamptz, p_end_time timestamptz, p_factory_id uuid DEFAULT NULL)
			RETURNS TABLE (machine_id uuid, total_cost decimal(15,2), total_energy_kwh decimal(15,3), avg_rate_per_kwh decimal(10,6), currency varchar(3))`,
		`calculate_carbon_intensity(p_machine_id uuid, p_start_time timestamptz, p_end_time timestamptz, p_region varchar(255) DEFAULT 'default')
			RETURNS TABLE (machine_id uuid, total_co2_kg decimal(15,3), total_energy_kwh decimal(15,3), emission_factor decimal(10,6), co2_per_unit_kg decimal(10,6))`,
		`calculate_all_kpis(p_machine_id uuid, p_start_time timestamptz, p_end_time timestamptz)
			RETURNS TABLE (machine_id uuid, machine_name varchar(255), time_period_hours decimal(10,2))`,
		`get_machine_operating_hours(p_machine_id uuid, p_start_time timestamptz, p_end_time timestamptz)
			RETURNS TABLE (machine_id uuid, total_hours decimal(10,2))`,
		`get_factory_summary(p_factory_id uuid, p_start_time timestamptz, p_end_time timestamptz)
			RETURNS TABLE (factory_id uuid, factory_name varchar(255))`,
	}
	for _, sig := range originals {
		if _, err := pool.Exec(ctx, `CREATE FUNCTION `+sig+` LANGUAGE plpgsql AS $$ BEGIN RETURN; END $$`); err != nil {
			t.Fatalf("create original %s: %v", firstLine(sig), err)
		}
	}
	if err := migrations.Up(url); err != nil {
		t.Fatalf("migrate up over the original functions: %v", err)
	}
	var overloads int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_proc WHERE proname IN ('calculate_sec', 'calculate_peak_demand',
		'calculate_load_factor', 'calculate_energy_cost', 'calculate_carbon_intensity', 'calculate_all_kpis',
		'get_machine_operating_hours', 'get_factory_summary')`).Scan(&overloads); err != nil {
		t.Fatal(err)
	}
	if overloads != 8 {
		t.Errorf("%d KPI functions after migrating, want 8 (one per name)", overloads)
	}
	var machine string
	if err := pool.QueryRow(ctx, `WITH f AS (INSERT INTO factories (name, timezone) VALUES ('Old Plant', 'Europe/Berlin') RETURNING id)
		INSERT INTO machines (factory_id, name, type) SELECT id, 'Press-7', 'pump' FROM f RETURNING id::text`).Scan(&machine); err != nil {
		t.Fatal(err)
	}
	// No factors or grid region here: the built-in 0.45 kg/kWh.
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	expect(t, "carbon after adoption", one(t, pool, `SELECT * FROM calculate_carbon_intensity($1, $2, $3)`, machine, at, at.Add(time.Hour)), map[string]any{
		"total_co2_kg": 0.0, "emission_factor": 0.45,
	})
}

// TestKPIAllCurrencyIsTheCostsCurrency: analytics_all_kpis (what /kpi/all
// and the daily snapshots read) reports the currency of the cost as
// calculate_energy_cost does, from the same pass. The EU factory gets a
// second, time-of-use tariff in CHF for 09–21 only; a weekday from local
// midnight is priced EUR (flat) for 00–09 and 21–24 and CHF for 09–21, so
// the cost's currency is 'CHF+EUR' — not the EUR of the tariff in force at
// the window's start.
func TestKPIAllCurrencyIsTheCostsCurrency(t *testing.T) {
	t.Parallel()
	p := setupPlant(t)
	p.exec(t, `INSERT INTO energy_tariffs (factory_id, name, rate_per_kwh, currency, is_time_of_use, start_hour, end_hour, valid_from, is_active)
		VALUES ($1, 'Day (CHF)', 0.30, 'CHF', true, 9, 21, '2024-01-01', true)`, p.eu)
	berlin := mustLoad("Europe/Berlin")
	start := time.Date(2026, 6, 10, 0, 0, 0, 0, berlin)
	p.rampDay(t, p.euComp, start)
	end := start.AddDate(0, 0, 1)
	cost := one(t, p.pool, `SELECT currency FROM calculate_energy_cost($1, $2, $3)`, p.euComp, start, end)
	all := one(t, p.pool, `SELECT currency FROM analytics_all_kpis($1, $2, $3)`, p.euComp, start, end)
	if cost["currency"] != "CHF+EUR" || all["currency"] != cost["currency"] {
		t.Errorf("calculate_energy_cost currency %v, analytics_all_kpis currency %v; want both CHF+EUR", cost["currency"], all["currency"])
	}
}

// TestKPIPricingAgreesWithSingleHourRules: analytics_machine_kpis (000011)
// prices each hour from tariffs and carbon factors it reads once per call;
// analytics_tariff and analytics_carbon_factor state the same rules for a
// single hour. Over two weeks that cross the US daylight-saving change of
// 2026-03-08, a German factor change on 2026-03-10, weekends and the
// wrapping 21→09 tariff, every hour's cost, currency and CO₂ must be the
// energy times what the single-hour functions say — for the machine's own
// factory and region, for another factory's tariffs and region, for an
// unknown region, and for a factory with no tariff and no grid region.
// Overlapping tariffs make the highest rate matter.
func TestKPIPricingAgreesWithSingleHourRules(t *testing.T) {
	t.Parallel()
	p := setupPlant(t)
	bare := p.id(t, `INSERT INTO factories (name, timezone) VALUES ('Bare Plant', 'Asia/Kolkata') RETURNING id::text`)
	bareMachine := p.id(t, `INSERT INTO machines (factory_id, name, type) VALUES ($1, 'Bare-1', 'motor') RETURNING id::text`, bare)
	p.exec(t, `INSERT INTO carbon_factors (region, emission_factor_kg_co2_per_kwh, source, valid_from, is_active)
		VALUES ('Germany', 0.31, 'UBA update', '2026-03-10', true)`)
	// Overlapping tariffs, so that "the highest rate wins" is exercised: a
	// critical peak inside the weekday peak for one week, and a cheaper
	// second flat tariff in the European facility for the first week.
	p.exec(t, `INSERT INTO energy_tariffs (factory_id, name, rate_per_kwh, currency, is_time_of_use, start_hour, end_hour, applicable_days, valid_from, valid_to, is_active) VALUES
		($1, 'Critical peak (weekdays 17-19)', 0.40, 'USD', true, 17, 19, '{1,2,3,4,5}', '2026-03-05', '2026-03-12', true),
		($2, 'EU flat (cheap, first week)', 0.12, 'EUR', false, NULL, NULL, NULL, '2026-01-01', '2026-03-07', true)`, p.demo, p.eu)
	from := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	const hours = 14 * 24
	for _, m := range []string{p.hvac, p.euComp, bareMachine} {
		p.exec(t, `INSERT INTO energy_readings_1hour
			(bucket, machine_id, reading_count, sum_power_kw, min_power_kw, max_power_kw, total_energy_kwh, peak_demand_kw, peak_demand_at)
			SELECT $1::timestamptz + i * interval '1 hour', $2, 60, 60 * (1 + i % 7), 1, 9, 1 + i % 7, 9, $1::timestamptz + i * interval '1 hour'
			FROM generate_series(0, $3 - 1) i`, from, m, hours)
	}
	// The rates and factors each case must meet, so that the overlaps and
	// the factor change are exercised and not only agreed on: the demo
	// plant's off-peak 0.10, weekday peak 0.25, critical peak 0.40 and, on
	// weekend days 09–21 where no tariff applies, analytics_default_rate's
	// 0.15 (000004); the EU flat 0.18 only (the cheaper 0.12 overlaps it and
	// never wins); Germany's 0.35 and, from 03-10, 0.31; California's 0.22
	// (an unknown region falls back to the factory's grid region); the bare
	// plant's 0.15 and the 'default' region's 0.40.
	us, eu := []float64{0.1, 0.15, 0.25, 0.4}, []float64{0.18}
	cases := []struct {
		name, machine       string
		factory             *string
		region              *string
		wantRates, wantFact []float64
	}{
		{"own factory and region", p.hvac, nil, nil, us, []float64{0.22}},
		{"flat EUR tariff", p.euComp, nil, nil, eu, []float64{0.31, 0.35}},
		{"another factory's tariffs and region", p.hvac, &p.eu, ptr("Germany"), eu, []float64{0.31, 0.35}},
		{"unknown region", p.hvac, nil, ptr("Nowhere"), us, []float64{0.22}},
		{"no tariff, no grid region", bareMachine, nil, nil, []float64{0.15}, []float64{0.4}},
	}
	for _, c := range cases {
		got := rows(t, p.pool, `
			SELECT h, k.total_energy_kwh AS kwh, k.total_cost AS cost, k.currency, k.total_co2_kg AS co2,
			       t.rate_per_kwh AS rate, t.currency AS want_currency, f.emission_factor AS factor
			FROM machines m, generate_series($2::timestamptz, $2::timestamptz + ($3 - 1) * interval '1 hour', interval '1 hour') h,
			     analytics_machine_kpis(m.id, h, h + interval '1 hour', $4::uuid, $5::text) k,
			     analytics_tariff(coalesce($4::uuid, m.factory_id), h) t,
			     analytics_carbon_factor(m.id, $5::text, h) f
			WHERE m.id = $1
			ORDER BY h`, c.machine, from, hours, c.factory, c.region)
		if len(got) != hours {
			t.Fatalf("%s: %d hours, want %d", c.name, len(got), hours)
		}
		rates, factors := map[float64]bool{}, map[float64]bool{}
		for _, r := range got {
			kwh, rate, factor := r["kwh"].(float64), r["rate"].(float64), r["factor"].(float64)
			what := fmt.Sprintf("%s, hour %v", c.name, r["h"])
			if kwh < 1 {
				t.Fatalf("%s: %v kWh, want the hour's 1–7", what, kwh)
			}
			expect(t, what, r, map[string]any{"cost": kwh * rate, "co2": kwh * factor, "currency": r["want_currency"]})
			rates[rate], factors[factor] = true, true
		}
		if got := keys(rates); !slices.Equal(got, c.wantRates) {
			t.Errorf("%s: rates %v, want %v", c.name, got, c.wantRates)
		}
		if got := keys(factors); !slices.Equal(got, c.wantFact) {
			t.Errorf("%s: factors %v, want %v", c.name, got, c.wantFact)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func keys(m map[float64]bool) []float64 {
	var out []float64
	for k := range m {
		out = append(out, k)
	}
	sort.Float64s(out)
	return out
}
