-- Daily KPI snapshots: one row per machine and factory-local day, written
-- when the machine's day closes (its last hour in the factory's time zone
-- closed) and rewritten when late data revises one of its hours. The values
-- are those of calculate_all_kpis over the local day [00:00, next 00:00),
-- which is 23 or 25 hours long on the days the clocks change.

CREATE TABLE kpi_daily_snapshots (
    machine_id             uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    day                    date NOT NULL,              -- the factory-local date
    timezone               text NOT NULL,              -- the factory's time zone when computed
    period_start           timestamptz NOT NULL,       -- local midnight of day
    period_end             timestamptz NOT NULL,       -- local midnight of the next day
    time_period_hours      double precision NOT NULL,
    total_energy_kwh       double precision NOT NULL DEFAULT 0,
    avg_power_kw           double precision NOT NULL DEFAULT 0,
    peak_demand_kw         double precision NOT NULL DEFAULT 0,
    total_production_units double precision NOT NULL DEFAULT 0,
    sec_kwh_per_unit       double precision,           -- null when nothing was produced
    load_factor            double precision,           -- null when peak demand is 0
    load_factor_percent    double precision,
    total_cost             double precision NOT NULL DEFAULT 0,
    currency               text NOT NULL,
    cost_per_unit          double precision,
    total_co2_kg           double precision NOT NULL DEFAULT 0,
    co2_per_unit_kg        double precision,
    computed_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (machine_id, day)
);

CREATE INDEX kpi_daily_snapshots_day_idx ON kpi_daily_snapshots (day);

-- kpi_snapshot_day computes and upserts the snapshot of one machine's local
-- day and returns it. Idempotent: running it again rewrites the same row.
-- PL/pgSQL so that the KPI functions it calls are resolved when it runs.
CREATE FUNCTION kpi_snapshot_day(p_machine_id uuid, p_day date)
RETURNS kpi_daily_snapshots
LANGUAGE plpgsql AS $$
DECLARE
    tz       text;
    p_start  timestamptz;
    p_end    timestamptz;
    k        record;
    result   kpi_daily_snapshots;
BEGIN
    SELECT f.timezone INTO tz
    FROM machines m JOIN factories f ON f.id = m.factory_id
    WHERE m.id = p_machine_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'machine % does not exist', p_machine_id USING ERRCODE = 'no_data_found';
    END IF;
    p_start := p_day::timestamp AT TIME ZONE tz;
    p_end := (p_day + 1)::timestamp AT TIME ZONE tz;

    SELECT * INTO k FROM analytics_all_kpis(p_machine_id, p_start, p_end);

    INSERT INTO kpi_daily_snapshots AS s (
        machine_id, day, timezone, period_start, period_end, time_period_hours,
        total_energy_kwh, avg_power_kw, peak_demand_kw, total_production_units,
        sec_kwh_per_unit, load_factor, load_factor_percent, total_cost, currency,
        cost_per_unit, total_co2_kg, co2_per_unit_kg, computed_at)
    VALUES (
        p_machine_id, p_day, tz, p_start, p_end, extract(epoch FROM p_end - p_start) / 3600.0,
        coalesce(k.total_energy_kwh, 0), coalesce(k.avg_power_kw, 0), coalesce(k.peak_demand_kw, 0),
        coalesce(k.total_production_units, 0), k.sec_kwh_per_unit, k.load_factor, k.load_factor_percent,
        coalesce(k.total_cost, 0), coalesce(k.currency, 'USD'), k.cost_per_unit,
        coalesce(k.total_co2_kg, 0), k.co2_per_unit_kg, now())
    ON CONFLICT (machine_id, day) DO UPDATE SET
        timezone = excluded.timezone, period_start = excluded.period_start,
        period_end = excluded.period_end, time_period_hours = excluded.time_period_hours,
        total_energy_kwh = excluded.total_energy_kwh, avg_power_kw = excluded.avg_power_kw,
        peak_demand_kw = excluded.peak_demand_kw, total_production_units = excluded.total_production_units,
        sec_kwh_per_unit = excluded.sec_kwh_per_unit, load_factor = excluded.load_factor,
        load_factor_percent = excluded.load_factor_percent, total_cost = excluded.total_cost,
        currency = excluded.currency, cost_per_unit = excluded.cost_per_unit,
        total_co2_kg = excluded.total_co2_kg, co2_per_unit_kg = excluded.co2_per_unit_kg,
        computed_at = excluded.computed_at
    RETURNING * INTO result;
    RETURN result;
END
$$;

-- kpi_day_closed_by returns the factory-local day that the closing of the
-- hour starting at p_bucket completes, or NULL when that hour is not the
-- last one of its local day. The hour [bucket, bucket+1h) completes day D
-- when it starts on D and ends after D's local midnight (or exactly on it);
-- this also holds for time zones with a half-hour offset, where the last
-- hour straddles midnight.
CREATE FUNCTION kpi_day_closed_by(p_machine_id uuid, p_bucket timestamptz)
RETURNS date
LANGUAGE sql STABLE AS $$
    SELECT (p_bucket AT TIME ZONE f.timezone)::date
    FROM machines m JOIN factories f ON f.id = m.factory_id
    WHERE m.id = p_machine_id
      AND ((p_bucket + interval '1 hour') AT TIME ZONE f.timezone)::date
          > (p_bucket AT TIME ZONE f.timezone)::date
$$;
