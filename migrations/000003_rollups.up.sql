-- Hourly (and 15-minute) rollups of the raw telemetry, with the names and
-- columns of the EnMS aggregates. Sums and counts are stored so every
-- average is exact (never an average of averages); averages are generated
-- columns. Maintained by the statement-level triggers below.

-- An EnMS database on TimescaleDB may already have these names as continuous
-- aggregates (views). They are not ours to replace: stop with a message that
-- says what to do instead of failing on "relation already exists".
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT c.relname, c.relkind FROM pg_class c
             WHERE c.oid IN (to_regclass('energy_readings_15min'), to_regclass('energy_readings_1hour'),
                             to_regclass('production_data_1hour'), to_regclass('environmental_data_1hour')) LOOP
        RAISE EXCEPTION 'the rollup % already exists as a %; enms-analytics maintains its own rollup tables under the EnMS names and will not replace it',
            r.relname, CASE r.relkind WHEN 'v' THEN 'view (a TimescaleDB continuous aggregate?)' WHEN 'm' THEN 'materialized view' ELSE 'table' END
            USING HINT = 'Rename or drop the existing aggregate (its data can be rebuilt from the raw tables), then migrate again.';
    END LOOP;
END
$$;

-- Writers are held off while the rollups are built from existing data and the
-- triggers are installed, so no reading is missed or counted twice.
LOCK TABLE energy_readings, production_data, environmental_data IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE energy_readings_15min (
    bucket             timestamptz NOT NULL,
    machine_id         uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    reading_count      bigint NOT NULL DEFAULT 0,
    sum_power_kw       double precision NOT NULL DEFAULT 0,
    min_power_kw       double precision,
    max_power_kw       double precision,            -- the largest single reading
    total_energy_kwh   double precision NOT NULL DEFAULT 0,
    sum_power_factor   double precision NOT NULL DEFAULT 0,
    power_factor_count bigint NOT NULL DEFAULT 0,
    sum_voltage_v      double precision NOT NULL DEFAULT 0,
    voltage_count      bigint NOT NULL DEFAULT 0,
    sum_current_a      double precision NOT NULL DEFAULT 0,
    current_count      bigint NOT NULL DEFAULT 0,
    avg_power_kw       double precision GENERATED ALWAYS AS (sum_power_kw / nullif(reading_count, 0)) STORED,
    -- billing demand: the interval's average power
    peak_demand_kw     double precision GENERATED ALWAYS AS (sum_power_kw / nullif(reading_count, 0)) STORED,
    avg_power_factor   double precision GENERATED ALWAYS AS (sum_power_factor / nullif(power_factor_count, 0)) STORED,
    avg_voltage_v      double precision GENERATED ALWAYS AS (sum_voltage_v / nullif(voltage_count, 0)) STORED,
    avg_current_a      double precision GENERATED ALWAYS AS (sum_current_a / nullif(current_count, 0)) STORED,
    PRIMARY KEY (machine_id, bucket)
);

CREATE TABLE energy_readings_1hour (
    bucket             timestamptz NOT NULL,
    machine_id         uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    reading_count      bigint NOT NULL DEFAULT 0,
    sum_power_kw       double precision NOT NULL DEFAULT 0,
    min_power_kw       double precision,
    max_power_kw       double precision,
    total_energy_kwh   double precision NOT NULL DEFAULT 0,
    sum_power_factor   double precision NOT NULL DEFAULT 0,
    power_factor_count bigint NOT NULL DEFAULT 0,
    sum_voltage_v      double precision NOT NULL DEFAULT 0,
    voltage_count      bigint NOT NULL DEFAULT 0,
    sum_current_a      double precision NOT NULL DEFAULT 0,
    current_count      bigint NOT NULL DEFAULT 0,
    peak_demand_kw     double precision,                -- max of the hour's 15-minute average power
    peak_demand_at     timestamptz,                     -- start of that 15-minute interval
    avg_power_kw       double precision GENERATED ALWAYS AS (sum_power_kw / nullif(reading_count, 0)) STORED,
    avg_power_factor   double precision GENERATED ALWAYS AS (sum_power_factor / nullif(power_factor_count, 0)) STORED,
    avg_voltage_v      double precision GENERATED ALWAYS AS (sum_voltage_v / nullif(voltage_count, 0)) STORED,
    avg_current_a      double precision GENERATED ALWAYS AS (sum_current_a / nullif(current_count, 0)) STORED,
    PRIMARY KEY (machine_id, bucket)
);

CREATE TABLE production_data_1hour (
    bucket                      timestamptz NOT NULL,
    machine_id                  uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    reading_count               bigint NOT NULL DEFAULT 0,
    total_production_count      bigint NOT NULL DEFAULT 0,
    total_production_count_good bigint NOT NULL DEFAULT 0,
    total_production_count_bad  bigint NOT NULL DEFAULT 0,
    sum_throughput              double precision NOT NULL DEFAULT 0,
    throughput_count            bigint NOT NULL DEFAULT 0,
    sum_speed_percent           double precision NOT NULL DEFAULT 0,
    speed_count                 bigint NOT NULL DEFAULT 0,
    -- seconds in each operating mode: each reading stands for the machine's
    -- data_interval_seconds, or for metadata->>'interval_seconds' when the
    -- writer says it sampled more coarsely (history backfilled at 1 min)
    running_seconds             double precision NOT NULL DEFAULT 0,
    idle_seconds                double precision NOT NULL DEFAULT 0,
    maintenance_seconds         double precision NOT NULL DEFAULT 0,
    fault_seconds               double precision NOT NULL DEFAULT 0,
    offline_seconds             double precision NOT NULL DEFAULT 0,
    dominant_mode               operating_mode,           -- the mode with the most seconds (ties: the worse state)
    total_downtime_seconds      double precision NOT NULL DEFAULT 0,
    sum_material_moisture       double precision NOT NULL DEFAULT 0,
    material_moisture_count     bigint NOT NULL DEFAULT 0,
    avg_throughput              double precision GENERATED ALWAYS AS (sum_throughput / nullif(throughput_count, 0)) STORED,
    avg_speed_percent           double precision GENERATED ALWAYS AS (sum_speed_percent / nullif(speed_count, 0)) STORED,
    avg_material_moisture       double precision GENERATED ALWAYS AS (sum_material_moisture / nullif(material_moisture_count, 0)) STORED,
    PRIMARY KEY (machine_id, bucket)
);

