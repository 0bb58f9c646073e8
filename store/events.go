package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/enms/enms-analytics/triggers"
)

// This file holds the SQL of the event pipeline: claiming and completing
// outbox events (analytics_events), the training queue
// (baseline_train_requests), the sweeper's hour closing, and the worker's
// per-machine state (analytics_machine_state).

// ErrSweepUnavailable is returned by CloseStaleHours when the database has no
// analytics_close_stale_hours function (the rollup migration that provides
// it is not applied).
var ErrSweepUnavailable = errors.New("analytics_close_stale_hours is not defined in this database")

// seconds converts d for make_interval(secs => …).
func seconds(d time.Duration) float64 { return d.Seconds() }

// claimEventsSQL leases up to $1 runs of events for owner $3 for $2
// seconds; a run is a machine's head with, when the run is allowed to grow,
// its followers. It returns the events of all runs, heads and followers
// alike, in no order; ClaimRuns groups them by machine.
//
// Heads: at most one per machine, the oldest pending event of each machine
// (its head), when that head is neither leased nor waiting for a retry,
// oldest heads first. A machine with an event in flight (or in backoff) is
// therefore never claimed again until that event is done or parked, which
// keeps each machine's events in order across any number of workers.
//
// The heads are found machine by machine: a loose scan of
// analytics_events_pending_idx (machine_id, id) steps from one machine with
// pending events to the next, and one probe per machine reads its head, so
// a claim costs about the number of machines with pending events, however
// deep their backlog. (Walking the pending events in id order and testing
// each for being its machine's head cost the whole backlog whenever the
// heads were leased: 55–90 ms a claim with 2,000 events pending during a
// backfill, seen with auto_explain.) FOR UPDATE SKIP LOCKED re-checks the
// lease on the newest row version, so two workers never claim the same
// event.
//
// Followers: a head of a run kind ($5) on its first try also takes the
// machine's next pending events, in id order, for as long as each is of the
// head's kind, has never been tried (attempts = 0: after a failure or a
// crash a machine's events go one at a time, so an innocent event is never
// charged an attempt for a poison one), is ready and not leased, and, for
// the hour kinds, is about a later hour than the event before it; at most $4
// of them (one probe of the same index per head, reading at most $4 rows, so
// the cost stays independent of the backlog's depth). They are leased like
// their head in the same statement. No other worker can take a follower: it
// is never its machine's head while its head is pending, and the head stays
// leased until the whole run is done.
//
// Order is the order of ids, which is commit order for events of one
// machine when its writers serialise (the rollup triggers lock the
// machine's hour state, the status trigger the machine's history).
const claimEventsSQL = `
WITH RECURSIVE machines_pending AS (
    (SELECT p.machine_id FROM analytics_events p
      WHERE p.done_at IS NULL AND p.parked_at IS NULL
      ORDER BY p.machine_id LIMIT 1)
    UNION ALL
    SELECT (SELECT p.machine_id FROM analytics_events p
             WHERE p.done_at IS NULL AND p.parked_at IS NULL AND p.machine_id > m.machine_id
             ORDER BY p.machine_id LIMIT 1)
      FROM machines_pending m
     WHERE m.machine_id IS NOT NULL
), heads AS (
    SELECT (SELECT p.id FROM analytics_events p
             WHERE p.machine_id = m.machine_id AND p.done_at IS NULL AND p.parked_at IS NULL
             ORDER BY p.machine_id, p.id LIMIT 1) AS id
      FROM machines_pending m
     WHERE m.machine_id IS NOT NULL
), ready AS (
    SELECT e.id FROM heads JOIN analytics_events e ON e.id = heads.id
     WHERE e.done_at IS NULL AND e.parked_at IS NULL AND e.run_after IS NOT NULL
       AND e.run_after <= now()
       AND (e.locked_until IS NULL OR e.locked_until < now())
     ORDER BY e.id
     LIMIT $1
     FOR UPDATE OF e SKIP LOCKED
), claimed AS (
    UPDATE analytics_events e
       SET locked_until = now() + make_interval(secs => $2),
           locked_by = $3,
           attempts = e.attempts + 1
      FROM ready
     WHERE e.id = ready.id
    RETURNING e.id, e.kind, e.machine_id, e.bucket, e.payload, e.created_at, e.attempts
), joining AS (
    SELECT c.id AS head_id, f.id,
           f.kind = c.kind AND f.attempts = 0 AND f.run_after <= now()
           AND (f.locked_until IS NULL OR f.locked_until < now())
           AND (c.kind NOT IN ('hour_closed', 'hour_revised')
                OR f.bucket > lag(f.bucket, 1, c.bucket) OVER (PARTITION BY c.id ORDER BY f.id)) AS joins
      FROM claimed c
     CROSS JOIN LATERAL (
        SELECT q.id, q.kind, q.bucket, q.attempts, q.run_after, q.locked_until FROM analytics_events q
         WHERE q.machine_id = c.machine_id AND (q.machine_id, q.id) > (c.machine_id, c.id)
           AND q.done_at IS NULL AND q.parked_at IS NULL
         ORDER BY q.machine_id, q.id
         LIMIT $4) f
     WHERE c.attempts = 1 AND c.kind = ANY($5::text[])
), followers AS (
    SELECT j.id FROM (
        SELECT id, bool_and(coalesce(joins, false)) OVER (PARTITION BY head_id ORDER BY id) AS contiguous
          FROM joining) j
     WHERE j.contiguous
), leased AS (
    UPDATE analytics_events e
       SET locked_until = now() + make_interval(secs => $2),
           locked_by = $3,
           attempts = e.attempts + 1
     WHERE e.id = ANY (ARRAY(SELECT id FROM followers)) AND e.attempts = 0
    RETURNING e.id, e.kind, e.machine_id, e.bucket, e.payload, e.created_at, e.attempts
)
SELECT c.id, c.kind, c.machine_id::text, c.bucket, c.payload, c.created_at, c.attempts FROM claimed c
UNION ALL
SELECT l.id, l.kind, l.machine_id::text, l.bucket, l.payload, l.created_at, l.attempts FROM leased l`

