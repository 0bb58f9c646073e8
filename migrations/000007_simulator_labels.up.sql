-- Labels of the incidents the simulator injects (air leak, efficiency loss,
-- heater fault, bearing wear, sensor drift): the ground truth that anomaly
-- detection is scored against. Written by `enms-analytics simulate` and
-- `dev`; one row per incident, upserted, so a re-run does not duplicate.
CREATE TABLE simulator_labels (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    machine_id    uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    incident_type text NOT NULL CHECK (incident_type IN
                      ('air_leak', 'efficiency_loss', 'heater_fault', 'bearing_wear', 'sensor_drift')),
    start_time    timestamptz NOT NULL,
    end_time      timestamptz NOT NULL,
    magnitude     double precision NOT NULL CHECK (is_finite_number(magnitude)),
    description   text NOT NULL,
    seed          bigint NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (end_time > start_time),
    UNIQUE (machine_id, incident_type, start_time)
);

CREATE INDEX simulator_labels_window_idx ON simulator_labels (machine_id, start_time, end_time);

COMMENT ON TABLE simulator_labels IS
    'Incidents injected by the simulator (ground truth for scoring anomaly detection); [start_time, end_time) in UTC, magnitude is the fractional effect (0.15 = 15 %).';