CREATE TABLE environmental_data_1hour (
    bucket                   timestamptz NOT NULL,
    machine_id               uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    reading_count            bigint NOT NULL DEFAULT 0,
    sum_outdoor_temp_c       double precision NOT NULL DEFAULT 0,
    outdoor_temp_count       bigint NOT NULL DEFAULT 0,
    min_outdoor_temp_c       double precision,
    max_outdoor_temp_c       double precision,
    sum_indoor_temp_c        double precision NOT NULL DEFAULT 0,
    indoor_temp_count        bigint NOT NULL DEFAULT 0,
    sum_machine_temp_c       double precision NOT NULL DEFAULT 0,
    machine_temp_count       bigint NOT NULL DEFAULT 0,
    max_machine_temp_c       double precision,
    sum_humidity_percent     double precision NOT NULL DEFAULT 0,
    humidity_count           bigint NOT NULL DEFAULT 0,
    sum_pressure_bar         double precision NOT NULL DEFAULT 0,
    pressure_count           bigint NOT NULL DEFAULT 0,
    min_pressure_bar         double precision,
    max_pressure_bar         double precision,
    sum_pressure_setpoint_bar double precision NOT NULL DEFAULT 0,
    pressure_setpoint_count  bigint NOT NULL DEFAULT 0,
    sum_flow_rate_m3h        double precision NOT NULL DEFAULT 0,
    flow_rate_count          bigint NOT NULL DEFAULT 0,
    sum_cop                  double precision NOT NULL DEFAULT 0,
    cop_count                bigint NOT NULL DEFAULT 0,
    sum_vibration_mm_s       double precision NOT NULL DEFAULT 0,
    vibration_count          bigint NOT NULL DEFAULT 0,
    max_vibration_mm_s       double precision,
    avg_outdoor_temp_c       double precision GENERATED ALWAYS AS (sum_outdoor_temp_c / nullif(outdoor_temp_count, 0)) STORED,
    avg_indoor_temp_c        double precision GENERATED ALWAYS AS (sum_indoor_temp_c / nullif(indoor_temp_count, 0)) STORED,
    avg_machine_temp_c       double precision GENERATED ALWAYS AS (sum_machine_temp_c / nullif(machine_temp_count, 0)) STORED,
    avg_humidity_percent     double precision GENERATED ALWAYS AS (sum_humidity_percent / nullif(humidity_count, 0)) STORED,
    avg_pressure_bar         double precision GENERATED ALWAYS AS (sum_pressure_bar / nullif(pressure_count, 0)) STORED,
    avg_pressure_setpoint_bar double precision GENERATED ALWAYS AS (sum_pressure_setpoint_bar / nullif(pressure_setpoint_count, 0)) STORED,
    avg_flow_rate_m3h        double precision GENERATED ALWAYS AS (sum_flow_rate_m3h / nullif(flow_rate_count, 0)) STORED,
    avg_cop                  double precision GENERATED ALWAYS AS (sum_cop / nullif(cop_count, 0)) STORED,
    avg_vibration_mm_s       double precision GENERATED ALWAYS AS (sum_vibration_mm_s / nullif(vibration_count, 0)) STORED,
    PRIMARY KEY (machine_id, bucket)
);

CREATE INDEX energy_readings_1hour_bucket_idx ON energy_readings_1hour (bucket);

------------------------------------------------------------------------------
-- Bucketing and per-reading values
------------------------------------------------------------------------------

-- Bucket boundaries are in UTC whatever the session's TimeZone (date_bin on
-- timestamptz is immutable; date_trunc would follow the session's zone).
CREATE FUNCTION rollup_hour(t timestamptz) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN date_bin('1 hour', t, timestamptz '2000-01-01 00:00:00+00');

CREATE FUNCTION rollup_quarter_hour(t timestamptz) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN date_bin('15 minutes', t, timestamptz '2000-01-01 00:00:00+00');

