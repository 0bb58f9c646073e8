-- Restores the 000004 definitions of analytics_energy_hours and analytics_machine_kpis.

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

CREATE OR REPLACE FUNCTION analytics_energy_hours(p_machine_id uuid, p_start_time timestamptz, p_end_time timestamptz)
RETURNS TABLE (
    bucket         timestamptz,
    reading_count  bigint,
    sum_power_kw   double precision,
    energy_kwh     double precision,
    peak_demand_kw double precision,
    peak_demand_at timestamptz
)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    -- The whole hours are [analytics_hour_ceil(start), analytics_hour_floor(end));
    -- when the window lies inside one hour, ceil > floor and everything comes
    -- from the raw table. The bounds are written out (not taken from a CTE) so
    -- that both ends of each range become index conditions.
    WITH raw AS (
        -- Two index range scans, one per edge: [start, ceil(start)) and [floor(end), end).
        SELECT e.time, e.power_kw::double precision AS power_kw,
               rollup_energy_kwh(e.power_kw::double precision, e.energy_kwh::double precision,
                                 m.data_interval_seconds) AS kwh
        FROM machines m, energy_readings e
        WHERE m.id = p_machine_id AND e.machine_id = p_machine_id
          AND e.time >= p_start_time AND e.time < least(analytics_hour_ceil(p_start_time), p_end_time)
        UNION ALL
        SELECT e.time, e.power_kw::double precision,
               rollup_energy_kwh(e.power_kw::double precision, e.energy_kwh::double precision,
                                 m.data_interval_seconds)
        FROM machines m, energy_readings e
        WHERE m.id = p_machine_id AND e.machine_id = p_machine_id
          AND e.time >= greatest(analytics_hour_floor(p_end_time), analytics_hour_ceil(p_start_time))
          AND e.time < p_end_time
    ),
    quarters AS (
        SELECT date_bin('15 minutes', r.time, timestamptz '2000-01-01 00:00:00+00') AS q,
               count(*) AS n, sum(r.power_kw) AS sp, sum(r.kwh) AS kwh
        FROM raw r GROUP BY 1
    )
    SELECT analytics_hour_floor(q.q), sum(q.n)::bigint, sum(q.sp), sum(q.kwh),
           max(q.sp / q.n), (array_agg(q.q ORDER BY q.sp / q.n DESC, q.q))[1]
    FROM quarters q GROUP BY 1
    UNION ALL
    SELECT r.bucket, r.reading_count, r.sum_power_kw, r.total_energy_kwh, r.peak_demand_kw, r.peak_demand_at
    FROM energy_readings_1hour r
    WHERE r.machine_id = p_machine_id AND r.reading_count > 0
      AND r.bucket >= analytics_hour_ceil(p_start_time) AND r.bucket < analytics_hour_floor(p_end_time)
$$;
