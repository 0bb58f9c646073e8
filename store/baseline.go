package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/enms/enms-analytics/triggers"
)

// This file holds the SQL of energy baselines: publishing versions into
// energy_baselines (in the same transaction that finishes a training
// request), reading them back, the training queue as the API sees it, and
// the rolling model's persisted state (migration 000006).

// NewBaseline is a fitted baseline about to be published.
type NewBaseline struct {
	MachineID     string
	ModelName     string
	ModelType     string
	TrainingStart time.Time
	TrainingEnd   time.Time
	Samples       int
	Coefficients  map[string]float64
	Intercept     float64
	FeatureNames  []string
	RSquared      float64 // NaN is stored as NULL
	RMSE          float64
	MAE           float64
	// Activate makes the new version the machine's active baseline and
	// deactivates the previous one; false stores it inactive.
	Activate  bool
	TrainedBy string
	Metadata  json.RawMessage
}

// Published identifies a stored baseline version.
type Published struct {
	ID      string
	Version int
}

// PublishBaseline stores b as the machine's next version (max + 1) in a
// transaction of its own. beforeCommit, when not nil, runs inside the
// transaction once the id and version are known (the model file is written
// there); its error rolls the publication back.
func (s *Store) PublishBaseline(ctx context.Context, b NewBaseline, beforeCommit func(Published) error) (Published, error) {
	var pub Published
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		if pub, err = PublishBaselineTx(ctx, tx, b); err != nil {
			return err
		}
		if beforeCommit != nil {
			return beforeCommit(pub)
		}
		return nil
	})
	if err != nil {
		return Published{}, err
	}
	return pub, nil
}

// PublishBaselineTx stores b as the machine's next version (max + 1) inside
// tx: the transaction in which the training request's outcome is recorded,
// so the baseline and the request's final status commit together. When
// b.Activate, the machine's previous active version is deactivated.
// Versions of one machine are allocated under a transaction-scoped lock.
func PublishBaselineTx(ctx context.Context, tx pgx.Tx, b NewBaseline) (Published, error) {
	var pub Published
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('energy_baselines'), hashtext($1::text))`,
		b.MachineID); err != nil {
		return pub, fmt.Errorf("lock baseline versions: %w", unavailable(err))
	}
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(model_version), 0) + 1 FROM energy_baselines WHERE machine_id = $1`,
		b.MachineID).Scan(&pub.Version); err != nil {
		return pub, fmt.Errorf("next baseline version: %w", unavailable(err))
	}
	if b.Activate {
		if _, err := tx.Exec(ctx, `UPDATE energy_baselines SET is_active = false WHERE machine_id = $1 AND is_active`,
			b.MachineID); err != nil {
			return pub, fmt.Errorf("deactivate previous baseline: %w", unavailable(err))
		}
	}
	coef, err := json.Marshal(b.Coefficients)
	if err != nil {
		return pub, fmt.Errorf("encode coefficients: %w", err)
	}
	meta := b.Metadata
	if meta == nil {
		meta = json.RawMessage(`{}`)
	}
	err = tx.QueryRow(ctx, `
		INSERT INTO energy_baselines (machine_id, model_name, model_type, model_version,
			training_start_date, training_end_date, training_samples, coefficients, intercept,
			feature_names, r_squared, rmse, mae, is_active, trained_by, metadata)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
		RETURNING id::text`,
		b.MachineID, b.ModelName, b.ModelType, pub.Version, b.TrainingStart, b.TrainingEnd, b.Samples,
		coef, finiteOrNil(b.Intercept), b.FeatureNames, finiteOrNil(b.RSquared), finiteOrNil(b.RMSE),
		finiteOrNil(b.MAE), b.Activate, b.TrainedBy, meta).Scan(&pub.ID)
	if err != nil {
		return pub, fmt.Errorf("insert baseline: %w", unavailable(err))
	}
	return pub, nil
}