-- The energy of one reading: the metered energy_kwh when the device reports
-- it, else the power held over the machine's sampling interval
-- (power × interval / 3600), never SUM(power)/3600, which assumes 1 s
-- sampling. A machine without an interval counts as sampling every second
-- (the column's default).
CREATE FUNCTION rollup_energy_kwh(power_kw double precision, energy_kwh double precision, interval_seconds integer)
    RETURNS double precision
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN energy_kwh > 0 THEN energy_kwh
                ELSE power_kw * coalesce(interval_seconds, 1) / 3600::double precision END;

-- A decimal number written as text (a JSON number or a numeric string), else
-- NULL: anything that is not a plain finite decimal is ignored rather than
-- failing the insert of the reading that carries it. Bounded in length so the
-- cast cannot overflow.
CREATE FUNCTION rollup_parse_number(s text) RETURNS double precision
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN s ~ '^\s*[-+]?(\d{1,15}(\.\d{0,30})?|\.\d{1,30})([eE][-+]?\d{1,2})?\s*$'
                THEN s::double precision END;

-- The new sum of a (sum, count) pair after adding a delta: exactly 0 once the
-- count is back to 0, so removed readings leave no rounding residue behind.
CREATE FUNCTION rollup_add(total double precision, n bigint, delta double precision, delta_n bigint)
    RETURNS double precision
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN n + delta_n = 0 THEN 0 ELSE total + delta END;

-- The operating mode with the most seconds in the hour; on a tie the worse
-- state wins (fault > maintenance > offline > idle > running), so an hour
-- split evenly between running and fault is not reported as a good hour.
-- NULL when no reading carried a mode.
CREATE FUNCTION rollup_dominant_mode(running double precision, idle double precision,
                                     maintenance double precision, fault double precision,
                                     offline double precision)
    RETURNS operating_mode
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE
        WHEN greatest(running, idle, maintenance, fault, offline) <= 0 THEN NULL
        WHEN fault = greatest(running, idle, maintenance, fault, offline) THEN 'fault'::operating_mode
        WHEN maintenance = greatest(running, idle, maintenance, fault, offline) THEN 'maintenance'::operating_mode
        WHEN offline = greatest(running, idle, maintenance, fault, offline) THEN 'offline'::operating_mode
        WHEN idle = greatest(running, idle, maintenance, fault, offline) THEN 'idle'::operating_mode
        ELSE 'running'::operating_mode
    END;

------------------------------------------------------------------------------
-- Hour-close state and events
------------------------------------------------------------------------------

-- Per machine: the newest hour with data in any raw table (open_hour) and
-- the newest hour that is closed (closed_through; every hour at or before it
-- is closed). closed_through is open_hour − 1 hour while the open hour is
-- open, and equals open_hour once the sweeper closed it. The row is also the
-- per-machine lock that serialises the rollup triggers of one machine.
CREATE TABLE analytics_hour_state (
    machine_id     uuid PRIMARY KEY REFERENCES machines (id) ON DELETE CASCADE,
    open_hour      timestamptz,
    closed_through timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- analytics_lock_machines takes the state rows of the machines (creating
-- missing ones) FOR UPDATE, in machine order so concurrent statements cannot
-- deadlock on them. Held to the end of the transaction: concurrent writers of
-- one machine run their rollup triggers one after the other, each seeing the
-- rollups the previous one committed, which keeps the recomputed minima,
-- maxima and peaks exact without further locking.
CREATE FUNCTION analytics_lock_machines(p_machines uuid[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT count(*) FROM analytics_hour_state WHERE machine_id = ANY (p_machines))
       < (SELECT count(DISTINCT m) FROM unnest(p_machines) AS m) THEN
        INSERT INTO analytics_hour_state (machine_id)
        SELECT DISTINCT m FROM unnest(p_machines) AS m ORDER BY 1
        ON CONFLICT DO NOTHING;
    END IF;
    PERFORM 1 FROM analytics_hour_state WHERE machine_id = ANY (p_machines) ORDER BY machine_id FOR UPDATE;
END
$$;

-- analytics_note_hours is called by every rollup trigger, once per statement,
-- with the machine-hours whose data the statement changed (p_added: the
-- statement brought data into the hour, as opposed to only removing some).
-- The caller holds the machines' state rows (analytics_lock_machines).
--
--  * Data for an hour later than the machine's open hour closes every earlier
--    hour of the machine that has data in any rollup and is not closed yet:
--    one hour_closed event per machine-hour. A replayed history closes all
--    its hours but the newest at once.
--  * A change to an hour that is already closed emits hour_revised, unless an
--    identical revision, or the hour's own hour_closed, is still waiting
--    unclaimed: that event will read the hour as it is now. (A claimed one may
--    be running right now and must not swallow the newer change.) So one
--    transaction that writes several hours table by table — a backfill —
--    closes each hour once instead of closing and then revising it.
--  * One NOTIFY hourly_aggregate_closed per statement that wrote events; the
--    payload is the id of a machine that got events (the lowest, when several
--    did). It is a wake-up, not a list: the events table is the truth.
CREATE FUNCTION analytics_note_hours(p_machines uuid[], p_hours timestamptz[], p_added boolean[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_notify text;
BEGIN
    WITH touched AS (
        SELECT * FROM unnest(p_machines, p_hours, p_added) AS t (machine_id, hour, added)
    ), st AS (
        SELECT s.machine_id, s.open_hour, s.closed_through, max(t.hour) FILTER (WHERE t.added) AS newest
        FROM analytics_hour_state s JOIN touched t USING (machine_id)
        GROUP BY s.machine_id, s.open_hour, s.closed_through
    ), advancing AS (
        SELECT machine_id, closed_through, newest FROM st
        WHERE newest > coalesce(open_hour, '-infinity')
    ), advanced AS (
        UPDATE analytics_hour_state s
        SET open_hour = a.newest, closed_through = a.newest - interval '1 hour', updated_at = now()
        FROM advancing a WHERE s.machine_id = a.machine_id
    ), closing AS (
        SELECT a.machine_id, h.bucket
        FROM advancing a CROSS JOIN LATERAL (
            SELECT r.bucket FROM energy_readings_1hour r
            WHERE r.machine_id = a.machine_id AND r.bucket > coalesce(a.closed_through, '-infinity') AND r.bucket < a.newest
            UNION
            SELECT r.bucket FROM production_data_1hour r
            WHERE r.machine_id = a.machine_id AND r.bucket > coalesce(a.closed_through, '-infinity') AND r.bucket < a.newest
            UNION
            SELECT r.bucket FROM environmental_data_1hour r
            WHERE r.machine_id = a.machine_id AND r.bucket > coalesce(a.closed_through, '-infinity') AND r.bucket < a.newest
        ) h
    ), revising AS (
        SELECT t.machine_id, t.hour AS bucket
        FROM touched t JOIN st USING (machine_id)
        WHERE t.hour <= st.closed_through
          AND NOT EXISTS (
              SELECT 1 FROM analytics_events e
              WHERE e.machine_id = t.machine_id AND e.kind IN ('hour_revised', 'hour_closed') AND e.bucket = t.hour
                AND e.done_at IS NULL AND e.parked_at IS NULL AND e.locked_until IS NULL)
    ), inserted AS (
        INSERT INTO analytics_events (kind, machine_id, bucket)
        SELECT kind, machine_id, bucket FROM (
            SELECT 'hour_closed' AS kind, machine_id, bucket FROM closing
            UNION ALL
            SELECT 'hour_revised', machine_id, bucket FROM revising) e
        ORDER BY machine_id, bucket, kind
        ON CONFLICT DO NOTHING
        RETURNING machine_id
    )
    SELECT min(machine_id::text) INTO v_notify FROM inserted;
    IF v_notify IS NOT NULL THEN
        PERFORM pg_notify('hourly_aggregate_closed', v_notify);
    END IF;
END
$$;

-- analytics_close_stale_hours is called by the worker's sweeper: it closes
-- every machine's open hour that saw no newer data for `grace` after its end
-- (open_hour + 1 hour + grace < now()), emitting hour_closed for it and
-- remembering it is closed, so a later reading for that hour emits
-- hour_revised. Machines being written right now are skipped (SKIP LOCKED):
-- their hours are not stale. Returns how many hours it closed (the number of
-- hour_closed events it wrote).
CREATE FUNCTION analytics_close_stale_hours(grace interval) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_closed integer;
    v_notify text;
BEGIN
    WITH stale AS (
        SELECT machine_id, open_hour FROM analytics_hour_state
        WHERE open_hour IS NOT NULL
          AND (closed_through IS NULL OR closed_through < open_hour)
          AND open_hour + interval '1 hour' + grace < now()
        ORDER BY machine_id
        FOR UPDATE SKIP LOCKED
    ), closed AS (
        UPDATE analytics_hour_state s SET closed_through = st.open_hour, updated_at = now()
        FROM stale st WHERE s.machine_id = st.machine_id
        RETURNING s.machine_id, s.open_hour
    ), inserted AS (
        -- An open hour whose readings were all deleted closes silently.
        INSERT INTO analytics_events (kind, machine_id, bucket)
        SELECT 'hour_closed', c.machine_id, c.open_hour FROM closed c
        WHERE EXISTS (SELECT 1 FROM energy_readings_1hour r WHERE r.machine_id = c.machine_id AND r.bucket = c.open_hour)
           OR EXISTS (SELECT 1 FROM production_data_1hour r WHERE r.machine_id = c.machine_id AND r.bucket = c.open_hour)
           OR EXISTS (SELECT 1 FROM environmental_data_1hour r WHERE r.machine_id = c.machine_id AND r.bucket = c.open_hour)
        ORDER BY c.machine_id
        ON CONFLICT DO NOTHING
        RETURNING machine_id
    )
    SELECT count(*), min(machine_id::text) INTO v_closed, v_notify FROM inserted;
    IF v_notify IS NOT NULL THEN
        PERFORM pg_notify('hourly_aggregate_closed', v_notify);
    END IF;
    RETURN v_closed;
END
$$;

------------------------------------------------------------------------------
-- The rollup triggers
------------------------------------------------------------------------------
-- Each raw table gets three statement-level AFTER triggers (INSERT, UPDATE,
-- DELETE) with transition tables. Each turns its statement into signed
-- changes — inserted rows +1, deleted rows −1, updated rows −old +new, and
-- only the readings whose rollup-relevant values changed, so an identical
-- re-send costs nothing — aggregates them in one pass into net deltas per
-- machine and bucket, and applies those few rows to each rollup:
--   * counts and sums are added (INSERT … SELECT … ON CONFLICT DO UPDATE),
--     so they are exact whatever the order, lateness or batching;
--   * minima and maxima take least/greatest of the new values; only where
--     readings were removed are they recomputed from the raw rows;
--   * the hour's peak demand is re-read from its four 15-minute buckets.
-- An INSERT … ON CONFLICT DO UPDATE fires both the UPDATE and the INSERT
-- triggers; with additive sums and idempotent minima/maxima/peaks the result
-- is the same in either order. Then the statement's machine-hours go to
-- analytics_note_hours (hour-close events).

-- Signed deltas of one statement per machine and bucket (15-minute for energy,
-- hourly for the others), with whether the bucket gained (added) or lost
-- (removed) readings. The triggers aggregate their transition tables into an
-- array of these once and apply it to every rollup.
CREATE TYPE rollup_energy_delta AS (
    machine_id uuid,
    bucket timestamptz,
    reading_count bigint,
    sum_power_kw double precision,
    min_power_kw double precision,
    max_power_kw double precision,
    total_energy_kwh double precision,
    sum_power_factor double precision,
    power_factor_count bigint,
    sum_voltage_v double precision,
    voltage_count bigint,
    sum_current_a double precision,
    current_count bigint,
    added boolean,
    removed boolean
);

CREATE TYPE rollup_production_delta AS (
    machine_id uuid,
    bucket timestamptz,
    reading_count bigint,
    total_production_count bigint,
    total_production_count_good bigint,
    total_production_count_bad bigint,
    sum_throughput double precision,
    throughput_count bigint,
    sum_speed_percent double precision,
    speed_count bigint,
    running_seconds double precision,
    idle_seconds double precision,
    maintenance_seconds double precision,
    fault_seconds double precision,
    offline_seconds double precision,
    total_downtime_seconds double precision,
    sum_material_moisture double precision,
    material_moisture_count bigint,
    added boolean,
    removed boolean
);

CREATE TYPE rollup_environmental_delta AS (
    machine_id uuid,
    bucket timestamptz,
    reading_count bigint,
    sum_outdoor_temp_c double precision,
    outdoor_temp_count bigint,
    sum_indoor_temp_c double precision,
    indoor_temp_count bigint,
    sum_machine_temp_c double precision,
    machine_temp_count bigint,
    sum_humidity_percent double precision,
    humidity_count bigint,
    sum_pressure_bar double precision,
    pressure_count bigint,
    sum_pressure_setpoint_bar double precision,
    pressure_setpoint_count bigint,
    sum_flow_rate_m3h double precision,
    flow_rate_count bigint,
    sum_cop double precision,
    cop_count bigint,
    sum_vibration_mm_s double precision,
    vibration_count bigint,
    min_outdoor_temp_c double precision,
    max_outdoor_temp_c double precision,
    max_machine_temp_c double precision,
    min_pressure_bar double precision,
    max_pressure_bar double precision,
    max_vibration_mm_s double precision,
    added boolean,
    removed boolean
);

-- pg_temp.create_rollup_triggers builds the three trigger functions of one
-- raw table from one template, and rollup_rebuild_<table>() that recomputes
-- its rollups from scratch. In the templates, {changes} is the signed-change
-- query (columns sign, machine_id, time and the table's values as `cols`
-- names them); `delta` aggregates it per machine and bucket into rows of the
-- table's delta type; `apply` applies {deltas} (those rows) to the rollups;
-- {is_insert} says whether no readings can have been removed.
CREATE OR REPLACE FUNCTION pg_temp.create_rollup_triggers(tbl text, delta_type text, cols text, rollups text[],
                                                         delta text, apply text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    op record;
    fn text;
    wrapper constant text := $wrapper$
DECLARE
    v_delta {delta_type}[];
    v_machines uuid[];
    v_hours timestamptz[];
    v_added boolean[];
BEGIN
    -- One pass over the transition tables: the statement's net change per
    -- machine and bucket. Everything below works on these few rows.
    SELECT array_agg(ROW(d.*)::{delta_type} ORDER BY d.machine_id, d.bucket) INTO v_delta
    FROM ({delta}) d;
    IF v_delta IS NULL THEN
        RETURN NULL;  -- nothing that the rollups see changed
    END IF;
    SELECT array_agg(t.machine_id), array_agg(t.hour), array_agg(t.added)
    INTO v_machines, v_hours, v_added
    FROM (SELECT d.machine_id, rollup_hour(d.bucket) AS hour, bool_or(d.added) AS added
          FROM unnest(v_delta) d
          GROUP BY d.machine_id, rollup_hour(d.bucket)) t;
    PERFORM analytics_lock_machines(v_machines);
{apply}
    PERFORM analytics_note_hours(v_machines, v_hours, v_added);
    RETURN NULL;
END
$wrapper$;
BEGIN
    FOR op IN SELECT * FROM (VALUES
        ('insert', 'INSERT', 'REFERENCING NEW TABLE AS new_rows', 'true',
         'SELECT 1 AS sign, {cols} FROM new_rows'),
        ('update', 'UPDATE', 'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows', 'false',
         'SELECT 1 AS sign, n.* FROM (SELECT {cols} FROM new_rows EXCEPT ALL SELECT {cols} FROM old_rows) n
          UNION ALL
          SELECT -1 AS sign, o.* FROM (SELECT {cols} FROM old_rows EXCEPT ALL SELECT {cols} FROM new_rows) o'),
        ('delete', 'DELETE', 'REFERENCING OLD TABLE AS old_rows', 'false',
         'SELECT -1 AS sign, {cols} FROM old_rows')) AS v (name, event, referencing, is_insert, changes)
    LOOP
        fn := 'rollup_' || tbl || '_' || op.name;
        EXECUTE format('CREATE FUNCTION %I() RETURNS trigger LANGUAGE plpgsql AS %L', fn,
            replace(replace(replace(replace(replace(replace(wrapper,
                '{apply}', apply), '{delta}', delta), '{changes}', replace(op.changes, '{cols}', cols)),
                '{deltas}', 'unnest(v_delta)'), '{is_insert}', op.is_insert), '{delta_type}', delta_type));
        EXECUTE format('COMMENT ON FUNCTION %I() IS %L', fn,
            format('Keeps the rollups of %s exact after %s statements and emits hour-close events (migration 000003).', tbl, op.event));
        EXECUTE format('CREATE TRIGGER %I AFTER %s ON %I %s FOR EACH STATEMENT EXECUTE FUNCTION %I()',
            'rollup_' || op.name, op.event, tbl, op.referencing, fn);
    END LOOP;

    fn := 'rollup_rebuild_' || tbl;
    EXECUTE format('CREATE FUNCTION %I() RETURNS void LANGUAGE plpgsql AS %L', fn,
        'BEGIN ' || (SELECT string_agg(format('DELETE FROM %I; ', r), '') FROM unnest(rollups) AS r)
        || replace(replace(apply, '{deltas}', '(' || replace(delta, '{changes}', format('SELECT 1 AS sign, %s FROM %I', cols, tbl)) || ')'),
                   '{is_insert}', 'true')
        || ' END');
    EXECUTE format('COMMENT ON FUNCTION %I() IS %L', fn,
        format('Recomputes the rollups of %s from the raw rows (migration 000003).', tbl));
END
$$;

SELECT pg_temp.create_rollup_triggers('energy_readings', 'rollup_energy_delta',
    $cols$machine_id, time, power_kw::double precision AS power_kw, energy_kwh::double precision AS energy_kwh, voltage_v::double precision AS voltage_v, current_a::double precision AS current_a, power_factor::double precision AS power_factor$cols$,
    ARRAY['energy_readings_15min', 'energy_readings_1hour'],
$delta$
    SELECT ch.machine_id,
       rollup_quarter_hour(ch.time) AS bucket,
       sum(ch.sign) AS reading_count,
       sum(ch.sign * ch.power_kw) AS sum_power_kw,
       min(ch.power_kw) FILTER (WHERE ch.sign > 0) AS min_power_kw,
       max(ch.power_kw) FILTER (WHERE ch.sign > 0) AS max_power_kw,
       sum(ch.sign * rollup_energy_kwh(ch.power_kw, ch.energy_kwh, m.data_interval_seconds)) AS total_energy_kwh,
       coalesce(sum(ch.sign * ch.power_factor), 0) AS sum_power_factor,
       coalesce(sum(ch.sign) FILTER (WHERE ch.power_factor IS NOT NULL), 0) AS power_factor_count,
       coalesce(sum(ch.sign * ch.voltage_v), 0) AS sum_voltage_v,
       coalesce(sum(ch.sign) FILTER (WHERE ch.voltage_v IS NOT NULL), 0) AS voltage_count,
       coalesce(sum(ch.sign * ch.current_a), 0) AS sum_current_a,
       coalesce(sum(ch.sign) FILTER (WHERE ch.current_a IS NOT NULL), 0) AS current_count,
       bool_or(ch.sign > 0) AS added,
       bool_or(ch.sign < 0) AS removed
    FROM ({changes}) ch JOIN machines m ON m.id = ch.machine_id
    GROUP BY ch.machine_id, rollup_quarter_hour(ch.time)$delta$,
$apply$
    -- 15-minute buckets first: the hour's peak demand is read from them.
    INSERT INTO energy_readings_15min AS r (bucket, machine_id, reading_count, sum_power_kw, min_power_kw, max_power_kw, total_energy_kwh, sum_power_factor, power_factor_count, sum_voltage_v, voltage_count, sum_current_a, current_count)
    SELECT d.bucket, d.machine_id, d.reading_count, d.sum_power_kw, d.min_power_kw, d.max_power_kw, d.total_energy_kwh, d.sum_power_factor, d.power_factor_count, d.sum_voltage_v, d.voltage_count, d.sum_current_a, d.current_count
    FROM {deltas} d
    ORDER BY d.machine_id, d.bucket
    ON CONFLICT (machine_id, bucket) DO UPDATE SET
        reading_count = r.reading_count + excluded.reading_count,
        sum_power_kw = rollup_add(r.sum_power_kw, r.reading_count, excluded.sum_power_kw, excluded.reading_count),
        min_power_kw = least(r.min_power_kw, excluded.min_power_kw),
        max_power_kw = greatest(r.max_power_kw, excluded.max_power_kw),
        total_energy_kwh = rollup_add(r.total_energy_kwh, r.reading_count, excluded.total_energy_kwh, excluded.reading_count),
        sum_power_factor = rollup_add(r.sum_power_factor, r.power_factor_count, excluded.sum_power_factor, excluded.power_factor_count),
        power_factor_count = r.power_factor_count + excluded.power_factor_count,
        sum_voltage_v = rollup_add(r.sum_voltage_v, r.voltage_count, excluded.sum_voltage_v, excluded.voltage_count),
        voltage_count = r.voltage_count + excluded.voltage_count,
        sum_current_a = rollup_add(r.sum_current_a, r.current_count, excluded.sum_current_a, excluded.current_count),
        current_count = r.current_count + excluded.current_count;

    -- The hour adds up its quarters' deltas; its peak is the largest quarter
    -- average, as the 15-minute rollup now holds it.
    INSERT INTO energy_readings_1hour AS r (bucket, machine_id, reading_count, sum_power_kw, min_power_kw, max_power_kw, total_energy_kwh, sum_power_factor, power_factor_count, sum_voltage_v, voltage_count, sum_current_a, current_count, peak_demand_kw, peak_demand_at)
    SELECT h.bucket, h.machine_id, h.reading_count, h.sum_power_kw, h.min_power_kw, h.max_power_kw, h.total_energy_kwh, h.sum_power_factor, h.power_factor_count, h.sum_voltage_v, h.voltage_count, h.sum_current_a, h.current_count, pk.peak_demand_kw, pk.bucket
    FROM (SELECT rollup_hour(d.bucket) AS bucket, d.machine_id,
                 sum(d.reading_count)::bigint AS reading_count,
                 sum(d.sum_power_kw) AS sum_power_kw,
                 min(d.min_power_kw) AS min_power_kw,
                 max(d.max_power_kw) AS max_power_kw,
                 sum(d.total_energy_kwh) AS total_energy_kwh,
                 sum(d.sum_power_factor) AS sum_power_factor,
                 sum(d.power_factor_count)::bigint AS power_factor_count,
                 sum(d.sum_voltage_v) AS sum_voltage_v,
                 sum(d.voltage_count)::bigint AS voltage_count,
                 sum(d.sum_current_a) AS sum_current_a,
                 sum(d.current_count)::bigint AS current_count
          FROM {deltas} d
          GROUP BY d.machine_id, rollup_hour(d.bucket)) h
    LEFT JOIN LATERAL (
        SELECT q.peak_demand_kw, q.bucket FROM energy_readings_15min q
        WHERE q.machine_id = h.machine_id AND q.bucket >= h.bucket AND q.bucket < h.bucket + interval '1 hour'
          AND q.peak_demand_kw IS NOT NULL
        ORDER BY q.peak_demand_kw DESC, q.bucket
        LIMIT 1) pk ON true
    ORDER BY h.machine_id, h.bucket
    ON CONFLICT (machine_id, bucket) DO UPDATE SET
        reading_count = r.reading_count + excluded.reading_count,
        sum_power_kw = rollup_add(r.sum_power_kw, r.reading_count, excluded.sum_power_kw, excluded.reading_count),
        min_power_kw = least(r.min_power_kw, excluded.min_power_kw),
        max_power_kw = greatest(r.max_power_kw, excluded.max_power_kw),
        total_energy_kwh = rollup_add(r.total_energy_kwh, r.reading_count, excluded.total_energy_kwh, excluded.reading_count),
        sum_power_factor = rollup_add(r.sum_power_factor, r.power_factor_count, excluded.sum_power_factor, excluded.power_factor_count),
        power_factor_count = r.power_factor_count + excluded.power_factor_count,
        sum_voltage_v = rollup_add(r.sum_voltage_v, r.voltage_count, excluded.sum_voltage_v, excluded.voltage_count),
        voltage_count = r.voltage_count + excluded.voltage_count,
        sum_current_a = rollup_add(r.sum_current_a, r.current_count, excluded.sum_current_a, excluded.current_count),
        current_count = r.current_count + excluded.current_count,
        peak_demand_kw = excluded.peak_demand_kw,
        peak_demand_at = excluded.peak_demand_at;

    IF NOT {is_insert} THEN
        -- Readings were removed: minima and maxima cannot be subtracted, so
        -- they are recomputed for the buckets that lost readings (one index
        -- range scan per bucket), and buckets left without readings go.
        UPDATE energy_readings_15min r SET min_power_kw = x.lo, max_power_kw = x.hi
        FROM {deltas} rm CROSS JOIN LATERAL (
            SELECT min(e.power_kw)::double precision AS lo, max(e.power_kw)::double precision AS hi
            FROM energy_readings e
            WHERE e.machine_id = rm.machine_id AND e.time >= rm.bucket AND e.time < rm.bucket + interval '15 minutes') x
        WHERE rm.removed AND r.machine_id = rm.machine_id AND r.bucket = rm.bucket;
        DELETE FROM energy_readings_15min r USING {deltas} rm
        WHERE rm.removed AND r.machine_id = rm.machine_id AND r.bucket = rm.bucket AND r.reading_count <= 0;

        UPDATE energy_readings_1hour r SET min_power_kw = x.lo, max_power_kw = x.hi
        FROM (SELECT DISTINCT d.machine_id, rollup_hour(d.bucket) AS bucket FROM {deltas} d WHERE d.removed) rm
        CROSS JOIN LATERAL (
            SELECT min(q.min_power_kw) AS lo, max(q.max_power_kw) AS hi
            FROM energy_readings_15min q
            WHERE q.machine_id = rm.machine_id AND q.bucket >= rm.bucket AND q.bucket < rm.bucket + interval '1 hour') x
        WHERE r.machine_id = rm.machine_id AND r.bucket = rm.bucket;
        DELETE FROM energy_readings_1hour r
        USING (SELECT DISTINCT d.machine_id, rollup_hour(d.bucket) AS bucket FROM {deltas} d WHERE d.removed) rm
        WHERE r.machine_id = rm.machine_id AND r.bucket = rm.bucket AND r.reading_count <= 0;
    END IF;
$apply$);

SELECT pg_temp.create_rollup_triggers('production_data', 'rollup_production_delta',
    $cols$machine_id, time, production_count::bigint AS production_count, production_count_good::bigint AS production_count_good, production_count_bad::bigint AS production_count_bad, throughput_units_per_hour::double precision AS throughput, operating_mode::text AS mode, speed_percent::double precision AS speed, downtime_seconds::double precision AS downtime, rollup_parse_number(metadata->>'material_moisture') AS moisture, nullif(greatest(rollup_parse_number(metadata->>'interval_seconds'), 0), 0) AS interval_seconds$cols$,
    ARRAY['production_data_1hour'],
$delta$
    SELECT ch.machine_id,
       rollup_hour(ch.time) AS bucket,
       sum(ch.sign) AS reading_count,
       coalesce(sum(ch.sign * ch.production_count), 0)::bigint AS total_production_count,
       coalesce(sum(ch.sign * ch.production_count_good), 0)::bigint AS total_production_count_good,
       coalesce(sum(ch.sign * ch.production_count_bad), 0)::bigint AS total_production_count_bad,
       coalesce(sum(ch.sign * ch.throughput), 0) AS sum_throughput,
       coalesce(sum(ch.sign) FILTER (WHERE ch.throughput IS NOT NULL), 0) AS throughput_count,
       coalesce(sum(ch.sign * ch.speed), 0) AS sum_speed_percent,
       coalesce(sum(ch.sign) FILTER (WHERE ch.speed IS NOT NULL), 0) AS speed_count,
       coalesce(sum(ch.sign * coalesce(ch.interval_seconds, m.data_interval_seconds, 1)) FILTER (WHERE ch.mode = 'running'), 0)::double precision AS running_seconds,
       coalesce(sum(ch.sign * coalesce(ch.interval_seconds, m.data_interval_seconds, 1)) FILTER (WHERE ch.mode = 'idle'), 0)::double precision AS idle_seconds,
       coalesce(sum(ch.sign * coalesce(ch.interval_seconds, m.data_interval_seconds, 1)) FILTER (WHERE ch.mode = 'maintenance'), 0)::double precision AS maintenance_seconds,
       coalesce(sum(ch.sign * coalesce(ch.interval_seconds, m.data_interval_seconds, 1)) FILTER (WHERE ch.mode = 'fault'), 0)::double precision AS fault_seconds,
       coalesce(sum(ch.sign * coalesce(ch.interval_seconds, m.data_interval_seconds, 1)) FILTER (WHERE ch.mode = 'offline'), 0)::double precision AS offline_seconds,
       coalesce(sum(ch.sign * ch.downtime), 0) AS total_downtime_seconds,
       coalesce(sum(ch.sign * ch.moisture), 0) AS sum_material_moisture,
       coalesce(sum(ch.sign) FILTER (WHERE ch.moisture IS NOT NULL), 0) AS material_moisture_count,
       bool_or(ch.sign > 0) AS added,
       bool_or(ch.sign < 0) AS removed
    FROM ({changes}) ch JOIN machines m ON m.id = ch.machine_id
    GROUP BY ch.machine_id, rollup_hour(ch.time)$delta$,
$apply$
    INSERT INTO production_data_1hour AS r (bucket, machine_id, reading_count, total_production_count, total_production_count_good, total_production_count_bad, sum_throughput, throughput_count, sum_speed_percent, speed_count, running_seconds, idle_seconds, maintenance_seconds, fault_seconds, offline_seconds, total_downtime_seconds, sum_material_moisture, material_moisture_count, dominant_mode)
    SELECT d.bucket, d.machine_id, d.reading_count, d.total_production_count, d.total_production_count_good, d.total_production_count_bad, d.sum_throughput, d.throughput_count, d.sum_speed_percent, d.speed_count, d.running_seconds, d.idle_seconds, d.maintenance_seconds, d.fault_seconds, d.offline_seconds, d.total_downtime_seconds, d.sum_material_moisture, d.material_moisture_count,
           rollup_dominant_mode(d.running_seconds, d.idle_seconds, d.maintenance_seconds, d.fault_seconds, d.offline_seconds)
    FROM {deltas} d
    ORDER BY d.machine_id, d.bucket
    ON CONFLICT (machine_id, bucket) DO UPDATE SET
        reading_count = r.reading_count + excluded.reading_count,
        total_production_count = r.total_production_count + excluded.total_production_count,
        total_production_count_good = r.total_production_count_good + excluded.total_production_count_good,
        total_production_count_bad = r.total_production_count_bad + excluded.total_production_count_bad,
        sum_throughput = rollup_add(r.sum_throughput, r.throughput_count, excluded.sum_throughput, excluded.throughput_count),
        throughput_count = r.throughput_count + excluded.throughput_count,
        sum_speed_percent = rollup_add(r.sum_speed_percent, r.speed_count, excluded.sum_speed_percent, excluded.speed_count),
        speed_count = r.speed_count + excluded.speed_count,
        running_seconds = r.running_seconds + excluded.running_seconds,
        idle_seconds = r.idle_seconds + excluded.idle_seconds,
        maintenance_seconds = r.maintenance_seconds + excluded.maintenance_seconds,
        fault_seconds = r.fault_seconds + excluded.fault_seconds,
        offline_seconds = r.offline_seconds + excluded.offline_seconds,
        dominant_mode = rollup_dominant_mode(r.running_seconds + excluded.running_seconds, r.idle_seconds + excluded.idle_seconds, r.maintenance_seconds + excluded.maintenance_seconds, r.fault_seconds + excluded.fault_seconds, r.offline_seconds + excluded.offline_seconds),
        total_downtime_seconds = rollup_add(r.total_downtime_seconds, r.reading_count, excluded.total_downtime_seconds, excluded.reading_count),
        sum_material_moisture = rollup_add(r.sum_material_moisture, r.material_moisture_count, excluded.sum_material_moisture, excluded.material_moisture_count),
        material_moisture_count = r.material_moisture_count + excluded.material_moisture_count;

    IF NOT {is_insert} THEN
        DELETE FROM production_data_1hour r USING {deltas} rm
        WHERE rm.removed AND r.machine_id = rm.machine_id AND r.bucket = rm.bucket AND r.reading_count <= 0;
    END IF;
$apply$);

SELECT pg_temp.create_rollup_triggers('environmental_data', 'rollup_environmental_delta',
    $cols$machine_id, time, outdoor_temp_c::double precision AS outdoor_temp_c, indoor_temp_c::double precision AS indoor_temp_c, machine_temp_c::double precision AS machine_temp_c, outdoor_humidity_percent::double precision AS outdoor_humidity_percent, pressure_bar::double precision AS pressure_bar, pressure_setpoint_bar::double precision AS pressure_setpoint_bar, flow_rate_m3h::double precision AS flow_rate_m3h, cop::double precision AS cop, vibration_mm_s::double precision AS vibration_mm_s$cols$,
    ARRAY['environmental_data_1hour'],
$delta$
    SELECT ch.machine_id,
       rollup_hour(ch.time) AS bucket,
       sum(ch.sign) AS reading_count,
       coalesce(sum(ch.sign * ch.outdoor_temp_c), 0) AS sum_outdoor_temp_c,
       coalesce(sum(ch.sign) FILTER (WHERE ch.outdoor_temp_c IS NOT NULL), 0) AS outdoor_temp_count,
       coalesce(sum(ch.sign * ch.indoor_temp_c), 0) AS sum_indoor_temp_c,
       coalesce(sum(ch.sign) FILTER (WHERE ch.indoor_temp_c IS NOT NULL), 0) AS indoor_temp_count,
       coalesce(sum(ch.sign * ch.machine_temp_c), 0) AS sum_machine_temp_c,
       coalesce(sum(ch.sign) FILTER (WHERE ch.machine_temp_c IS NOT NULL), 0) AS machine_temp_count,
       coalesce(sum(ch.sign * ch.outdoor_humidity_percent), 0) AS sum_humidity_percent,
       coalesce(sum(ch.sign) FILTER (WHERE ch.outdoor_humidity_percent IS NOT NULL), 0) AS humidity_count,
       coalesce(sum(ch.sign * ch.pressure_bar), 0) AS sum_pressure_bar,
       coalesce(sum(ch.sign) FILTER (WHERE ch.pressure_bar IS NOT NULL), 0) AS pressure_count,
       coalesce(sum(ch.sign * ch.pressure_setpoint_bar), 0) AS sum_pressure_setpoint_bar,
       coalesce(sum(ch.sign) FILTER (WHERE ch.pressure_setpoint_bar IS NOT NULL), 0) AS pressure_setpoint_count,
       coalesce(sum(ch.sign * ch.flow_rate_m3h), 0) AS sum_flow_rate_m3h,
       coalesce(sum(ch.sign) FILTER (WHERE ch.flow_rate_m3h IS NOT NULL), 0) AS flow_rate_count,
       coalesce(sum(ch.sign * ch.cop), 0) AS sum_cop,
       coalesce(sum(ch.sign) FILTER (WHERE ch.cop IS NOT NULL), 0) AS cop_count,
       coalesce(sum(ch.sign * ch.vibration_mm_s), 0) AS sum_vibration_mm_s,
       coalesce(sum(ch.sign) FILTER (WHERE ch.vibration_mm_s IS NOT NULL), 0) AS vibration_count,
       min(ch.outdoor_temp_c) FILTER (WHERE ch.sign > 0) AS min_outdoor_temp_c,
       max(ch.outdoor_temp_c) FILTER (WHERE ch.sign > 0) AS max_outdoor_temp_c,
       max(ch.machine_temp_c) FILTER (WHERE ch.sign > 0) AS max_machine_temp_c,
       min(ch.pressure_bar) FILTER (WHERE ch.sign > 0) AS min_pressure_bar,
       max(ch.pressure_bar) FILTER (WHERE ch.sign > 0) AS max_pressure_bar,
       max(ch.vibration_mm_s) FILTER (WHERE ch.sign > 0) AS max_vibration_mm_s,
       bool_or(ch.sign > 0) AS added,
       bool_or(ch.sign < 0) AS removed
    FROM ({changes}) ch JOIN machines m ON m.id = ch.machine_id
    GROUP BY ch.machine_id, rollup_hour(ch.time)$delta$,
$apply$
    INSERT INTO environmental_data_1hour AS r (bucket, machine_id, reading_count, sum_outdoor_temp_c, outdoor_temp_count, sum_indoor_temp_c, indoor_temp_count, sum_machine_temp_c, machine_temp_count, sum_humidity_percent, humidity_count, sum_pressure_bar, pressure_count, sum_pressure_setpoint_bar, pressure_setpoint_count, sum_flow_rate_m3h, flow_rate_count, sum_cop, cop_count, sum_vibration_mm_s, vibration_count, min_outdoor_temp_c, max_outdoor_temp_c, max_machine_temp_c, min_pressure_bar, max_pressure_bar, max_vibration_mm_s)
    SELECT d.bucket, d.machine_id, d.reading_count, d.sum_outdoor_temp_c, d.outdoor_temp_count, d.sum_indoor_temp_c, d.indoor_temp_count, d.sum_machine_temp_c, d.machine_temp_count, d.sum_humidity_percent, d.humidity_count, d.sum_pressure_bar, d.pressure_count, d.sum_pressure_setpoint_bar, d.pressure_setpoint_count, d.sum_flow_rate_m3h, d.flow_rate_count, d.sum_cop, d.cop_count, d.sum_vibration_mm_s, d.vibration_count, d.min_outdoor_temp_c, d.max_outdoor_temp_c, d.max_machine_temp_c, d.min_pressure_bar, d.max_pressure_bar, d.max_vibration_mm_s
    FROM {deltas} d
    ORDER BY d.machine_id, d.bucket
    ON CONFLICT (machine_id, bucket) DO UPDATE SET
        reading_count = r.reading_count + excluded.reading_count,
        sum_outdoor_temp_c = rollup_add(r.sum_outdoor_temp_c, r.outdoor_temp_count, excluded.sum_outdoor_temp_c, excluded.outdoor_temp_count),
        outdoor_temp_count = r.outdoor_temp_count + excluded.outdoor_temp_count,
        sum_indoor_temp_c = rollup_add(r.sum_indoor_temp_c, r.indoor_temp_count, excluded.sum_indoor_temp_c, excluded.indoor_temp_count),
        indoor_temp_count = r.indoor_temp_count + excluded.indoor_temp_count,
        sum_machine_temp_c = rollup_add(r.sum_machine_temp_c, r.machine_temp_count, excluded.sum_machine_temp_c, excluded.machine_temp_count),
        machine_temp_count = r.machine_temp_count + excluded.machine_temp_count,
        sum_humidity_percent = rollup_add(r.sum_humidity_percent, r.humidity_count, excluded.sum_humidity_percent, excluded.humidity_count),
        humidity_count = r.humidity_count + excluded.humidity_count,
        sum_pressure_bar = rollup_add(r.sum_pressure_bar, r.pressure_count, excluded.sum_pressure_bar, excluded.pressure_count),
        pressure_count = r.pressure_count + excluded.pressure_count,
        sum_pressure_setpoint_bar = rollup_add(r.sum_pressure_setpoint_bar, r.pressure_setpoint_count, excluded.sum_pressure_setpoint_bar, excluded.pressure_setpoint_count),
        pressure_setpoint_count = r.pressure_setpoint_count + excluded.pressure_setpoint_count,
        sum_flow_rate_m3h = rollup_add(r.sum_flow_rate_m3h, r.flow_rate_count, excluded.sum_flow_rate_m3h, excluded.flow_rate_count),
        flow_rate_count = r.flow_rate_count + excluded.flow_rate_count,
        sum_cop = rollup_add(r.sum_cop, r.cop_count, excluded.sum_cop, excluded.cop_count),
        cop_count = r.cop_count + excluded.cop_count,
        sum_vibration_mm_s = rollup_add(r.sum_vibration_mm_s, r.vibration_count, excluded.sum_vibration_mm_s, excluded.vibration_count),
        vibration_count = r.vibration_count + excluded.vibration_count,
        min_outdoor_temp_c = least(r.min_outdoor_temp_c, excluded.min_outdoor_temp_c),
        max_outdoor_temp_c = greatest(r.max_outdoor_temp_c, excluded.max_outdoor_temp_c),
        max_machine_temp_c = greatest(r.max_machine_temp_c, excluded.max_machine_temp_c),
        min_pressure_bar = least(r.min_pressure_bar, excluded.min_pressure_bar),
        max_pressure_bar = greatest(r.max_pressure_bar, excluded.max_pressure_bar),
        max_vibration_mm_s = greatest(r.max_vibration_mm_s, excluded.max_vibration_mm_s);

    IF NOT {is_insert} THEN
        -- Minima and maxima of hours that lost readings, from the raw rows.
        UPDATE environmental_data_1hour r SET
            min_outdoor_temp_c = x.min_outdoor_temp_c,
            max_outdoor_temp_c = x.max_outdoor_temp_c,
            max_machine_temp_c = x.max_machine_temp_c,
            min_pressure_bar = x.min_pressure_bar,
            max_pressure_bar = x.max_pressure_bar,
            max_vibration_mm_s = x.max_vibration_mm_s
        FROM {deltas} rm CROSS JOIN LATERAL (
            SELECT min(e.outdoor_temp_c)::double precision AS min_outdoor_temp_c,
                   max(e.outdoor_temp_c)::double precision AS max_outdoor_temp_c,
                   max(e.machine_temp_c)::double precision AS max_machine_temp_c,
                   min(e.pressure_bar)::double precision AS min_pressure_bar,
                   max(e.pressure_bar)::double precision AS max_pressure_bar,
                   max(e.vibration_mm_s)::double precision AS max_vibration_mm_s
            FROM environmental_data e
            WHERE e.machine_id = rm.machine_id AND e.time >= rm.bucket AND e.time < rm.bucket + interval '1 hour') x
        WHERE rm.removed AND r.machine_id = rm.machine_id AND r.bucket = rm.bucket;
        DELETE FROM environmental_data_1hour r USING {deltas} rm
        WHERE rm.removed AND r.machine_id = rm.machine_id AND r.bucket = rm.bucket AND r.reading_count <= 0;
    END IF;
$apply$);

-- rollup_rebuild recomputes every rollup from the raw tables: used once below
-- for the data an adopted database already holds, and by an operator after
-- raw data was written with the triggers disabled (or by a replication
-- apply, which does not fire them), or after changing a machine's
-- data_interval_seconds: the triggers integrate energy and mode seconds with
-- the interval in force when a reading is written or removed, so a changed
-- interval is applied to history only by a rebuild.
CREATE FUNCTION rollup_rebuild() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM rollup_rebuild_energy_readings();
    PERFORM rollup_rebuild_production_data();
    PERFORM rollup_rebuild_environmental_data();
END
$$;

-- TRUNCATE has no transition table: it empties the table's rollups.
CREATE FUNCTION rollup_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    CASE TG_TABLE_NAME
    WHEN 'energy_readings' THEN
        DELETE FROM energy_readings_15min;
        DELETE FROM energy_readings_1hour;
    WHEN 'production_data' THEN
        DELETE FROM production_data_1hour;
    WHEN 'environmental_data' THEN
        DELETE FROM environmental_data_1hour;
    END CASE;
    RETURN NULL;
END
$$;

CREATE TRIGGER rollup_truncate AFTER TRUNCATE ON energy_readings FOR EACH STATEMENT EXECUTE FUNCTION rollup_truncate();
CREATE TRIGGER rollup_truncate AFTER TRUNCATE ON production_data FOR EACH STATEMENT EXECUTE FUNCTION rollup_truncate();
CREATE TRIGGER rollup_truncate AFTER TRUNCATE ON environmental_data FOR EACH STATEMENT EXECUTE FUNCTION rollup_truncate();

-- An adopted database keeps its readings: build their rollups now. Hour
-- state starts empty, so the first new reading of a machine closes all of its
-- earlier hours (the worker then sees the history, as after a replay).
SELECT rollup_rebuild();
