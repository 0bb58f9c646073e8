package http

import (
	"testing"
	"time"
)

// TestKPIRoutes checks every single-machine KPI route against the fixture's
// hand-computed totals (see seed).
func TestKPIRoutes(t *testing.T) {
	t.Parallel()
	f := setup(t)
	end := window0.Add(4 * time.Hour)

	check := func(route string, fn func(body map[string]any)) {
		t.Helper()
		status, body := f.get(t, kpiPath(route, m1ID, window0, end))
		if status != 200 {
			t.Fatalf("%s: status %d: %v", route, status, body)
		}
		if got := str(t, body, "machine_id"); got != m1ID {
			t.Errorf("%s: machine_id %s", route, got)
		}
		if got := str(t, body, "start"); got != "2026-01-05T00:00:00Z" {
			t.Errorf("%s: start %s, want RFC 3339 2026-01-05T00:00:00Z", route, got)
		}
		if got := str(t, body, "end"); got != "2026-01-05T04:00:00Z" {
			t.Errorf("%s: end %s", route, got)
		}
		if got := str(t, body, "machine_name"); got != "Compressor 1" {
			t.Errorf("%s: machine_name %s", route, got)
		}
		fn(body)
	}
	check("sec", func(b map[string]any) {
		near(t, "sec value", num(t, b, "value"), 0.25) // 100 kWh / 400 units
		near(t, "sec_kwh_per_unit", num(t, b, "sec_kwh_per_unit"), 0.25)
		near(t, "total_energy_kwh", num(t, b, "total_energy_kwh"), 100)
		near(t, "total_production_units", num(t, b, "total_production_units"), 400)
		near(t, "time_period_hours", num(t, b, "time_period_hours"), 4)
		if str(t, b, "unit") != "kWh/unit" {
			t.Errorf("sec unit %v", b["unit"])
		}
	})
	check("peak-demand", func(b map[string]any) {
		near(t, "peak value", num(t, b, "value"), 45) // hour 3: 40 + 5
		near(t, "avg_power_kw", num(t, b, "avg_power_kw"), 25)
		if got := str(t, b, "peak_time"); got != "2026-01-05T03:15:00Z" {
			t.Errorf("peak_time %s", got)
		}
		if str(t, b, "unit") != "kW" {
			t.Errorf("peak unit %v", b["unit"])
		}
	})
	check("load-factor", func(b map[string]any) {
		near(t, "load factor", num(t, b, "value"), 25.0/45)
		near(t, "load_factor_percent", num(t, b, "load_factor_percent"), 100*25.0/45)
		near(t, "max_power_kw", num(t, b, "max_power_kw"), 45)
	})
	check("energy-cost", func(b map[string]any) {
		near(t, "cost", num(t, b, "value"), 20) // 100 kWh × 0.20
		near(t, "avg_rate_per_kwh", num(t, b, "avg_rate_per_kwh"), 0.20)
		if str(t, b, "currency") != "EUR" || str(t, b, "unit") != "EUR" {
			t.Errorf("currency %v unit %v, want EUR", b["currency"], b["unit"])
		}
	})
	check("carbon", func(b map[string]any) {
		near(t, "co2", num(t, b, "value"), 50) // 100 kWh × 0.5 kg/kWh
		near(t, "emission_factor", num(t, b, "emission_factor"), 0.5)
		near(t, "co2_per_unit_kg", num(t, b, "co2_per_unit_kg"), 0.125)
	})
	check("all", func(b map[string]any) {
		near(t, "kpis.sec.value", num(t, b, "kpis.sec.value"), 0.25)
		near(t, "kpis.peak_demand.value", num(t, b, "kpis.peak_demand.value"), 45)
		near(t, "kpis.load_factor.value", num(t, b, "kpis.load_factor.value"), 25.0/45)
		near(t, "kpis.energy_cost.value", num(t, b, "kpis.energy_cost.value"), 20)
		near(t, "kpis.energy_cost.cost_per_unit", num(t, b, "kpis.energy_cost.cost_per_unit"), 0.05) // 20/400
		if str(t, b, "kpis.energy_cost.currency") != "EUR" {
			t.Errorf("all: currency %v", at(t, b, "kpis.energy_cost.currency"))
		}
		near(t, "kpis.carbon_intensity.value", num(t, b, "kpis.carbon_intensity.value"), 50)
		near(t, "totals.total_energy_kwh", num(t, b, "totals.total_energy_kwh"), 100)
		near(t, "totals.avg_power_kw", num(t, b, "totals.avg_power_kw"), 25)
		near(t, "totals.total_production_units", num(t, b, "totals.total_production_units"), 400)
		near(t, "time_period.hours", num(t, b, "time_period.hours"), 4)
	})
}