// ClaimEvents leases up to limit events for owner for the duration lease and
// returns them in id order, at most one per machine (see claimEventsSQL).
// Each claim counts as an attempt.
func (s *Store) ClaimEvents(ctx context.Context, owner string, limit int, lease time.Duration) ([]triggers.Event, error) {
	runs, err := s.ClaimRuns(ctx, owner, limit, 1, nil, lease)
	if err != nil {
		return nil, err
	}
	evs := make([]triggers.Event, len(runs))
	for i, run := range runs {
		evs[i] = run[0]
	}
	return evs, nil
}

// ClaimRuns leases up to limit runs for owner for the duration lease and
// returns them ordered by their first event, each in id order. A run holds
// one machine's head (its oldest pending event, see claimEventsSQL) and, when
// the head is of one of runKinds and on its first try, up to maxRun−1 of the
// machine's next events that are of the same kind, never tried, ready and
// (hour kinds) about strictly later hours, stopping at the first that is not.
// maxRun ≤ 1 or no runKinds claims one event per machine, as ClaimEvents.
// Every event claimed counts as an attempt.
func (s *Store) ClaimRuns(ctx context.Context, owner string, limit, maxRun int, runKinds []triggers.Kind, lease time.Duration) ([][]triggers.Event, error) {
	kinds := make([]string, len(runKinds))
	for i, k := range runKinds {
		kinds[i] = string(k)
	}
	rows, err := s.pool.Query(ctx, claimEventsSQL, limit, seconds(lease), owner, max(maxRun-1, 0), kinds)
	if err != nil {
		return nil, fmt.Errorf("claim events: %w", unavailable(err))
	}
	// A claim holds at most one run per machine: group by machine.
	var runs [][]triggers.Event
	byMachine := map[string]int{}
	for rows.Next() {
		var ev triggers.Event
		var kind string
		var bucket *time.Time
		var payload []byte
		if err := rows.Scan(&ev.ID, &kind, &ev.MachineID, &bucket, &payload, &ev.CreatedAt, &ev.Attempt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("claim events: %w", err)
		}
		ev.Kind = triggers.Kind(kind)
		if bucket != nil {
			ev.Bucket = *bucket
		}
		ev.Payload = json.RawMessage(payload)
		i, ok := byMachine[ev.MachineID]
		if !ok {
			i = len(runs)
			byMachine[ev.MachineID] = i
			runs = append(runs, nil)
		}
		runs[i] = append(runs[i], ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim events: %w", unavailable(err))
	}
	for _, run := range runs {
		sort.Slice(run, func(i, j int) bool { return run[i].ID < run[j].ID })
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i][0].ID < runs[j][0].ID })
	return runs, nil
}

