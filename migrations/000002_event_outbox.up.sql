-- The durable outbox the worker is driven by. Triggers insert one row per
-- event; pg_notify on hourly_aggregate_closed / machine_status_changed is only
-- a wake-up. The table is the truth.
CREATE TABLE analytics_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('hour_closed', 'hour_revised', 'status_changed')),
    machine_id   uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    bucket       timestamptz,               -- the hour, for hour_closed / hour_revised
    payload      jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    attempts     integer NOT NULL DEFAULT 0,
    locked_until timestamptz,               -- a worker's claim; NULL = unclaimed
    locked_by    text,
    run_after    timestamptz NOT NULL DEFAULT now(),  -- retry backoff
    done_at      timestamptz,
    parked_at    timestamptz,               -- gave up after the attempt limit
    last_error   text
);

-- Pending work, in per-machine order.
CREATE INDEX analytics_events_pending_idx ON analytics_events (machine_id, id) WHERE done_at IS NULL AND parked_at IS NULL;
CREATE INDEX analytics_events_done_idx ON analytics_events (done_at) WHERE done_at IS NOT NULL;
-- At most one pending hour_closed per machine-hour. hour_revised is not in
-- it: the trigger skips a revision only while an identical one waits
-- unclaimed (analytics_note_hours, under the machine's lock), so a revision
-- being processed never swallows a newer one, and a worker releasing a claim
-- can never collide with a newer revision.
CREATE UNIQUE INDEX analytics_events_pending_hour_key ON analytics_events (kind, machine_id, bucket)
    WHERE done_at IS NULL AND parked_at IS NULL AND kind = 'hour_closed';
