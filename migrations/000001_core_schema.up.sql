-- EnMS core schema, adopted rather than owned: every object is created only
-- when missing, so an existing EnMS database keeps its tables and data. What
-- this migration created itself is recorded in analytics_schema_objects, and
-- the down migration drops only that.

CREATE TABLE IF NOT EXISTS analytics_schema_objects (
    object_kind text NOT NULL,           -- 'type', 'table', 'index', 'constraint'
    object_name text NOT NULL,           -- for constraints: 'table.constraint'
    migration   integer NOT NULL,
    PRIMARY KEY (object_kind, object_name)
);


DO $$
BEGIN
    IF to_regtype('machine_type') IS NULL THEN
        CREATE TYPE machine_type AS ENUM ('compressor', 'hvac', 'motor', 'pump', 'injection_molding', 'conveyor', 'other');
        INSERT INTO analytics_schema_objects VALUES ('type', 'machine_type', 1);
    END IF;
    IF to_regtype('alert_level') IS NULL THEN
        CREATE TYPE alert_level AS ENUM ('normal', 'warning', 'critical');
        INSERT INTO analytics_schema_objects VALUES ('type', 'alert_level', 1);
    END IF;
    IF to_regtype('operating_mode') IS NULL THEN
        CREATE TYPE operating_mode AS ENUM ('idle', 'running', 'maintenance', 'fault', 'offline');
        INSERT INTO analytics_schema_objects VALUES ('type', 'operating_mode', 1);
    END IF;
END
$$;