// CompleteEvents marks events done and, in the same statement, brings
// analytics_machine_state up to date from them: the latest closed hour of
// each machine, and its status as of the latest status change. Only events
// still leased by owner are touched (a lease that expired and was taken over
// is left to its new holder, and its machine state with it). It returns the
// ids it marked done, in no particular order: those of evs that were still
// owner's.
func (s *Store) CompleteEvents(ctx context.Context, owner string, evs []triggers.Event) ([]int64, error) {
	ids := make([]int64, len(evs))
	for i, ev := range evs {
		ids[i] = ev.ID
	}
	st := machineStates(evs)
	rows, err := s.pool.Query(ctx, `
		WITH done AS (
			UPDATE analytics_events SET done_at = now(), locked_until = NULL
			 WHERE id = ANY($1) AND locked_by = $2 AND done_at IS NULL
			RETURNING id, machine_id
		), state AS (
			SELECT t.* FROM unnest($3::bigint[], $4::uuid[], $5::timestamptz[], $6::text[], $7::boolean[], $8::timestamptz[])
			       AS t (event_id, machine_id, hour, mode, running, at)
			 WHERE t.event_id IN (SELECT id FROM done)
		), latest AS (
			SELECT machine_id, max(hour) AS hour,
			       (array_agg(mode ORDER BY at DESC NULLS LAST))[1] AS mode,
			       (array_agg(running ORDER BY at DESC NULLS LAST))[1] AS running,
			       max(at) AS at
			  FROM state GROUP BY machine_id
		), upsert AS (
			INSERT INTO analytics_machine_state AS s (machine_id, last_closed_hour, last_status, last_running, last_status_at)
			SELECT machine_id, hour, mode::operating_mode, running, at FROM latest
			ON CONFLICT (machine_id) DO UPDATE SET
			       last_closed_hour = greatest(s.last_closed_hour, excluded.last_closed_hour),
			       last_status    = CASE WHEN excluded.last_status_at >= coalesce(s.last_status_at, '-infinity') THEN excluded.last_status ELSE s.last_status END,
			       last_running   = CASE WHEN excluded.last_status_at >= coalesce(s.last_status_at, '-infinity') THEN excluded.last_running ELSE s.last_running END,
			       last_status_at = greatest(s.last_status_at, excluded.last_status_at),
			       updated_at = now()
		)
		SELECT id FROM done`,
		ids, owner, st.eventIDs, st.machines, st.hours, st.modes, st.running, st.at)
	if err != nil {
		return nil, fmt.Errorf("complete events: %w", unavailable(err))
	}
	// The upsert runs to completion whether or not the SELECT reads it.
	done, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("complete events: %w", unavailable(err))
	}
	return done, nil
}

// stateColumns are the per-event machine-state facts, as parallel arrays.
type stateColumns struct {
	eventIDs []int64
	machines []string
	hours    []*time.Time
	modes    []*string
	running  []*bool
	at       []*time.Time
}