func finiteOrNil(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// Baseline is a row of energy_baselines.
type Baseline struct {
	ID            string             `json:"id"`
	MachineID     string             `json:"machine_id"`
	ModelName     string             `json:"model_name"`
	ModelType     string             `json:"model_type"`
	ModelVersion  int                `json:"model_version"`
	TrainingStart *time.Time         `json:"training_start_date"`
	TrainingEnd   *time.Time         `json:"training_end_date"`
	Samples       *int               `json:"training_samples"`
	Coefficients  map[string]float64 `json:"coefficients"`
	Intercept     *float64           `json:"intercept"`
	FeatureNames  []string           `json:"feature_names"`
	RSquared      *float64           `json:"r_squared"`
	RMSE          *float64           `json:"rmse"`
	MAE           *float64           `json:"mae"`
	IsActive      bool               `json:"is_active"`
	CreatedAt     time.Time          `json:"created_at"`
	TrainedBy     *string            `json:"trained_by"`
	Metadata      json.RawMessage    `json:"metadata"`
}

const baselineColumns = `id::text, machine_id::text, model_name, model_type, model_version, training_start_date,
	training_end_date, training_samples, coefficients, intercept, feature_names, r_squared, rmse, mae,
	is_active, created_at, trained_by, metadata`

func scanBaseline(r pgx.Row) (Baseline, error) {
	var b Baseline
	var coef, meta []byte
	err := r.Scan(&b.ID, &b.MachineID, &b.ModelName, &b.ModelType, &b.ModelVersion, &b.TrainingStart,
		&b.TrainingEnd, &b.Samples, &coef, &b.Intercept, &b.FeatureNames, &b.RSquared, &b.RMSE, &b.MAE,
		&b.IsActive, &b.CreatedAt, &b.TrainedBy, &meta)
	if err != nil {
		return b, err
	}
	b.Metadata = json.RawMessage(meta)
	// adopted rows may hold non-numeric values; keep what decodes as numbers
	b.Coefficients = map[string]float64{}
	var raw map[string]any
	if json.Unmarshal(coef, &raw) == nil {
		for k, v := range raw {
			if f, ok := v.(float64); ok {
				b.Coefficients[k] = f
			}
		}
	}
	return b, nil
}

// Baseline returns one baseline; an unknown id wraps ErrNotFound.
func (s *Store) Baseline(ctx context.Context, id string) (Baseline, error) {
	b, err := scanBaseline(s.pool.QueryRow(ctx, `SELECT `+baselineColumns+` FROM energy_baselines WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return b, fmt.Errorf("baseline %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return b, fmt.Errorf("get baseline %s: %w", id, unavailable(err))
	}
	return b, nil
}

// ActiveBaseline returns the machine's active baseline (the newest active
// version); none wraps ErrNotFound.
func (s *Store) ActiveBaseline(ctx context.Context, machineID string) (Baseline, error) {
	return activeBaseline(ctx, s.pool, machineID)
}

const activeBaselineSQL = `SELECT ` + baselineColumns + ` FROM energy_baselines
	WHERE machine_id = $1 AND is_active ORDER BY model_version DESC LIMIT 1`

func activeBaseline(ctx context.Context, q queryer, machineID string) (Baseline, error) {
	return scanActiveBaseline(q.QueryRow(ctx, activeBaselineSQL, machineID), machineID)
}

func scanActiveBaseline(row pgx.Row, machineID string) (Baseline, error) {
	b, err := scanBaseline(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return b, fmt.Errorf("active baseline of machine %s: %w", machineID, ErrNotFound)
	}
	if err != nil {
		return b, fmt.Errorf("get active baseline of machine %s: %w", machineID, unavailable(err))
	}
	return b, nil
}

// BaselineFilter selects baselines; zero fields do not filter.
type BaselineFilter struct {
	MachineID  string
	ActiveOnly bool
	Limit      int // 0 = 100
}

// ListBaselines returns baselines newest version first, without metadata
// (the fit report is read per model).
func (s *Store) ListBaselines(ctx context.Context, f BaselineFilter) ([]Baseline, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT `+baselineColumns+` FROM energy_baselines
		WHERE ($1 = '' OR machine_id::text = $1) AND (NOT $2 OR is_active)
		ORDER BY machine_id, model_version DESC LIMIT $3`, f.MachineID, f.ActiveOnly, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list baselines: %w", unavailable(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Baseline, error) {
		b, err := scanBaseline(r)
		b.Metadata = nil
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("list baselines: %w", unavailable(err))
	}
	return out, nil
}

// TrainRequestRow is a training request as the API reports it.
type TrainRequestRow struct {
	ID            string          `json:"id"`
	MachineID     *string         `json:"machine_id"`
	Drivers       []string        `json:"drivers"`
	TrainingStart *time.Time      `json:"training_start"`
	TrainingEnd   *time.Time      `json:"training_end"`
	Options       json.RawMessage `json:"options"`
	RequestedBy   *string         `json:"requested_by"`
	Status        TrainStatus     `json:"status"`
	Error         *string         `json:"error"`
	BaselineID    *string         `json:"baseline_id"`
	Attempts      int             `json:"attempts"`
	CreatedAt     time.Time       `json:"created_at"`
	StartedAt     *time.Time      `json:"started_at"`
	FinishedAt    *time.Time      `json:"finished_at"`
}

// NewTrainRequest is what InsertTrainRequest writes.
type NewTrainRequest struct {
	MachineID     string
	Drivers       []string
	TrainingStart time.Time
	TrainingEnd   time.Time
	RequestedBy   string
	Options       json.RawMessage
}

// InsertTrainRequest queues a training request (its insert trigger wakes the
// worker) and returns its id.
func (s *Store) InsertTrainRequest(ctx context.Context, r NewTrainRequest) (string, error) {
	opts := r.Options
	if opts == nil {
		opts = json.RawMessage(`{}`)
	}
	var id string
	err := s.pool.QueryRow(ctx, `
		INSERT INTO baseline_train_requests (machine_id, drivers, training_start, training_end, requested_by, options)
		VALUES ($1, $2, $3, $4, nullif($5, ''), $6) RETURNING id::text`,
		r.MachineID, r.Drivers, r.TrainingStart, r.TrainingEnd, r.RequestedBy, opts).Scan(&id)
	if err != nil {
		return "", fmt.Errorf("insert training request: %w", unavailable(err))
	}
	return id, nil
}

// TrainRequest returns one training request; an unknown id wraps ErrNotFound.
func (s *Store) TrainRequest(ctx context.Context, id string) (TrainRequestRow, error) {
	return trainRequest(ctx, s.pool, id)
}

func trainRequest(ctx context.Context, q queryer, id string) (TrainRequestRow, error) {
	var r TrainRequestRow
	var opts []byte
	var status string
	err := q.QueryRow(ctx, `
		SELECT id::text, machine_id::text, drivers, training_start, training_end, options, requested_by,
		       status, error, baseline_id::text, attempts, created_at, started_at, finished_at
		  FROM baseline_train_requests WHERE id = $1`, id).Scan(&r.ID, &r.MachineID, &r.Drivers, &r.TrainingStart,
		&r.TrainingEnd, &opts, &r.RequestedBy, &status, &r.Error, &r.BaselineID, &r.Attempts, &r.CreatedAt,
		&r.StartedAt, &r.FinishedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("training request %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("get training request %s: %w", id, unavailable(err))
	}
	r.Options = json.RawMessage(opts)
	r.Status = TrainStatus(status)
	return r, nil
}

// WaitTrainRequest waits until the request reaches a final status or ctx
// ends, and returns the request as last seen (with ctx's error when it
// ended first). It LISTENs on baseline_train_done before it first reads the
// row, so a notification between the read and the wait is not missed.
func (s *Store) WaitTrainRequest(ctx context.Context, id string) (TrainRequestRow, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return TrainRequestRow{}, fmt.Errorf("wait for training request: %w", unavailable(err))
	}
	// LISTEN state must not leak back into the pool
	defer func() {
		conn.Conn().Close(context.Background())
		conn.Release()
	}()
	if _, err := conn.Exec(ctx, `LISTEN `+string(triggers.ChannelTrainDone)); err != nil {
		return TrainRequestRow{}, fmt.Errorf("listen for training results: %w", unavailable(err))
	}
	for {
		r, err := trainRequest(ctx, conn, id)
		if err != nil || r.Status.Final() {
			return r, err
		}
		for {
			n, err := conn.Conn().WaitForNotification(ctx)
			if err != nil {
				return r, fmt.Errorf("wait for training request %s: %w", id, err)
			}
			if n.Payload == id {
				break
			}
		}
	}
}

// RollingState is the persisted state of a machine's rolling model.
type RollingState struct {
	MachineID       string
	SourceBaseline  *string // active baseline whose drivers are used; nil = default drivers
	Drivers         []string
	Design          json.RawMessage
	Stats           json.RawMessage
	WindowHours     int
	LastHour        *time.Time
	DriversChosenAt *time.Time // data time the drivers were last chosen
	PublishChecked  *time.Time // data time publication was last considered
	LastPublishedID *string
	RefreshedCount  int64
}

// RollingTx is a transaction on one machine's rolling model, holding the
// machine's rolling lock (refreshes of one machine are serialised).
type RollingTx struct {
	tx        pgx.Tx
	machineID string
}

// Rolling runs fn in a transaction holding machineID's rolling-model lock;
// fn's error rolls back.
func (s *Store) Rolling(ctx context.Context, machineID string, fn func(*RollingTx) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('baseline_rolling_state'), hashtext($1::text))`,
			machineID); err != nil {
			return fmt.Errorf("lock rolling model: %w", unavailable(err))
		}
		return fn(&RollingTx{tx: tx, machineID: machineID})
	})
}

// ReadRollingState returns the machine's rolling state without locking; a
// machine without one wraps ErrNotFound.
func (s *Store) ReadRollingState(ctx context.Context, machineID string) (RollingState, error) {
	return rollingState(ctx, s.pool, machineID)
}

const rollingStateSQL = `
	SELECT machine_id::text, source_baseline::text, drivers, design, stats, window_hours, last_hour,
	       drivers_chosen_at, publish_checked_at, last_published_id::text, refreshed_count
	  FROM baseline_rolling_state WHERE machine_id = $1`

func rollingState(ctx context.Context, q queryer, machineID string) (RollingState, error) {
	return scanRollingState(q.QueryRow(ctx, rollingStateSQL, machineID), machineID)
}

func scanRollingState(row pgx.Row, machineID string) (RollingState, error) {
	var st RollingState
	err := row.Scan(&st.MachineID, &st.SourceBaseline, &st.Drivers, &st.Design, &st.Stats, &st.WindowHours,
		&st.LastHour, &st.DriversChosenAt, &st.PublishChecked, &st.LastPublishedID, &st.RefreshedCount)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, fmt.Errorf("rolling model of machine %s: %w", machineID, ErrNotFound)
	}
	if err != nil {
		return st, fmt.Errorf("get rolling model of machine %s: %w", machineID, unavailable(err))
	}
	return st, nil
}

// State returns the machine's rolling state; none wraps ErrNotFound.
func (r *RollingTx) State(ctx context.Context) (RollingState, error) {
	return rollingState(ctx, r.tx, r.machineID)
}

const saveStateSQL = `
	INSERT INTO baseline_rolling_state (machine_id, source_baseline, drivers, design, stats, window_hours,
		last_hour, drivers_chosen_at, publish_checked_at, last_published_id, refreshed_count, updated_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now())
	ON CONFLICT (machine_id) DO UPDATE SET source_baseline = excluded.source_baseline,
		drivers = excluded.drivers, design = excluded.design, stats = excluded.stats,
		window_hours = excluded.window_hours, last_hour = excluded.last_hour,
		drivers_chosen_at = excluded.drivers_chosen_at, publish_checked_at = excluded.publish_checked_at,
		last_published_id = excluded.last_published_id, refreshed_count = excluded.refreshed_count,
		updated_at = now()`

func (r *RollingTx) saveStateArgs(st RollingState) []any {
	return []any{r.machineID, st.SourceBaseline, st.Drivers, st.Design, st.Stats, st.WindowHours, st.LastHour,
		st.DriversChosenAt, st.PublishChecked, st.LastPublishedID, st.RefreshedCount}
}

// SaveState upserts the machine's rolling state.
func (r *RollingTx) SaveState(ctx context.Context, st RollingState) error {
	_, err := r.tx.Exec(ctx, saveStateSQL, r.saveStateArgs(st)...)
	if err != nil {
		return fmt.Errorf("save rolling model: %w", unavailable(err))
	}
	return nil
}

// Tx is the underlying transaction (to publish a version atomically with
// the state).
func (r *RollingTx) Tx() pgx.Tx { return r.tx }

// ActiveBaseline is Store.ActiveBaseline inside the transaction.
func (r *RollingTx) ActiveBaseline(ctx context.Context) (Baseline, error) {
	return activeBaseline(ctx, r.tx, r.machineID)
}

// FeatureHours is Store.FeatureHours inside the transaction.
func (r *RollingTx) FeatureHours(ctx context.Context, start, end time.Time) ([]FeatureHour, error) {
	return featureHours(ctx, r.tx, r.machineID, start, end)
}

// RollingHour is one observation included in the rolling model.
type RollingHour struct {
	Hour time.Time
	X    []float64
	Y    float64
}

// Hour returns the observation the model holds for hour; ok is false when
// the hour is not included.
func (r *RollingTx) Hour(ctx context.Context, hour time.Time) (h RollingHour, ok bool, err error) {
	h.Hour = hour
	err = r.tx.QueryRow(ctx, `SELECT x, y FROM baseline_rolling_hours WHERE machine_id = $1 AND hour = $2`,
		r.machineID, hour).Scan(&h.X, &h.Y)
	if errors.Is(err, pgx.ErrNoRows) {
		return h, false, nil
	}
	if err != nil {
		return h, false, fmt.Errorf("get rolling hour: %w", unavailable(err))
	}
	return h, true, nil
}

// PutHour records (or replaces) the observation included for h.Hour.
func (r *RollingTx) PutHour(ctx context.Context, h RollingHour) error {
	_, err := r.tx.Exec(ctx, `
		INSERT INTO baseline_rolling_hours (machine_id, hour, x, y) VALUES ($1, $2, $3, $4)
		ON CONFLICT (machine_id, hour) DO UPDATE SET x = excluded.x, y = excluded.y`, r.machineID, h.Hour, h.X, h.Y)
	if err != nil {
		return fmt.Errorf("put rolling hour: %w", unavailable(err))
	}
	return nil
}

// PutHours records many observations at once (a rebuild).
func (r *RollingTx) PutHours(ctx context.Context, hs []RollingHour) error {
	_, err := r.tx.CopyFrom(ctx, pgx.Identifier{"baseline_rolling_hours"}, []string{"machine_id", "hour", "x", "y"},
		pgx.CopyFromSlice(len(hs), func(i int) ([]any, error) {
			return []any{r.machineID, hs[i].Hour, hs[i].X, hs[i].Y}, nil
		}))
	if err != nil {
		return fmt.Errorf("copy rolling hours: %w", unavailable(err))
	}
	return nil
}

// TakeHoursBefore deletes and returns the observations of hours before
// cutoff (the ones leaving the sliding window), oldest first.
func (r *RollingTx) TakeHoursBefore(ctx context.Context, cutoff time.Time) ([]RollingHour, error) {
	rows, err := r.tx.Query(ctx, `
		DELETE FROM baseline_rolling_hours WHERE machine_id = $1 AND hour < $2 RETURNING hour, x, y`,
		r.machineID, cutoff)
	if err != nil {
		return nil, fmt.Errorf("take rolling hours: %w", unavailable(err))
	}
	out, err := pgx.CollectRows(rows, scanRollingHour)
	if err != nil {
		return nil, fmt.Errorf("take rolling hours: %w", unavailable(err))
	}
	// DELETE … RETURNING has no order; the statistics remove them oldest
	// first, as a run over the same hours does.
	slices.SortFunc(out, func(a, b RollingHour) int { return a.Hour.Compare(b.Hour) })
	return out, nil
}

// KeepOut records that hour must stay out of the model (and out of any
// rebuild); Unkeep lifts that.
func (r *RollingTx) KeepOut(ctx context.Context, hour time.Time) error {
	if _, err := r.tx.Exec(ctx, `INSERT INTO baseline_rolling_kept_out (machine_id, hour) VALUES ($1, $2)
		ON CONFLICT DO NOTHING`, r.machineID, hour); err != nil {
		return fmt.Errorf("keep hour out of the rolling model: %w", unavailable(err))
	}
	return nil
}

// Unkeep lifts KeepOut for hour.
func (r *RollingTx) Unkeep(ctx context.Context, hour time.Time) error {
	if _, err := r.tx.Exec(ctx, `DELETE FROM baseline_rolling_kept_out WHERE machine_id = $1 AND hour = $2`,
		r.machineID, hour); err != nil {
		return fmt.Errorf("let hour into the rolling model: %w", unavailable(err))
	}
	return nil
}

// KeptOut returns the kept-out hours of [start, end), keyed by Unix seconds.
func (r *RollingTx) KeptOut(ctx context.Context, start, end time.Time) (map[int64]bool, error) {
	rows, err := r.tx.Query(ctx, `SELECT hour FROM baseline_rolling_kept_out WHERE machine_id = $1 AND hour >= $2 AND hour < $3`,
		r.machineID, start, end)
	if err != nil {
		return nil, fmt.Errorf("list kept-out hours: %w", unavailable(err))
	}
	hours, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	if err != nil {
		return nil, fmt.Errorf("list kept-out hours: %w", unavailable(err))
	}
	out := make(map[int64]bool, len(hours))
	for _, h := range hours {
		out[h.Unix()] = true
	}
	return out, nil
}

// ForgetKeptOutBefore deletes kept-out marks older than cutoff.
func (r *RollingTx) ForgetKeptOutBefore(ctx context.Context, cutoff time.Time) error {
	if _, err := r.tx.Exec(ctx, `DELETE FROM baseline_rolling_kept_out WHERE machine_id = $1 AND hour < $2`,
		r.machineID, cutoff); err != nil {
		return fmt.Errorf("forget kept-out hours: %w", unavailable(err))
	}
	return nil
}

// DeleteHour removes the observation of hour.
func (r *RollingTx) DeleteHour(ctx context.Context, hour time.Time) error {
	if _, err := r.tx.Exec(ctx, `DELETE FROM baseline_rolling_hours WHERE machine_id = $1 AND hour = $2`,
		r.machineID, hour); err != nil {
		return fmt.Errorf("delete rolling hour: %w", unavailable(err))
	}
	return nil
}

// DeleteAllHours empties the model's observations (before a rebuild).
func (r *RollingTx) DeleteAllHours(ctx context.Context) error {
	if _, err := r.tx.Exec(ctx, `DELETE FROM baseline_rolling_hours WHERE machine_id = $1`, r.machineID); err != nil {
		return fmt.Errorf("clear rolling hours: %w", unavailable(err))
	}
	return nil
}

// AllHours returns every observation the model holds, oldest first.
func (r *RollingTx) AllHours(ctx context.Context) ([]RollingHour, error) {
	rows, err := r.tx.Query(ctx, `SELECT hour, x, y FROM baseline_rolling_hours WHERE machine_id = $1 ORDER BY hour`,
		r.machineID)
	if err != nil {
		return nil, fmt.Errorf("list rolling hours: %w", unavailable(err))
	}
	out, err := pgx.CollectRows(rows, scanRollingHour)
	if err != nil {
		return nil, fmt.Errorf("list rolling hours: %w", unavailable(err))
	}
	return out, nil
}

// RollingRunRead is what stepping a machine's rolling model through a run of
// closed hours [Start, End) reads, once for the whole run.
type RollingRunRead struct {
	State RollingState
	// Active is the machine's active baseline; HasActive is false when it
	// has none.
	Active    Baseline
	HasActive bool
	Features  []FeatureHour // hours of [Start, End) with energy, in order
	// Included are the hours of [Start, End) the model already holds, and
	// KeptOut the ones marked to stay out, keyed by Unix seconds.
	Included, KeptOut map[int64]bool
	// Leaving are the observations of hours before EvictBefore (those the
	// run's hours push out of the window), oldest first.
	Leaving []RollingHour
}

// ReadRollingRun reads what a run over [start, end) needs (see
// RollingRunRead) in one round trip; a machine without a rolling model
// wraps ErrNotFound.
func (s *Store) ReadRollingRun(ctx context.Context, machineID string, start, end, evictBefore time.Time) (RollingRunRead, error) {
	var rd RollingRunRead
	b := &pgx.Batch{}
	b.Queue(rollingStateSQL, machineID).QueryRow(func(row pgx.Row) (err error) {
		rd.State, err = scanRollingState(row, machineID)
		return err
	})
	b.Queue(activeBaselineSQL, machineID).QueryRow(func(row pgx.Row) error {
		var err error
		rd.Active, err = scanActiveBaseline(row, machineID)
		switch {
		case err == nil:
			rd.HasActive = true
		case !errors.Is(err, ErrNotFound):
			return err
		}
		return nil
	})
	b.Queue(featureHoursSQL, machineID, start, end).Query(func(rows pgx.Rows) (err error) {
		rd.Features, err = collectFeatureHours(rows)
		return err
	})
	hourSet := func(table string, set *map[int64]bool) {
		b.Queue(`SELECT hour FROM `+table+` WHERE machine_id = $1 AND hour >= $2 AND hour < $3`, machineID, start, end).
			Query(func(rows pgx.Rows) error {
				hours, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
				if err != nil {
					return fmt.Errorf("read %s: %w", table, err)
				}
				*set = make(map[int64]bool, len(hours))
				for _, h := range hours {
					(*set)[h.Unix()] = true
				}
				return nil
			})
	}
	hourSet("baseline_rolling_hours", &rd.Included)
	hourSet("baseline_rolling_kept_out", &rd.KeptOut)
	b.Queue(`SELECT hour, x, y FROM baseline_rolling_hours WHERE machine_id = $1 AND hour < $2 ORDER BY hour`,
		machineID, evictBefore).Query(func(rows pgx.Rows) (err error) {
		if rd.Leaving, err = pgx.CollectRows(rows, scanRollingHour); err != nil {
			return fmt.Errorf("read leaving rolling hours: %w", err)
		}
		return nil
	})
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return rd, fmt.Errorf("read rolling run: %w", unavailable(err))
	}
	return rd, nil
}

func scanRollingHour(row pgx.CollectableRow) (RollingHour, error) {
	var h RollingHour
	err := row.Scan(&h.Hour, &h.X, &h.Y)
	return h, err
}

// RollingRunWrite is what a run over closed hours writes.
type RollingRunWrite struct {
	// Expect are the last hour and refresh count the run started from: the
	// write fails with ErrRollingChanged when the stored state moved since.
	ExpectLastHour *time.Time
	ExpectCount    int64
	Put            []RollingHour // observations added, in hour order
	KeepOut        []time.Time   // hours marked to stay out
	// Cutoff is the window's start after the run: observations and kept-out
	// marks before it are deleted.
	Cutoff time.Time
	State  RollingState
}

// ErrRollingChanged is returned by SaveRollingRun when the rolling model
// changed after the run read it.
var ErrRollingChanged = errors.New("the rolling model changed while the run was computed")

// SaveRollingRun writes a run in one round trip, in the order the hour-by-
// hour refreshes would have: observations and kept-out marks first, then
// the hours leaving the window, then the state. It returns
// ErrRollingChanged when the state read first in the batch is not the one
// the run started from; the caller's transaction (Store.Rolling) then
// rolls every write back.
func (r *RollingTx) SaveRollingRun(ctx context.Context, w RollingRunWrite) error {
	b := &pgx.Batch{}
	var last *time.Time
	var count int64
	found := false
	b.Queue(`SELECT last_hour, refreshed_count FROM baseline_rolling_state WHERE machine_id = $1`, r.machineID).
		QueryRow(func(row pgx.Row) error {
			err := row.Scan(&last, &count)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			found = err == nil
			return err
		})
	if len(w.Put) > 0 {
		hours := make([]time.Time, len(w.Put))
		ys := make([]float64, len(w.Put))
		width := len(w.Put[0].X)
		xs := make([]float64, 0, len(w.Put)*width)
		for i, h := range w.Put {
			if len(h.X) != width {
				return fmt.Errorf("save rolling run: observation %s has %d columns, the first has %d", h.Hour.Format(time.RFC3339), len(h.X), width)
			}
			hours[i], ys[i] = h.Hour, h.Y
			xs = append(xs, h.X...)
		}
		// The rows of x have the model's width, so they travel as one flat
		// array and are sliced back out row by row.
		b.Queue(`
			INSERT INTO baseline_rolling_hours (machine_id, hour, x, y)
			SELECT $1, u.hour, ($3::float8[])[(u.i - 1) * $5::int + 1 : u.i * $5::int], u.y
			  FROM unnest($2::timestamptz[], $4::float8[]) WITH ORDINALITY AS u (hour, y, i)
			ON CONFLICT (machine_id, hour) DO UPDATE SET x = excluded.x, y = excluded.y`,
			r.machineID, hours, xs, ys, width)
	}
	if len(w.KeepOut) > 0 {
		b.Queue(`INSERT INTO baseline_rolling_kept_out (machine_id, hour) SELECT $1, unnest($2::timestamptz[])
			ON CONFLICT DO NOTHING`, r.machineID, w.KeepOut)
	}
	b.Queue(`DELETE FROM baseline_rolling_hours WHERE machine_id = $1 AND hour < $2`, r.machineID, w.Cutoff)
	b.Queue(`DELETE FROM baseline_rolling_kept_out WHERE machine_id = $1 AND hour < $2`, r.machineID, w.Cutoff)
	b.Queue(saveStateSQL, r.saveStateArgs(w.State)...)
	if err := r.tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("save rolling run: %w", unavailable(err))
	}
	// The writes are in the batch already; failing here rolls them back
	// with the transaction.
	if !found || !sameTime(last, w.ExpectLastHour) || count != w.ExpectCount {
		return ErrRollingChanged
	}
	return nil
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}
