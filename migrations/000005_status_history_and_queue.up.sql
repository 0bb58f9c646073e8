-- Machine status history, the baseline training queue and the worker's
-- per-machine state (DESIGN §3.3, §3.4).

-- The worker's claim walks pending events in id order (store.ClaimEvents).
-- The predicate's "run_after IS NOT NULL" (always true: the column is NOT
-- NULL) keeps the claim's per-machine head lookup, which does not state it,
-- on analytics_events_pending_idx (machine_id, id) even before the table has
-- statistics; otherwise the planner may walk this index for every machine.
CREATE INDEX analytics_events_claim_idx ON analytics_events (id)
    WHERE done_at IS NULL AND parked_at IS NULL AND run_after IS NOT NULL;

-- machine_status_history: when each machine was in which state. Intervals
-- [valid_from, valid_to) of one machine are contiguous and never overlap;
-- valid_to IS NULL marks the interval still in force. Appended by the trigger
-- on machine_status below; the status AT a past time comes from here, never
-- from the current row.
CREATE TABLE machine_status_history (
    machine_id  uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    is_running  boolean NOT NULL,
    mode        operating_mode NOT NULL,
    valid_from  timestamptz NOT NULL,
    valid_to    timestamptz,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (machine_id, valid_from),
    CONSTRAINT machine_status_history_interval_check CHECK (valid_to IS NULL OR valid_to > valid_from)
);
-- At most one open interval per machine.
CREATE UNIQUE INDEX machine_status_history_open_key ON machine_status_history (machine_id) WHERE valid_to IS NULL;

-- analytics_record_status writes "machine M was (running, mode) from p_at on"
-- into the history and reports whether the history changed and the state it
-- replaced at p_at (NULLs when p_at precedes all history).
--
--  * p_at after every known change (the live case, and replays of history in
--    order): the open interval is closed at p_at and a new open one starts.
--  * p_at inside an older interval [a, b) (an out-of-order, late
--    observation): the interval is split into [a, p_at) with its old state
--    and [p_at, b) with the new one; the observation holds until the next
--    change already known. When p_at = a the interval's state is replaced.
--  * p_at before the first known change: [p_at, first) is inserted.
--  * the state at p_at already equals the new one: nothing changes.
-- Adjacent intervals may carry the same state after a correction; readers do
-- not depend on intervals being maximal. Writers of one machine are
-- serialised by a transaction-scoped advisory lock, so concurrent upserts
-- keep the intervals contiguous and non-overlapping.
CREATE FUNCTION analytics_record_status(
    p_machine uuid, p_running boolean, p_mode operating_mode, p_at timestamptz,
    OUT changed boolean, OUT old_running boolean, OUT old_mode operating_mode)
LANGUAGE plpgsql AS $$
DECLARE
    cur machine_status_history%ROWTYPE;
    first_from timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('machine_status_history'), hashtext(p_machine::text));
    changed := false;
    SELECT * INTO cur FROM machine_status_history
     WHERE machine_id = p_machine AND valid_from <= p_at
     ORDER BY valid_from DESC LIMIT 1;
    IF FOUND THEN
        old_running := cur.is_running;
        old_mode := cur.mode;
        IF cur.is_running = p_running AND cur.mode = p_mode THEN
            RETURN;
        END IF;
        IF cur.valid_from = p_at THEN
            UPDATE machine_status_history SET is_running = p_running, mode = p_mode, recorded_at = now()
             WHERE machine_id = p_machine AND valid_from = p_at;
        ELSE
            UPDATE machine_status_history SET valid_to = p_at
             WHERE machine_id = p_machine AND valid_from = cur.valid_from;
            INSERT INTO machine_status_history (machine_id, is_running, mode, valid_from, valid_to)
            VALUES (p_machine, p_running, p_mode, p_at, cur.valid_to);
        END IF;
    ELSE
        SELECT min(valid_from) INTO first_from FROM machine_status_history WHERE machine_id = p_machine;
        INSERT INTO machine_status_history (machine_id, is_running, mode, valid_from, valid_to)
        VALUES (p_machine, p_running, p_mode, p_at, first_from);
    END IF;
    changed := true;
END
$$;

-- The observation time of a machine_status row: last_updated when the writer
-- set it (a replay of history sets it to the past), else now(). An UPDATE
-- that leaves last_updated as it was is observed now.
CREATE FUNCTION analytics_machine_status_trg() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    at      timestamptz;
    running boolean := coalesce(NEW.is_running, false);
    mode    operating_mode := coalesce(NEW.current_mode, CASE WHEN coalesce(NEW.is_running, false) THEN 'running' ELSE 'idle' END::operating_mode);
    r       record;