// machineStates extracts what each event says about its machine: a closed
// hour, or a new status. Events that say neither (hour_revised) are left out.
func machineStates(evs []triggers.Event) stateColumns {
	var c stateColumns
	for _, ev := range evs {
		var hour, at *time.Time
		var mode *string
		var running *bool
		switch ev.Kind {
		case triggers.KindHourClosed:
			h := ev.Bucket
			hour = &h
		case triggers.KindStatusChanged:
			sc, err := ev.StatusChange()
			if err != nil {
				continue
			}
			m, r, a := string(sc.NewMode), sc.NewRunning, sc.At
			mode, running, at = &m, &r, &a
		default:
			continue
		}
		c.eventIDs = append(c.eventIDs, ev.ID)
		c.machines = append(c.machines, ev.MachineID)
		c.hours = append(c.hours, hour)
		c.modes = append(c.modes, mode)
		c.running = append(c.running, running)
		c.at = append(c.at, at)
	}
	return c
}

// FailEvent records a failed attempt of an event leased by owner: the error
// is kept in last_error, and the event is retried after backoff or, when park
// is true, parked (never retried until someone clears parked_at).
func (s *Store) FailEvent(ctx context.Context, owner string, id int64, errText string, backoff time.Duration, park bool) error {
	_, err := s.pool.Exec(ctx, `
		UPDATE analytics_events
		   SET locked_until = NULL,
		       last_error = $3,
		       run_after = now() + make_interval(secs => $4),
		       parked_at = CASE WHEN $5 THEN now() END
		 WHERE id = $1 AND locked_by = $2 AND done_at IS NULL`, id, owner, errText, seconds(backoff), park)
	if err != nil {
		return fmt.Errorf("record failed event %d: %w", id, unavailable(err))
	}
	return nil
}

// ReleaseEvents gives back leased events that were not handled (shutdown):
// the lease is cleared and the claim does not count as an attempt.
func (s *Store) ReleaseEvents(ctx context.Context, owner string, ids []int64) error {
	_, err := s.pool.Exec(ctx, `
		UPDATE analytics_events
		   SET locked_until = NULL, locked_by = NULL, attempts = greatest(attempts - 1, 0)
		 WHERE id = ANY($1) AND locked_by = $2 AND done_at IS NULL`, ids, owner)
	if err != nil {
		return fmt.Errorf("release events: %w", unavailable(err))
	}
	return nil
}

// RenewLeases extends every lease owner holds, on events and on training
// requests, to lease from now.
func (s *Store) RenewLeases(ctx context.Context, owner string, lease time.Duration) error {
	_, err := s.pool.Exec(ctx, `
		UPDATE analytics_events SET locked_until = now() + make_interval(secs => $2)
		 WHERE locked_by = $1 AND locked_until IS NOT NULL AND done_at IS NULL AND parked_at IS NULL`, owner, seconds(lease))
	if err != nil {
		return fmt.Errorf("renew event leases: %w", unavailable(err))
	}
	// A request being trained is row-locked by the trainer's transaction,
	// which already keeps every other worker off it (their claims skip
	// locked rows): skip it rather than wait for the training to end.
	_, err = s.pool.Exec(ctx, `
		UPDATE baseline_train_requests SET locked_until = now() + make_interval(secs => $2)
		 WHERE id IN (SELECT id FROM baseline_train_requests
		               WHERE locked_by = $1 AND status = 'running'
		               FOR UPDATE SKIP LOCKED)`, owner, seconds(lease))
	if err != nil {
		return fmt.Errorf("renew training leases: %w", unavailable(err))
	}
	return nil
}

// EventBacklog is the state of the outbox.
type EventBacklog struct {
	Pending       int64   // events not yet done nor parked
	Parked        int64   // events that gave up after the attempt limit
	OldestPending float64 // age in seconds of the oldest pending event (0 when none)
}

