-- Rolling baseline state (DESIGN §3.3, §5): per machine, the sufficient
-- statistics of the rolling regression and the exact observation each
-- included hour contributed, so the sliding window can remove an hour and a
-- revised hour can be replaced by exactly what was added. Persisted on every
-- refresh, so a restarted worker resumes with the same statistics.

CREATE TABLE baseline_rolling_state (
    machine_id        uuid PRIMARY KEY REFERENCES machines (id) ON DELETE CASCADE,
    -- the baseline whose drivers the model uses; NULL = default drivers chosen by coverage
    source_baseline   uuid,
    drivers           text[] NOT NULL,
    design            jsonb NOT NULL,          -- analytics.Design: drivers, columns, knots, base, time zone
    stats             jsonb NOT NULL,          -- analytics.Stats: n, means, centred co-moments
    window_hours      integer NOT NULL CHECK (window_hours > 0),
    last_hour         timestamptz,             -- the latest hour refreshed
    drivers_chosen_at timestamptz,             -- data time the drivers were last (re)chosen
    publish_checked_at timestamptz,            -- data time publication was last considered
    last_published_id uuid,                    -- the last version this model published
    refreshed_count   bigint NOT NULL DEFAULT 0,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE baseline_rolling_hours (
    machine_id uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    hour       timestamptz NOT NULL,
    x          double precision[] NOT NULL,    -- the design row as added
    y          double precision NOT NULL,      -- total_energy_kwh as added
    PRIMARY KEY (machine_id, hour)
);

-- Hours the caller kept out of the model (anomaly scoring's anomalous
-- hours), so that a rebuild from the rollups keeps them out too.
CREATE TABLE baseline_rolling_kept_out (
    machine_id uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    hour       timestamptz NOT NULL,
    PRIMARY KEY (machine_id, hour)
);
