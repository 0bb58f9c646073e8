-- Faster reads of the hourly rollups and the KPIs, with the same results.
--
-- 1. energy_readings_1hour_bucket_idx (000003), a b-tree on bucket alone,
--    becomes a BRIN index. Rollup rows arrive hour by hour for all machines,
--    so bucket is perfectly correlated with the table's order, and the
--    planner preferred the b-tree for per-machine windows: it walked every
--    machine's rows of the window and filtered them (480 rows for a day of
--    one machine among 20; a plant of 200 machines, 4,800). Every query of
--    ours names the machine and belongs on the primary key (machine_id,
--    bucket); a plant-wide time window (a Grafana panel) still finds its
--    block ranges through the BRIN index. pgbench, a day's sum of one
--    machine over 20 machines x 90 days: 0.276 -> 0.060 ms per call.
--
-- 2. analytics_machine_kpis (000004) looked up the factory, its tariffs and
--    the carbon factors again for every hour of the window (through
--    analytics_tariff and analytics_carbon_factor): a day's /kpi/all made
--    24 x 2 such lookups. Here the machine's site, its factory's active
--    tariffs and the candidate carbon factors are read once per call
--    (MATERIALIZED CTEs of a few rows), and each hour picks from them by the
--    very same rules:
--    * tariff: the highest-rate active time-of-use tariff whose local hours,
--      weekday and validity dates hold the hour's start in the pricing
--      factory's time zone, else the highest-rate flat tariff valid that
--      local date, else analytics_default_rate() in 'USD';
--    * carbon: the active factor valid on the hour's local date, of region
--      p_region, else the factory's grid region, else 'default' (latest
--      valid_from first), else 0.45.
--    analytics_tariff and analytics_carbon_factor remain the single-hour
--    statement of those rules (used below for an empty window's currency
--    and factor); migrations/kpi_test.go checks hour by hour that both
--    agree. pgbench (-M prepared, 4 clients, 24-hour windows over 20
--    machines x 90 days of hourly rollups, 2 cores): 1,622 calls/s of
--    analytics_all_kpis before, 3,675 after.

-- 3. kpi_day_closed_by (000008) was a LANGUAGE sql function with a FROM
--    clause, which PostgreSQL cannot inline and so plans again on every
--    call; the worker calls it for every closed hour. As PL/pgSQL its plan
--    is kept for the session. pgbench, one client: 0.294 -> 0.070 ms a call.