// TestKPIZeroIsZero: a machine without data in the window gets 0 for every
// total (a JSON number, not null); only undefined ratios are null.
func TestKPIZeroIsZero(t *testing.T) {
	t.Parallel()
	f := setup(t)
	status, b := f.get(t, kpiPath("all", m2ID, window0, window0.Add(24*time.Hour)))
	if status != 200 {
		t.Fatalf("status %d: %v", status, b)
	}
	for _, p := range []string{"totals.total_energy_kwh", "totals.avg_power_kw", "totals.peak_demand_kw",
		"totals.total_production_units", "totals.total_cost", "totals.total_co2_kg",
		"kpis.peak_demand.value", "kpis.energy_cost.value", "kpis.carbon_intensity.value"} {
		if got := num(t, b, p); got != 0 {
			t.Errorf("%s = %v, want 0", p, got)
		}
	}
	near(t, "time_period.hours", num(t, b, "time_period.hours"), 24)
	if v := at(t, b, "kpis.sec.value"); v != nil {
		t.Errorf("sec without production = %v, want null (undefined, not zero)", v)
	}
	status, b = f.get(t, kpiPath("energy-cost", m2ID, window0, window0.Add(time.Hour)))
	if status != 200 || num(t, b, "total_cost") != 0 || num(t, b, "total_energy_kwh") != 0 {
		t.Errorf("energy-cost of an idle machine: %d %v", status, b)
	}
}

// TestKPIFactory sums the factory's machines: only m1 has data.
func TestKPIFactory(t *testing.T) {
	t.Parallel()
	f := setup(t)
	status, b := f.get(t, "/api/v1/kpi/factory/"+plantID+"?start=2026-01-05&end=2026-01-06")
	if status != 200 {
		t.Fatalf("status %d: %v", status, b)
	}
	if str(t, b, "factory_name") != "Plant A" {
		t.Errorf("factory_name %v", b["factory_name"])
	}
	near(t, "machine_count", num(t, b, "machine_count"), 2)     // m1 and m2
	near(t, "active_machines", num(t, b, "active_machines"), 1) // m2 is inactive
	near(t, "total_energy_kwh", num(t, b, "total_energy_kwh"), 100)
	near(t, "total_cost", num(t, b, "total_cost"), 20)
	near(t, "total_co2_kg", num(t, b, "total_co2_kg"), 50)
	near(t, "avg_load_factor", num(t, b, "avg_load_factor"), 25.0/45) // m2 has none

	status, b = f.get(t, "/api/v1/kpi/factory/"+unknownID+"?start=2026-01-05&end=2026-01-06")
	wantError(t, "unknown factory", status, b, 404, CodeNotFound)
}