// EventBacklog counts pending and parked events and the age of the oldest
// pending one, by the database clock.
func (s *Store) EventBacklog(ctx context.Context) (EventBacklog, error) {
	var b EventBacklog
	err := s.pool.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE parked_at IS NULL),
		       count(*) FILTER (WHERE parked_at IS NOT NULL),
		       coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE parked_at IS NULL)), 0)::double precision
		  FROM analytics_events WHERE done_at IS NULL`).Scan(&b.Pending, &b.Parked, &b.OldestPending)
	if err != nil {
		return b, fmt.Errorf("query event backlog: %w", unavailable(err))
	}
	return b, nil
}

// ParkedEvent is an event the worker gave up on, with its last error.
type ParkedEvent struct {
	ID        int64
	Kind      triggers.Kind
	MachineID string
	// MachineName is the machine's name; empty if the machine row is gone.
	MachineName string
	Bucket      *time.Time
	Attempts    int
	LastError   string
	CreatedAt   time.Time
	ParkedAt    time.Time
}

// ParkedEvents lists up to limit parked events, newest first, with their
// machine's name. An operator retries one with RetryParkedEvent.
func (s *Store) ParkedEvents(ctx context.Context, limit int) ([]ParkedEvent, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT e.id, e.kind, e.machine_id::text, coalesce(m.name, ''), e.bucket, e.attempts,
		       coalesce(e.last_error, ''), e.created_at, e.parked_at
		  FROM analytics_events e
		  LEFT JOIN machines m ON m.id = e.machine_id
		 WHERE e.parked_at IS NOT NULL AND e.done_at IS NULL
		 ORDER BY e.parked_at DESC, e.id DESC
		 LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("list parked events: %w", unavailable(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ParkedEvent, error) {
		var p ParkedEvent
		var kind string
		err := r.Scan(&p.ID, &kind, &p.MachineID, &p.MachineName, &p.Bucket, &p.Attempts, &p.LastError, &p.CreatedAt, &p.ParkedAt)
		p.Kind = triggers.Kind(kind)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("list parked events: %w", unavailable(err))
	}
	return out, nil
}

// ErrNotParked is wrapped by RetryParkedEvent's error when the event exists
// but is not parked: it is done, or still pending for the worker.
var ErrNotParked = errors.New("event is not parked")

// RetryParkedEvent un-parks the parked event id so the worker retries it at
// once: the attempt count starts again from zero, any lease is cleared, and
// last_error is kept so the operator still sees why it failed until the
// retry succeeds or fails anew. The worker is woken through the channel the
// event's trigger notifies (payload: the machine id), delivered on commit.
//
// It returns an error wrapping ErrNotFound for an unknown id, ErrNotParked
// for an event that is done or pending, and ErrConflict when an identical
// hour_closed event for the same machine-hour is already pending (at most
// one may be; that one will do the work).
func (s *Store) RetryParkedEvent(ctx context.Context, id int64) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var kind, machineID string
		var parked, done bool
		err := tx.QueryRow(ctx, `
			SELECT kind, machine_id::text, parked_at IS NOT NULL, done_at IS NOT NULL
			  FROM analytics_events WHERE id = $1 FOR UPDATE`, id).Scan(&kind, &machineID, &parked, &done)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("event %d: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		switch {
		case done:
			return fmt.Errorf("event %d is done: %w", id, ErrNotParked)
		case !parked:
			return fmt.Errorf("event %d is pending: %w", id, ErrNotParked)
		}
		_, err = tx.Exec(ctx, `
			UPDATE analytics_events
			   SET parked_at = NULL, attempts = 0, run_after = now(),
			       locked_until = NULL, locked_by = NULL
			 WHERE id = $1`, id)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation: analytics_events_pending_hour_key
			return fmt.Errorf("event %d: a pending %s event for the same machine-hour already exists: %w", id, kind, ErrConflict)
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2)`, string(wakeChannel(triggers.Kind(kind))), machineID)
		return err
	})
	if err != nil {
		return fmt.Errorf("retry parked event: %w", unavailable(err))
	}
	return nil
}

// wakeChannel is the channel the outbox trigger notifies for an event of
// kind, and so one the worker listens on.
func wakeChannel(kind triggers.Kind) triggers.Channel {
	if kind == triggers.KindStatusChanged {
		return triggers.ChannelStatusChanged
	}
	return triggers.ChannelHourClosed
}