-- note_table records a table this migration is about to create.
CREATE OR REPLACE FUNCTION pg_temp.note_table(name text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF to_regclass(name) IS NULL THEN
        INSERT INTO analytics_schema_objects VALUES ('table', name, 1) ON CONFLICT DO NOTHING;
    END IF;
END
$$;

SELECT pg_temp.note_table(t) FROM unnest(ARRAY[
    'factories', 'machines', 'energy_readings', 'production_data', 'environmental_data',
    'machine_status', 'energy_baselines', 'anomalies', 'energy_tariffs', 'carbon_factors']) AS t;

CREATE TABLE IF NOT EXISTS factories (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL UNIQUE,
    location    text,
    timezone    text NOT NULL DEFAULT 'UTC',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    metadata    jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE IF NOT EXISTS machines (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    factory_id            uuid NOT NULL REFERENCES factories (id) ON DELETE CASCADE,
    name                  text NOT NULL,
    type                  machine_type NOT NULL,
    rated_power_kw        double precision,
    data_interval_seconds integer NOT NULL DEFAULT 1,
    is_active             boolean NOT NULL DEFAULT true,
    is_critical           boolean NOT NULL DEFAULT false,
    manufacturer          text,
    model                 text,
    serial_number         text,
    installation_date     date,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    metadata              jsonb NOT NULL DEFAULT '{}',
    UNIQUE (factory_id, name)
);

CREATE TABLE IF NOT EXISTS energy_readings (
    time          timestamptz NOT NULL,
    machine_id    uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    power_kw      double precision NOT NULL,
    energy_kwh    double precision,
    voltage_v     double precision,
    current_a     double precision,
    power_factor  double precision,
    frequency_hz  double precision,
    is_estimated  boolean NOT NULL DEFAULT false,
    quality_score double precision,
    source        text,
    metadata      jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE IF NOT EXISTS production_data (
    time                      timestamptz NOT NULL,
    machine_id                uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    production_count          bigint,
    production_count_good     bigint,
    production_count_bad      bigint,
    throughput_units_per_hour double precision,
    operating_mode            operating_mode,
    speed_percent             double precision,
    downtime_seconds          double precision,
    metadata                  jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE IF NOT EXISTS environmental_data (
    time                     timestamptz NOT NULL,
    machine_id               uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    outdoor_temp_c           double precision,
    indoor_temp_c            double precision,
    machine_temp_c           double precision,
    outdoor_humidity_percent double precision,
    pressure_bar             double precision,
    pressure_setpoint_bar    double precision,
    flow_rate_m3h            double precision,
    cop                      double precision,
    vibration_mm_s           double precision,
    metadata                 jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE IF NOT EXISTS machine_status (
    machine_id              uuid PRIMARY KEY REFERENCES machines (id) ON DELETE CASCADE,
    is_running              boolean NOT NULL DEFAULT false,
    current_mode            operating_mode NOT NULL DEFAULT 'idle',
    current_power_kw        double precision,
    current_production_rate double precision,
    last_updated            timestamptz NOT NULL DEFAULT now(),
    last_fault_at           timestamptz,
    metadata                jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE IF NOT EXISTS energy_baselines (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    machine_id          uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    model_name          text NOT NULL,
    model_type          text NOT NULL DEFAULT 'linear_regression',
    model_version       integer NOT NULL,
    training_start_date timestamptz,
    training_end_date   timestamptz,
    training_samples    integer,
    coefficients        jsonb NOT NULL DEFAULT '{}',
    intercept           double precision,
    feature_names       text[] NOT NULL DEFAULT '{}',
    r_squared           double precision,
    rmse                double precision,
    mae                 double precision,
    is_active           boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT now(),
    trained_by          text,
    metadata            jsonb NOT NULL DEFAULT '{}',
    UNIQUE (machine_id, model_version)
);

CREATE TABLE IF NOT EXISTS anomalies (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    machine_id        uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    detected_at       timestamptz NOT NULL,
    anomaly_type      text NOT NULL,
    severity          alert_level NOT NULL,
    metric_name       text,
    metric_value      double precision,
    expected_value    double precision,
    deviation_percent double precision,
    deviation_std_dev double precision,
    detection_method  text,
    confidence_score  double precision,
    is_resolved       boolean NOT NULL DEFAULT false,
    resolved_at       timestamptz,
    resolution_notes  text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    metadata          jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE IF NOT EXISTS energy_tariffs (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    factory_id           uuid NOT NULL REFERENCES factories (id) ON DELETE CASCADE,
    name                 text NOT NULL,
    rate_per_kwh         double precision NOT NULL,
    currency             text NOT NULL DEFAULT 'USD',
    is_time_of_use       boolean NOT NULL DEFAULT false,
    start_hour           integer,
    end_hour             integer,
    applicable_days      integer[],
    demand_charge_per_kw double precision,
    valid_from           date,
    valid_to             date,
    is_active            boolean NOT NULL DEFAULT true,
    created_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS carbon_factors (
    id                             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    region                         text NOT NULL,
    emission_factor_kg_co2_per_kwh double precision NOT NULL,
    source                         text,
    valid_from                     date,
    valid_to                       date,
    is_active                      boolean NOT NULL DEFAULT true,
    created_at                     timestamptz NOT NULL DEFAULT now()
);

-- Indexes and constraints this service relies on, added to adopted tables
-- too. Check constraints are NOT VALID: new rows are checked, adopted rows are
-- left as they are.
CREATE OR REPLACE FUNCTION pg_temp.add_unique_index(idx text, tbl text, cols text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF to_regclass(idx) IS NULL THEN
        EXECUTE format('CREATE UNIQUE INDEX %I ON %I (%s)', idx, tbl, cols);
        INSERT INTO analytics_schema_objects VALUES ('index', idx, 1) ON CONFLICT DO NOTHING;
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION pg_temp.add_check(tbl text, con text, expr text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = tbl::regclass AND conname = con) THEN
        EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (%s) NOT VALID', tbl, con, expr);
        INSERT INTO analytics_schema_objects VALUES ('constraint', tbl || '.' || con, 1) ON CONFLICT DO NOTHING;
    END IF;
END
$$;

SELECT pg_temp.add_unique_index('energy_readings_machine_time_key', 'energy_readings', 'machine_id, time');
SELECT pg_temp.add_unique_index('production_data_machine_time_key', 'production_data', 'machine_id, time');
SELECT pg_temp.add_unique_index('environmental_data_machine_time_key', 'environmental_data', 'machine_id, time');

-- A finite number: not NaN, not ±Infinity (double precision admits all three).
CREATE OR REPLACE FUNCTION is_finite_number(v double precision) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN v IS NULL OR (v <> 'NaN'::float8 AND v <> 'Infinity'::float8 AND v <> '-Infinity'::float8);

SELECT pg_temp.add_check('energy_readings', 'energy_readings_power_kw_finite', 'is_finite_number(power_kw)');
SELECT pg_temp.add_check('energy_readings', 'energy_readings_energy_kwh_finite_nonnegative', 'is_finite_number(energy_kwh) AND (energy_kwh IS NULL OR energy_kwh >= 0)');
SELECT pg_temp.add_check('energy_readings', 'energy_readings_values_finite',
    'is_finite_number(voltage_v) AND is_finite_number(current_a) AND is_finite_number(power_factor) AND is_finite_number(frequency_hz) AND is_finite_number(quality_score)');
SELECT pg_temp.add_check('production_data', 'production_data_counts_nonnegative',
    '(production_count IS NULL OR production_count >= 0) AND (production_count_good IS NULL OR production_count_good >= 0) AND (production_count_bad IS NULL OR production_count_bad >= 0)');
SELECT pg_temp.add_check('production_data', 'production_data_values_finite',
    'is_finite_number(throughput_units_per_hour) AND is_finite_number(speed_percent) AND is_finite_number(downtime_seconds)');
SELECT pg_temp.add_check('environmental_data', 'environmental_data_values_finite',
    'is_finite_number(outdoor_temp_c) AND is_finite_number(indoor_temp_c) AND is_finite_number(machine_temp_c) AND is_finite_number(outdoor_humidity_percent) AND is_finite_number(pressure_bar) AND is_finite_number(pressure_setpoint_bar) AND is_finite_number(flow_rate_m3h) AND is_finite_number(cop) AND is_finite_number(vibration_mm_s)');
SELECT pg_temp.add_check('machines', 'machines_data_interval_positive', 'data_interval_seconds > 0');

CREATE INDEX IF NOT EXISTS machines_factory_idx ON machines (factory_id);
CREATE INDEX IF NOT EXISTS anomalies_machine_detected_idx ON anomalies (machine_id, detected_at DESC);
CREATE INDEX IF NOT EXISTS energy_baselines_machine_active_idx ON energy_baselines (machine_id) WHERE is_active;
