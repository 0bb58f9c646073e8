-- Restores the b-tree on energy_readings_1hour (bucket) of 000003, the
-- 000004 definition of analytics_machine_kpis and the 000008 one of
-- kpi_day_closed_by.

DROP INDEX IF EXISTS energy_readings_1hour_bucket_brin;
CREATE INDEX IF NOT EXISTS energy_readings_1hour_bucket_idx ON energy_readings_1hour (bucket);

CREATE OR REPLACE FUNCTION analytics_machine_kpis(p_machine_id uuid, p_start_time timestamptz, p_end_time timestamptz,
                                       p_factory_id uuid DEFAULT NULL, p_region text DEFAULT NULL)
RETURNS TABLE (
    machine_id             uuid,
    machine_name           text,
    factory_id             uuid,
    time_period_hours      double precision,
    reading_count          bigint,
    total_energy_kwh       double precision,
    avg_power_kw           double precision,
    peak_demand_kw         double precision,
    peak_time              timestamptz,
    total_production_units bigint,
    total_cost             double precision,
    currency               text,
    total_co2_kg           double precision,
    emission_factor        double precision
)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT m.id, m.name::text, m.factory_id,
           analytics_window_hours(p_start_time, p_end_time),
           coalesce(e.n, 0)::bigint,
           coalesce(e.kwh, 0),
           coalesce(e.sp / nullif(e.n, 0), 0),
           coalesce(e.peak, 0),
           e.peak_at,
           coalesce(p.units, 0)::bigint,
           coalesce(e.cost, 0),
           coalesce(e.currency, (SELECT t.currency FROM analytics_tariff(coalesce(p_factory_id, m.factory_id), p_start_time) t)),
           coalesce(e.co2, 0),
           CASE WHEN e.min_factor = e.max_factor THEN e.min_factor
                WHEN e.kwh <> 0 THEN e.co2 / e.kwh
                ELSE (SELECT c.emission_factor FROM analytics_carbon_factor(m.id, p_region, p_start_time) c) END
    FROM machines m
    CROSS JOIN LATERAL (
        SELECT sum(h.reading_count) AS n, sum(h.sum_power_kw) AS sp, sum(h.energy_kwh) AS kwh,
               max(h.peak_demand_kw) AS peak,
               (array_agg(h.peak_demand_at ORDER BY h.peak_demand_kw DESC NULLS LAST, h.peak_demand_at))[1] AS peak_at,
               sum(h.energy_kwh * t.rate_per_kwh) AS cost,
               string_agg(DISTINCT t.currency, '+' ORDER BY t.currency) AS currency,
               sum(h.energy_kwh * h.factor) AS co2,
               min(h.factor) AS min_factor, max(h.factor) AS max_factor
        FROM (SELECT x.*, c.emission_factor AS factor
              FROM analytics_energy_hours(m.id, p_start_time, p_end_time) x
              CROSS JOIN LATERAL analytics_carbon_factor(m.id, p_region, x.bucket) c) h
        CROSS JOIN LATERAL analytics_tariff(coalesce(p_factory_id, m.factory_id), h.bucket) t
    ) e
    CROSS JOIN LATERAL (
        SELECT sum(x.production_count) AS units FROM analytics_production_hours(m.id, p_start_time, p_end_time) x
    ) p
    -- checked here as well so that a reversed window is an error even for an unknown machine
    WHERE m.id = p_machine_id AND analytics_window_hours(p_start_time, p_end_time) >= 0
$$;

CREATE OR REPLACE FUNCTION kpi_day_closed_by(p_machine_id uuid, p_bucket timestamptz)
RETURNS date
LANGUAGE sql STABLE AS $$
    SELECT (p_bucket AT TIME ZONE f.timezone)::date
    FROM machines m JOIN factories f ON f.id = m.factory_id
    WHERE m.id = p_machine_id
      AND ((p_bucket + interval '1 hour') AT TIME ZONE f.timezone)::date
          > (p_bucket AT TIME ZONE f.timezone)::date
$$;
