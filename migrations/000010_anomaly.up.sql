-- Anomaly detection (DESIGN §5, issue 5): episodes on the adopted
-- `anomalies` table, and one scoring record per machine-hour.

-- An episode is one anomalies row: detected_at is its first hour, last_hour
-- its latest anomalous hour, hour_count how many anomalous hours it holds
-- (metadata mirrors both for clients that read only the EnMS columns). Rows
-- this service writes always have hour_count; rows of an adopted database
-- (the old service wrote duplicates) have NULL and are left alone, which is
-- why the unique key is partial.
ALTER TABLE anomalies ADD COLUMN last_hour timestamptz;
ALTER TABLE anomalies ADD COLUMN hour_count integer;
ALTER TABLE anomalies ADD CONSTRAINT anomalies_episode_hours_check
    CHECK (hour_count IS NULL OR (hour_count > 0 AND last_hour IS NOT NULL AND last_hour >= detected_at));
CREATE UNIQUE INDEX anomalies_episode_key ON anomalies (machine_id, anomaly_type, detected_at)
    WHERE hour_count IS NOT NULL;
-- /anomaly/recent and /anomaly/active read by time and by open state.
CREATE INDEX anomalies_detected_idx ON anomalies (detected_at DESC, id);
CREATE INDEX anomalies_unresolved_idx ON anomalies (machine_id, severity) WHERE NOT is_resolved;

-- anomaly_hours: how each closed machine-hour was judged, so that scoring is
-- observable by SQL (an unscored hour is not a normal hour) and can be
-- replayed: `state` is the detector state AFTER the hour (CUSUM sums, the
-- episodes open, the isolation forest in use), the starting point of a
-- re-score of the next hour. The feature columns are the hour's process
-- signals; hours with status normal or unscored (the hours the rolling model
-- learns from) form the robust rolling statistics and the forest's training
-- set.
CREATE TABLE anomaly_hours (
    machine_id     uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    bucket         timestamptz NOT NULL,
    status         text NOT NULL CHECK (status IN ('normal', 'anomalous', 'unscored', 'suppressed')),
    -- why an hour is unscored or suppressed: maintenance, fault, offline,
    -- warmup, min_history, no_prediction, no_energy
    reason         text,
    actual_kwh     double precision,
    expected_kwh   double precision,
    std_error      double precision,
    z              double precision,                -- (actual − expected) / std_error
    model_hours    integer,                         -- normal hours in the rolling model when scored
    model_version  text,
    types          text[] NOT NULL DEFAULT '{}',    -- anomaly types whose episodes hold this hour
    avg_power_kw        double precision,
    production_count    double precision,
    avg_machine_temp_c  double precision,
    max_machine_temp_c  double precision,
    avg_pressure_bar    double precision,
    pressure_dev_bar    double precision,           -- avg pressure − avg setpoint
    max_vibration_mm_s  double precision,
    signals        jsonb NOT NULL DEFAULT '{}',     -- per-detector z and p of the hour
    state          jsonb NOT NULL DEFAULT '{}',
    scored_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (machine_id, bucket),
    CHECK (is_finite_number(actual_kwh) AND is_finite_number(expected_kwh) AND is_finite_number(std_error) AND is_finite_number(z))
);
-- The rolling statistics read a machine's latest learning hours.
CREATE INDEX anomaly_hours_learning_idx ON anomaly_hours (machine_id, bucket DESC)
    WHERE status IN ('normal', 'unscored');

-- anomaly_machine_state: per machine, a generation bumped by every scoring
-- transaction, so a worker can tell whether the scoring records it cached
-- (the learning window) are still the ones in the table.
CREATE TABLE anomaly_machine_state (
    machine_id uuid PRIMARY KEY REFERENCES machines (id) ON DELETE CASCADE,
    generation bigint NOT NULL DEFAULT 0,
    last_hour  timestamptz,              -- latest hour scored
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- anomaly_hour_learnable answers "may the rolling model learn this
-- machine-hour?": false when anomaly scoring judged it anomalous or
-- suppressed it (maintenance, fault, offline, warm-up), true otherwise
-- (normal, unscored, or not scored yet). For the baseline's feature reads,
-- so that a rebuilt or revised model keeps anomalous hours out too.
CREATE FUNCTION anomaly_hour_learnable(p_machine uuid, p_hour timestamptz) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT NOT EXISTS (SELECT 1 FROM anomaly_hours
                        WHERE machine_id = p_machine AND bucket = p_hour AND status IN ('anomalous', 'suppressed'))
$$;