BEGIN
    IF TG_OP = 'UPDATE'
       AND NEW.is_running IS NOT DISTINCT FROM OLD.is_running
       AND NEW.current_mode IS NOT DISTINCT FROM OLD.current_mode
       AND NOT coalesce(NEW.last_updated < OLD.last_updated, false) THEN
        RETURN NULL;  -- no change of state, and not a late observation
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.last_updated IS NOT DISTINCT FROM OLD.last_updated THEN
        at := now();
    ELSE
        at := coalesce(NEW.last_updated, now());
    END IF;
    SELECT * INTO r FROM analytics_record_status(NEW.machine_id, running, mode, at);
    IF r.changed THEN
        INSERT INTO analytics_events (kind, machine_id, payload)
        VALUES ('status_changed', NEW.machine_id, jsonb_build_object(
            'old_mode', r.old_mode, 'new_mode', mode,
            'old_running', r.old_running, 'new_running', running,
            'at', at));
        PERFORM pg_notify('machine_status_changed', NEW.machine_id::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER analytics_machine_status_history
    AFTER INSERT OR UPDATE ON machine_status
    FOR EACH ROW EXECUTE FUNCTION analytics_machine_status_trg();

-- machine_mode_at answers "mode of machine M at time T". A time not covered
-- by the history (no history at all, or before its first change) counts as
-- running: unknown is not maintenance (DESIGN §3.3).
CREATE FUNCTION machine_mode_at(p_machine uuid, p_at timestamptz) RETURNS operating_mode
LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT mode FROM machine_status_history
          WHERE machine_id = p_machine AND valid_from <= p_at
          ORDER BY valid_from DESC LIMIT 1),
        'running'::operating_mode)
$$;

-- machine_running_seconds answers "seconds running in hour H": the seconds of
-- [p_hour, p_hour + 1 h) in which the machine was running. Running means
-- is_running and a mode other than maintenance, fault or offline; time the
-- history does not cover counts as running.
CREATE FUNCTION machine_running_seconds(p_machine uuid, p_hour timestamptz) RETURNS double precision
LANGUAGE sql STABLE AS $$
    SELECT 3600 - coalesce(sum(extract(epoch FROM
               least(coalesce(valid_to, 'infinity'), p_hour + interval '1 hour') - greatest(valid_from, p_hour))), 0)::double precision
      FROM machine_status_history
     WHERE machine_id = p_machine
       AND valid_from < p_hour + interval '1 hour'
       AND (valid_to IS NULL OR valid_to > p_hour)
       AND NOT (is_running AND mode NOT IN ('maintenance', 'fault', 'offline'))
$$;

-- baseline_train_requests is the training queue SQL clients write to:
--   INSERT INTO baseline_train_requests (machine_id, drivers, training_start, training_end)
--   VALUES (…) RETURNING id;
-- then LISTEN baseline_train_done (payload: the id) or poll status
-- (pending → running → done | rejected | failed), error and baseline_id.
-- Nothing is refused by a constraint (not even an unknown machine): every
-- request ends with a status and, when it did not train, a sentence in error.
CREATE TABLE baseline_train_requests (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    machine_id     uuid,
    drivers        text[] NOT NULL DEFAULT '{}',
    training_start timestamptz,
    training_end   timestamptz,
    options        jsonb NOT NULL DEFAULT '{}',
    requested_by   text,
    status         text NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'running', 'done', 'failed', 'rejected')),
    error          text,
    baseline_id    uuid,
    attempts       integer NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz,
    finished_at    timestamptz,
    run_after      timestamptz NOT NULL DEFAULT now(),  -- retry backoff
    locked_until   timestamptz,                         -- the running worker's lease
    locked_by      text
);
CREATE INDEX baseline_train_requests_open_idx ON baseline_train_requests (created_at)
    WHERE status IN ('pending', 'running');
CREATE INDEX baseline_train_requests_machine_idx ON baseline_train_requests (machine_id, created_at);

CREATE FUNCTION analytics_train_requested_trg() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('baseline_train_requested', NEW.id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER analytics_train_requested
    AFTER INSERT ON baseline_train_requests
    FOR EACH ROW EXECUTE FUNCTION analytics_train_requested_trg();

-- analytics_machine_state: what the worker last saw of each machine, so the
-- pipeline is observable by SQL before any analytics exist.
CREATE TABLE analytics_machine_state (
    machine_id       uuid PRIMARY KEY REFERENCES machines (id) ON DELETE CASCADE,
    last_closed_hour timestamptz,
    last_status      operating_mode,
    last_running     boolean,
    last_status_at   timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