// PruneEvents deletes events done more than retention ago, in batches, and
// returns how many it deleted. Parked events are kept.
func (s *Store) PruneEvents(ctx context.Context, retention time.Duration) (int64, error) {
	var total int64
	for {
		tag, err := s.pool.Exec(ctx, `
			DELETE FROM analytics_events WHERE id IN (
				SELECT id FROM analytics_events
				 WHERE done_at < now() - make_interval(secs => $1)
				 LIMIT 5000)`, seconds(retention))
		if err != nil {
			return total, fmt.Errorf("prune events: %w", unavailable(err))
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < 5000 {
			return total, nil
		}
	}
}

// CloseStaleHours closes every open machine-hour that has had no newer data
// for grace after its end (analytics_close_stale_hours) and returns how many
// it closed. It returns ErrSweepUnavailable when the function does not exist.
func (s *Store) CloseStaleHours(ctx context.Context, grace time.Duration) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT analytics_close_stale_hours(make_interval(secs => $1))`, seconds(grace)).Scan(&n)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42883" { // undefined_function
		return 0, ErrSweepUnavailable
	}
	if err != nil {
		return 0, fmt.Errorf("close stale hours: %w", unavailable(err))
	}
	return n, nil
}

// TrainStatus is the status of a training request.
type TrainStatus string

// The statuses of baseline_train_requests.status.
const (
	TrainPending  TrainStatus = "pending"
	TrainRunning  TrainStatus = "running"
	TrainDone     TrainStatus = "done"     // a valid baseline was published (baseline_id)
	TrainRejected TrainStatus = "rejected" // trained, but failed validity; stored inactive (error lists why)
	TrainFailed   TrainStatus = "failed"   // could not train (error says why)
)

// Final reports whether the status ends a request.
func (s TrainStatus) Final() bool {
	return s == TrainDone || s == TrainRejected || s == TrainFailed
}

// TrainRequest is one row of baseline_train_requests, as the trainer sees it.
type TrainRequest struct {
	ID            string
	MachineID     string // empty when the request names no machine
	Drivers       []string
	TrainingStart *time.Time
	TrainingEnd   *time.Time
	Options       json.RawMessage
	RequestedBy   string
	Attempts      int // 1 on the first try
	CreatedAt     time.Time
}

const trainRequestColumns = `id::text, coalesce(machine_id::text, ''), drivers, training_start, training_end,
	options, coalesce(requested_by, ''), attempts, created_at`

func scanTrainRequest(r pgx.CollectableRow) (TrainRequest, error) {
	var q TrainRequest
	var opts []byte
	err := r.Scan(&q.ID, &q.MachineID, &q.Drivers, &q.TrainingStart, &q.TrainingEnd, &opts, &q.RequestedBy, &q.Attempts, &q.CreatedAt)
	q.Options = json.RawMessage(opts)
	return q, err
}

// ClaimTrainRequests moves up to limit requests from pending (or running
// with an expired lease: their worker died) to running, leased by owner, in
// the order they were made.
func (s *Store) ClaimTrainRequests(ctx context.Context, owner string, limit int, lease time.Duration) ([]TrainRequest, error) {
	rows, err := s.pool.Query(ctx, `
		UPDATE baseline_train_requests r
		   SET status = 'running', started_at = now(), attempts = r.attempts + 1,
		       locked_until = now() + make_interval(secs => $2), locked_by = $3
		 WHERE r.id IN (
			SELECT id FROM baseline_train_requests
			 WHERE (status = 'pending' AND run_after <= now())
			    OR (status = 'running' AND locked_until < now())
			 ORDER BY created_at, id
			 LIMIT $1
			 FOR UPDATE SKIP LOCKED)
		RETURNING `+trainRequestColumns, limit, seconds(lease), owner)
	if err != nil {
		return nil, fmt.Errorf("claim training requests: %w", unavailable(err))
	}
	reqs, err := pgx.CollectRows(rows, scanTrainRequest)
	if err != nil {
		return nil, fmt.Errorf("claim training requests: %w", unavailable(err))
	}
	sort.Slice(reqs, func(i, j int) bool { return reqs[i].CreatedAt.Before(reqs[j].CreatedAt) })
	return reqs, nil
}

// LockTrainRequest locks a request claimed by owner inside tx and reports
// whether owner still holds it (false when its lease expired and another
// worker took it over).
func LockTrainRequest(ctx context.Context, tx pgx.Tx, owner, id string) (bool, error) {
	var one int
	err := tx.QueryRow(ctx, `
		SELECT 1 FROM baseline_train_requests
		 WHERE id = $1 AND locked_by = $2 AND status = 'running'
		 FOR UPDATE`, id, owner).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("lock training request %s: %w", id, unavailable(err))
	}
	return true, nil
}

// FinishTrainRequest records the final status of a request inside tx and
// notifies baseline_train_done with its id (delivered when tx commits).
// errText and baselineID may be empty.
func FinishTrainRequest(ctx context.Context, tx pgx.Tx, id string, status TrainStatus, errText, baselineID string) error {
	if !status.Final() {
		return fmt.Errorf("finish training request %s: %q is not a final status", id, status)
	}
	_, err := tx.Exec(ctx, `
		UPDATE baseline_train_requests
		   SET status = $2, error = nullif($3, ''), baseline_id = nullif($4, '')::uuid,
		       finished_at = now(), locked_until = NULL
		 WHERE id = $1`, id, string(status), errText, baselineID)
	if err != nil {
		return fmt.Errorf("finish training request %s: %w", id, unavailable(err))
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, string(triggers.ChannelTrainDone), id); err != nil {
		return fmt.Errorf("notify training request %s done: %w", id, unavailable(err))
	}
	return nil
}

// FinishTrainRequestNow is FinishTrainRequest in a transaction of its own,
// for a request still leased by owner. It reports whether owner held it.
func (s *Store) FinishTrainRequestNow(ctx context.Context, owner, id string, status TrainStatus, errText string) (bool, error) {
	var held bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		if held, err = LockTrainRequest(ctx, tx, owner, id); err != nil || !held {
			return err
		}
		return FinishTrainRequest(ctx, tx, id, status, errText, "")
	})
	return held, err
}

// RetryTrainRequest puts a request leased by owner back to pending after a
// transient failure: it runs again after backoff, and error keeps the
// failure until then.
func (s *Store) RetryTrainRequest(ctx context.Context, owner, id, errText string, backoff time.Duration) error {
	_, err := s.pool.Exec(ctx, `
		UPDATE baseline_train_requests
		   SET status = 'pending', error = $3, run_after = now() + make_interval(secs => $4),
		       locked_until = NULL, locked_by = NULL
		 WHERE id = $1 AND locked_by = $2 AND status = 'running'`, id, owner, errText, seconds(backoff))
	if err != nil {
		return fmt.Errorf("retry training request %s: %w", id, unavailable(err))
	}
	return nil
}

// ReleaseTrainRequests puts requests leased by owner and not started back to
// pending (shutdown); the claim does not count as an attempt.
func (s *Store) ReleaseTrainRequests(ctx context.Context, owner string, ids []string) error {
	_, err := s.pool.Exec(ctx, `
		UPDATE baseline_train_requests
		   SET status = 'pending', started_at = NULL, attempts = greatest(attempts - 1, 0),
		       locked_until = NULL, locked_by = NULL
		 WHERE id = ANY($1::uuid[]) AND locked_by = $2 AND status = 'running'`, ids, owner)
	if err != nil {
		return fmt.Errorf("release training requests: %w", unavailable(err))
	}
	return nil
}

// PendingTrainRequests counts requests waiting to be trained.
func (s *Store) PendingTrainRequests(ctx context.Context) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM baseline_train_requests WHERE status IN ('pending', 'running')`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count training requests: %w", unavailable(err))
	}
	return n, nil
}