// TestKPIDaily writes snapshots through the store and reads them back.
// m3 (Europe/Berlin) has 24 hours of 10 kWh each on local 2026-01-05, which
// runs 2026-01-04T23:00Z–2026-01-05T23:00Z (CET = UTC+1).
func TestKPIDaily(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := t.Context()
	localStart := time.Date(2026, 1, 4, 23, 0, 0, 0, time.UTC)
	for h := range 24 {
		b := localStart.Add(time.Duration(h) * time.Hour)
		if _, err := f.pool.Exec(ctx, `INSERT INTO energy_readings_1hour (bucket, machine_id, reading_count, sum_power_kw,
			total_energy_kwh, peak_demand_kw, peak_demand_at) VALUES ($1, $2, 60, 600, 10, 12, $1)`, b, m3ID); err != nil {
			t.Fatal(err)
		}
	}
	st := f.srv.cfg.Store
	// The hour 21:00Z–22:00Z ends at 23:00 local: not the last hour.
	if _, closed, err := st.SnapshotKPIDayIfClosed(ctx, m3ID, localStart.Add(22*time.Hour)); err != nil || closed {
		t.Fatalf("hour ending 23:00 local closed the day (closed=%v err=%v)", closed, err)
	}
	// The hour 22:00Z–23:00Z ends at local midnight: the day closes.
	day, closed, err := st.SnapshotKPIDayIfClosed(ctx, m3ID, localStart.Add(23*time.Hour))
	if err != nil || !closed {
		t.Fatalf("last local hour did not close the day (closed=%v err=%v)", closed, err)
	}
	if day.Day.Format(time.DateOnly) != "2026-01-05" || !day.PeriodStart.Equal(localStart) {
		t.Errorf("day %s start %s", day.Day.Format(time.DateOnly), day.PeriodStart)
	}
	near(t, "daily energy", day.TotalEnergyKWh, 240) // 24 × 10 kWh
	near(t, "daily avg power", day.AvgPowerKW, 10)   // 24·600 / (24·60)
	near(t, "daily peak", day.PeakDemandKW, 12)      // every hour's peak
	near(t, "daily cost", day.TotalCost, 240*0.15)   // no tariff: the 0.15 USD default
	if day.Currency != "USD" || day.SECKWhPerUnit != nil {
		t.Errorf("currency %q sec %v", day.Currency, day.SECKWhPerUnit)
	}
	// Idempotent: a second snapshot rewrites the same row.
	if _, err := st.SnapshotKPIDay(ctx, m3ID, day.Day); err != nil {
		t.Fatal(err)
	}
	// A run of hours (the worker's backfill path) 20:00Z–03:00Z next day
	// holds one local day's last hour, 22:00Z: that day only.
	var run []time.Time
	for h := 20; h < 27; h++ {
		run = append(run, localStart.Add(time.Duration(h)*time.Hour))
	}
	closedDays, err := st.SnapshotKPIDaysIfClosed(ctx, m3ID, run)
	if err != nil || len(closedDays) != 1 || !closedDays[0].Day.Equal(day.Day) || closedDays[0].TotalEnergyKWh != day.TotalEnergyKWh {
		t.Fatalf("run closed %+v (err %v), want only day %s with %v kWh", closedDays, err, day.Day.Format(time.DateOnly), day.TotalEnergyKWh)
	}
	// The spring-forward day 2026-03-29 has 23 hours in Berlin:
	// 2026-03-28T23:00Z (CET) to 2026-03-29T22:00Z (CEST).
	dst, err := st.SnapshotKPIDay(ctx, m3ID, time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	near(t, "DST day hours", dst.TimePeriodHours, 23)
	if !dst.PeriodEnd.Equal(time.Date(2026, 3, 29, 22, 0, 0, 0, time.UTC)) || dst.TotalEnergyKWh != 0 {
		t.Errorf("DST day end %s energy %v", dst.PeriodEnd, dst.TotalEnergyKWh)
	}
	if _, err := st.SnapshotKPIDay(ctx, unknownID, dst.Day); err == nil {
		t.Error("snapshot of an unknown machine succeeded")
	}

	// Late data in a closed day: the revision refreshes its snapshot. The
	// hour 2026-01-05T10:00Z gains 5 kWh, so the day totals 245 kWh.
	if _, err := f.pool.Exec(ctx, `UPDATE energy_readings_1hour SET total_energy_kwh = 15
		WHERE machine_id = $1 AND bucket = '2026-01-05T10:00:00Z'`, m3ID); err != nil {
		t.Fatal(err)
	}
	revised, refreshed, err := st.RefreshKPIDayOfHour(ctx, m3ID, time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC))
	if err != nil || !refreshed {
		t.Fatalf("revision of a closed day: refreshed=%v err=%v", refreshed, err)
	}
	near(t, "revised daily energy", revised.TotalEnergyKWh, 245)
	// A day without a snapshot (still open) is not written by a revision.
	if _, refreshed, err := st.RefreshKPIDayOfHour(ctx, m3ID, time.Date(2026, 1, 7, 10, 0, 0, 0, time.UTC)); err != nil || refreshed {
		t.Errorf("revision of an open day wrote a snapshot (refreshed=%v err=%v)", refreshed, err)
	}

	status, b := f.get(t, "/api/v1/kpi/daily?machine_id="+m3ID+"&start=2026-01-01&end=2026-04-01")
	if status != 200 {
		t.Fatalf("status %d: %v", status, b)
	}
	near(t, "count", num(t, b, "count"), 2)
	days := at(t, b, "days").([]any)
	first := days[0].(map[string]any)
	if str(t, first, "day") != "2026-01-05" || str(t, first, "period_start") != "2026-01-04T23:00:00Z" {
		t.Errorf("first day %v", first)
	}
	near(t, "days[0].total_energy_kwh", num(t, first, "total_energy_kwh"), 245) // after the revision
	near(t, "days[1].total_energy_kwh", num(t, days[1].(map[string]any), "total_energy_kwh"), 0)
	if v := first["sec_kwh_per_unit"]; v != nil {
		t.Errorf("sec without production = %v, want null", v)
	}
	status, b = f.get(t, "/api/v1/kpi/daily?machine_id="+m3ID+"&start=2026-01-01&end=2026-04-01&limit=1")
	if status != 200 || num(t, b, "count") != 1 {
		t.Errorf("limit=1: %d %v", status, b)
	}
}