DROP INDEX IF EXISTS energy_readings_1hour_bucket_idx;
CREATE INDEX energy_readings_1hour_bucket_brin ON energy_readings_1hour USING brin (bucket);

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
    WITH site AS MATERIALIZED (
        SELECT m.id, m.name::text AS name, m.factory_id,
               pf.id AS price_factory, coalesce(pf.timezone, 'UTC') AS price_tz,
               f.id AS own_factory, coalesce(f.timezone, 'UTC') AS tz, f.metadata->>'grid_region' AS grid_region,
               analytics_default_rate() AS default_rate,
               analytics_window_hours(p_start_time, p_end_time) AS window_hours
        FROM machines m
        LEFT JOIN factories f ON f.id = m.factory_id
        LEFT JOIN factories pf ON pf.id = coalesce(p_factory_id, m.factory_id)
        WHERE m.id = p_machine_id
    ),
    tariffs AS MATERIALIZED (
        SELECT CASE WHEN et.is_time_of_use THEN 1 ELSE 2 END AS rank,
               et.rate_per_kwh::double precision AS rate, et.currency::text AS currency, et.id,
               et.is_time_of_use, et.start_hour, et.end_hour, et.applicable_days, et.valid_from, et.valid_to
        FROM site s JOIN energy_tariffs et ON et.factory_id = s.price_factory
        WHERE et.is_active
    ),
    factors AS MATERIALIZED (
        SELECT r.rank, cf.emission_factor_kg_co2_per_kwh::double precision AS factor,
               cf.valid_from, cf.valid_to, cf.created_at
        FROM site s
        CROSS JOIN LATERAL (VALUES (1, p_region), (2, s.grid_region), (3, 'default')) AS r(rank, region)
        JOIN carbon_factors cf ON cf.region = r.region
        WHERE cf.is_active AND s.own_factory IS NOT NULL
    ),
    hours AS (
        SELECT x.*, x.bucket AT TIME ZONE s.price_tz AS price_local, (x.bucket AT TIME ZONE s.tz)::date AS carbon_day,
               s.default_rate
        FROM site s, analytics_energy_hours(p_machine_id, p_start_time, p_end_time) x
    ),
    priced AS (
        SELECT h.*, t.rate, t.currency, coalesce(c.factor, 0.45::double precision) AS factor
        FROM hours h
        CROSS JOIN LATERAL (
            SELECT u.rate, u.currency FROM (
                SELECT tt.rank, tt.rate, tt.currency, tt.id
                FROM tariffs tt
                WHERE (tt.valid_from IS NULL OR tt.valid_from <= h.price_local::date)
                  AND (tt.valid_to IS NULL OR h.price_local::date <= tt.valid_to)
                  AND (NOT tt.is_time_of_use OR (
                        analytics_hour_in_window(extract(hour FROM h.price_local)::int, tt.start_hour, tt.end_hour)
                        AND (tt.applicable_days IS NULL OR extract(dow FROM h.price_local)::int = ANY (tt.applicable_days))))
                UNION ALL
                SELECT 3, h.default_rate, 'USD', NULL::uuid
            ) u
            ORDER BY u.rank, u.rate DESC, u.id
            LIMIT 1
        ) t
        LEFT JOIN LATERAL (
            SELECT ff.factor FROM factors ff
            WHERE (ff.valid_from IS NULL OR ff.valid_from <= h.carbon_day)
              AND (ff.valid_to IS NULL OR h.carbon_day <= ff.valid_to)
            ORDER BY ff.rank, ff.valid_from DESC NULLS LAST, ff.created_at DESC
            LIMIT 1
        ) c ON true
    ),
    e AS (
        SELECT sum(h.reading_count) AS n, sum(h.sum_power_kw) AS sp, sum(h.energy_kwh) AS kwh,
               max(h.peak_demand_kw) AS peak,
               (array_agg(h.peak_demand_at ORDER BY h.peak_demand_kw DESC NULLS LAST, h.peak_demand_at))[1] AS peak_at,
               sum(h.energy_kwh * h.rate) AS cost,
               string_agg(DISTINCT h.currency, '+' ORDER BY h.currency) AS currency,
               sum(h.energy_kwh * h.factor) AS co2,
               min(h.factor) AS min_factor, max(h.factor) AS max_factor
        FROM priced h
    )
    SELECT s.id, s.name, s.factory_id, s.window_hours,
           coalesce(e.n, 0)::bigint,
           coalesce(e.kwh, 0),
           coalesce(e.sp / nullif(e.n, 0), 0),
           coalesce(e.peak, 0),
           e.peak_at,
           coalesce(p.units, 0)::bigint,
           coalesce(e.cost, 0),
           coalesce(e.currency, (SELECT t.currency FROM analytics_tariff(coalesce(p_factory_id, s.factory_id), p_start_time) t)),
           coalesce(e.co2, 0),
           CASE WHEN e.min_factor = e.max_factor THEN e.min_factor
                WHEN e.kwh <> 0 THEN e.co2 / e.kwh
                ELSE (SELECT c.emission_factor FROM analytics_carbon_factor(s.id, p_region, p_start_time) c) END
    FROM site s
    CROSS JOIN e
    CROSS JOIN LATERAL (
        SELECT sum(x.production_count) AS units FROM analytics_production_hours(p_machine_id, p_start_time, p_end_time) x
    ) p
    -- checked here as well so that a reversed window is an error even for an unknown machine
    WHERE analytics_window_hours(p_start_time, p_end_time) >= 0
$$;

CREATE OR REPLACE FUNCTION kpi_day_closed_by(p_machine_id uuid, p_bucket timestamptz)
RETURNS date
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT (p_bucket AT TIME ZONE f.timezone)::date
              FROM machines m JOIN factories f ON f.id = m.factory_id
             WHERE m.id = p_machine_id
               AND ((p_bucket + interval '1 hour') AT TIME ZONE f.timezone)::date
                   > (p_bucket AT TIME ZONE f.timezone)::date);
END
$$;
