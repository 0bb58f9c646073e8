package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Anomaly is a row of anomalies: one episode of consecutive anomalous hours
// of one type on one machine. Rows of an adopted database written by the old
// service have no LastHour and HourCount.
type Anomaly struct {
	ID               string          `json:"id"`
	MachineID        string          `json:"machine_id"`
	MachineName      string          `json:"machine_name"`
	DetectedAt       time.Time       `json:"detected_at"` // the episode's first hour
	LastHour         *time.Time      `json:"last_hour"`   // its latest anomalous hour
	HourCount        *int            `json:"hour_count"`  // its anomalous hours
	AnomalyType      string          `json:"anomaly_type"`
	Severity         string          `json:"severity"`
	MetricName       *string         `json:"metric_name"`
	MetricValue      *float64        `json:"metric_value"`
	ExpectedValue    *float64        `json:"expected_value"`
	DeviationPercent *float64        `json:"deviation_percent"`
	DeviationStdDev  *float64        `json:"deviation_std_dev"`
	DetectionMethod  *string         `json:"detection_method"`
	ConfidenceScore  *float64        `json:"confidence_score"`
	IsResolved       bool            `json:"is_resolved"`
	ResolvedAt       *time.Time      `json:"resolved_at"`
	ResolutionNotes  *string         `json:"resolution_notes"`
	CreatedAt        time.Time       `json:"created_at"`
	Metadata         json.RawMessage `json:"metadata"`
}

const anomalyColumns = `
	a.id::text, a.machine_id::text, coalesce(m.name, ''), a.detected_at, a.last_hour, a.hour_count,
	a.anomaly_type, a.severity::text, a.metric_name, a.metric_value::float8, a.expected_value::float8,
	a.deviation_percent::float8, a.deviation_std_dev::float8, a.detection_method, a.confidence_score::float8,
	a.is_resolved, a.resolved_at, a.resolution_notes, a.created_at, a.metadata`

func scanAnomaly(r pgx.Row) (Anomaly, error) {
	var a Anomaly
	var meta []byte
	err := r.Scan(&a.ID, &a.MachineID, &a.MachineName, &a.DetectedAt, &a.LastHour, &a.HourCount,
		&a.AnomalyType, &a.Severity, &a.MetricName, &a.MetricValue, &a.ExpectedValue,
		&a.DeviationPercent, &a.DeviationStdDev, &a.DetectionMethod, &a.ConfidenceScore,
		&a.IsResolved, &a.ResolvedAt, &a.ResolutionNotes, &a.CreatedAt, &meta)
	if len(meta) == 0 {
		meta = []byte("{}")
	}
	a.Metadata = meta
	return a, err
}

func collectAnomalies(rows pgx.Rows) ([]Anomaly, error) {
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Anomaly, error) { return scanAnomaly(r) })
	if out == nil {
		out = []Anomaly{}
	}
	return out, err
}

// AnomalyCursor is the position after which a page of anomalies continues:
// the last row's detected_at and id (rows are ordered newest first).
type AnomalyCursor struct {
	DetectedAt time.Time
	ID         string
}

// AnomalyFilter selects episodes for /anomaly/recent: those overlapping
// [Start, End) (first hour before End, last hour ending after Start).
type AnomalyFilter struct {
	MachineID string // "" = every machine
	Severity  string // "" = any
	Start     time.Time
	End       time.Time
	Limit     int
	After     *AnomalyCursor
}

// ListAnomalies returns the episodes matching f, newest first.
func (s *Store) ListAnomalies(ctx context.Context, f AnomalyFilter) ([]Anomaly, error) {
	args := []any{f.Start, f.End}
	where := []string{"a.detected_at < $2", "coalesce(a.last_hour, a.detected_at) + interval '1 hour' > $1"}
	add := func(cond string, vs ...any) {
		n := len(args)
		args = append(args, vs...)
		idx := make([]any, len(vs))
		for i := range vs {
			idx[i] = n + i + 1
		}
		where = append(where, fmt.Sprintf(cond, idx...))
	}
	if f.MachineID != "" {
		add("a.machine_id = $%d", f.MachineID)
	}
	if f.Severity != "" {
		add("a.severity::text = $%d", f.Severity)
	}
	if f.After != nil {
		add("(a.detected_at, a.id) < ($%d, $%d::uuid)", f.After.DetectedAt, f.After.ID)
	}
	q := `SELECT ` + anomalyColumns + ` FROM anomalies a LEFT JOIN machines m ON m.id = a.machine_id
		WHERE ` + strings.Join(where, " AND ") + ` ORDER BY a.detected_at DESC, a.id DESC`
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list anomalies: %w", unavailable(err))
	}
	out, err := collectAnomalies(rows)
	if err != nil {
		return nil, fmt.Errorf("list anomalies: %w", unavailable(err))
	}
	return out, nil
}

// Anomaly returns one anomaly; an unknown id wraps ErrNotFound.
func (s *Store) Anomaly(ctx context.Context, id string) (Anomaly, error) {
	a, err := scanAnomaly(s.pool.QueryRow(ctx, `SELECT `+anomalyColumns+`
		FROM anomalies a LEFT JOIN machines m ON m.id = a.machine_id WHERE a.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return a, fmt.Errorf("anomaly %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return a, fmt.Errorf("get anomaly %s: %w", id, unavailable(err))
	}
	return a, nil
}

// MachineEpisodes returns the machine's episodes overlapping [start, end),
// oldest first.
func (s *Store) MachineEpisodes(ctx context.Context, machineID string, start, end time.Time) ([]Anomaly, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+anomalyColumns+`
		FROM anomalies a LEFT JOIN machines m ON m.id = a.machine_id
		WHERE a.machine_id = $1 AND a.hour_count IS NOT NULL
		  AND a.detected_at < $3 AND a.last_hour + interval '1 hour' > $2
		ORDER BY a.detected_at, a.anomaly_type`, machineID, start, end)
	if err != nil {
		return nil, fmt.Errorf("episodes of machine %s: %w", machineID, unavailable(err))
	}
	out, err := collectAnomalies(rows)
	if err != nil {
		return nil, fmt.Errorf("episodes of machine %s: %w", machineID, unavailable(err))
	}
	return out, nil
}

// ActiveAnomalyCounts counts unresolved anomalies by severity (every
// severity present, zero when none), of one machine or of all ("").
func (s *Store) ActiveAnomalyCounts(ctx context.Context, machineID string) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT s.sev::text, count(a.id)::int
		  FROM unnest(enum_range(NULL::alert_level)) AS s(sev)
		  LEFT JOIN anomalies a ON a.severity = s.sev AND NOT a.is_resolved
		                       AND ($1 = '' OR a.machine_id = nullif($1, '')::uuid)
		 GROUP BY s.sev`, machineID)
	if err != nil {
		return nil, fmt.Errorf("count active anomalies: %w", unavailable(err))
	}
	out := map[string]int{}
	var sev string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&sev, &n}, func() error { out[sev] = n; return nil })
	if err != nil {
		return nil, fmt.Errorf("count active anomalies: %w", unavailable(err))
	}
	return out, nil
}

// ResolveAnomaly marks an anomaly resolved with notes and returns it. An
// unknown id wraps ErrNotFound; an anomaly already resolved wraps
// ErrConflict.
func (s *Store) ResolveAnomaly(ctx context.Context, id, notes string) (Anomaly, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE anomalies SET is_resolved = true, resolved_at = now(), resolution_notes = $2
		WHERE id = $1 AND NOT is_resolved`, id, notes)
	if err != nil {
		return Anomaly{}, fmt.Errorf("resolve anomaly %s: %w", id, unavailable(err))
	}
	a, err := s.Anomaly(ctx, id)
	if err != nil {
		return a, err
	}
	if tag.RowsAffected() == 0 {
		return a, fmt.Errorf("anomaly %s was already resolved at %s: %w", id, a.ResolvedAt.Format(time.RFC3339), ErrConflict)
	}
	return a, nil
}

// MachineExists reports whether a machine with this id exists.
func (s *Store) MachineExists(ctx context.Context, id string) (bool, error) {
	var ok bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM machines WHERE id = $1)`, id).Scan(&ok); err != nil {
		return false, fmt.Errorf("look up machine %s: %w", id, unavailable(err))
	}
	return ok, nil
}

// AnomalyInput is one machine-hour as anomaly scoring reads it from the
// rollups. A value the machine did not report is NaN, never zero.
type AnomalyInput struct {
	Hour                   time.Time
	EnergyKWh              float64 // total_energy_kwh
	AvgPowerKW             float64
	ProductionCount        float64
	AvgOutdoorTempC        float64
	AvgMachineTempC        float64
	MaxMachineTempC        float64
	AvgPressureBar         float64
	AvgPressureSetpointBar float64
	MaxVibrationMMS        float64
	// AbnormalMode is the worst of maintenance, fault and offline that the
	// production rollup saw in the hour ("" when none).
	AbnormalMode string
}

// AnomalyHour is a row of anomaly_hours: how one closed machine-hour was
// judged. NaN floats are stored as NULL and read back as NaN.
type AnomalyHour struct {
	Hour         time.Time
	Status       string // normal, anomalous, unscored, suppressed
	Reason       string
	ActualKWh    float64
	ExpectedKWh  float64
	StdError     float64
	Z            float64
	ModelHours   int
	ModelVersion string
	Types        []string

	AvgPowerKW      float64
	ProductionCount float64
	AvgMachineTempC float64
	MaxMachineTempC float64
	AvgPressureBar  float64
	PressureDevBar  float64
	MaxVibrationMMS float64
	Signals         json.RawMessage
	State           json.RawMessage
	ScoredAt        time.Time
}

// Episode is what anomaly scoring writes of one episode.
type Episode struct {
	MachineID        string
	Type             string
	DetectedAt       time.Time
	LastHour         time.Time
	Hours            int
	Severity         string
	MetricName       string
	MetricValue      float64 // NaN = NULL, likewise below
	ExpectedValue    float64
	DeviationPercent float64
	DeviationStdDev  float64
	Method           string
	Confidence       float64
	Metadata         json.RawMessage
}

// EpisodeKey identifies an episode: (machine, type, first hour) is unique.
type EpisodeKey struct {
	Type       string
	DetectedAt time.Time
}

// AnomalyTx is a transaction on one machine's anomaly scoring. Its first
// Load takes the machine's scoring lock (scoring of one machine is
// serialised across workers).
type AnomalyTx struct {
	tx        pgx.Tx
	machineID string
}

// AnomalyScoring runs fn in a transaction on machineID's anomaly scoring;
// fn's error rolls back.
func (s *Store) AnomalyScoring(ctx context.Context, machineID string, fn func(*AnomalyTx) error) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return fn(&AnomalyTx{tx: tx, machineID: machineID})
	})
	return unavailable(err)
}

// ScoringRead is what a re-score of [from, to) reads, in one round trip.
type ScoringRead struct {
	// Now is the transaction's now(): the scored_at of every record it writes.
	Now time.Time
	// Generation is the machine's scoring generation before this transaction.
	Generation int64
	// Previous is the latest record before from (first Load only; nil when none).
	Previous *AnomalyHour
	Inputs   []AnomalyInput // closed hours in [from, to) with energy readings
	Stored   []AnomalyHour  // records in [from, to)
	Periods  []StatusPeriod // status history overlapping [periodsFrom, to + 1 h)
	Next     *time.Time     // the first stored hour at or after to
}

const inputsSQL = `
	SELECT e.bucket, e.total_energy_kwh, e.avg_power_kw, p.total_production_count::float8,
	       env.avg_outdoor_temp_c, env.avg_machine_temp_c, env.max_machine_temp_c,
	       env.avg_pressure_bar, env.avg_pressure_setpoint_bar, env.max_vibration_mm_s,
	       CASE WHEN p.fault_seconds > 0 THEN 'fault'
	            WHEN p.maintenance_seconds > 0 THEN 'maintenance'
	            WHEN p.offline_seconds > 0 THEN 'offline' ELSE '' END
	  FROM energy_readings_1hour e
	  LEFT JOIN production_data_1hour p ON p.machine_id = e.machine_id AND p.bucket = e.bucket
	  LEFT JOIN environmental_data_1hour env ON env.machine_id = e.machine_id AND env.bucket = e.bucket
	 WHERE e.machine_id = $1 AND e.bucket >= $2 AND e.bucket < $3 AND e.reading_count > 0
	   AND ($4::float8 IS NULL
	        OR e.bucket < (SELECT max(bucket) FROM energy_readings_1hour WHERE machine_id = $1)
	        OR e.bucket + interval '1 hour' + $4 * interval '1 second' <= now())
	 ORDER BY e.bucket`

func scanInput(r pgx.CollectableRow) (AnomalyInput, error) {
	var in AnomalyInput
	var energy, power, prod, out, tavg, tmax, p, sp, vib *float64
	err := r.Scan(&in.Hour, &energy, &power, &prod, &out, &tavg, &tmax, &p, &sp, &vib, &in.AbnormalMode)
	in.EnergyKWh, in.AvgPowerKW, in.ProductionCount = nan(energy), nan(power), nan(prod)
	in.AvgOutdoorTempC, in.AvgMachineTempC, in.MaxMachineTempC = nan(out), nan(tavg), nan(tmax)
	in.AvgPressureBar, in.AvgPressureSetpointBar, in.MaxVibrationMMS = nan(p), nan(sp), nan(vib)
	return in, err
}

func scanPeriod(r pgx.CollectableRow) (StatusPeriod, error) {
	var p StatusPeriod
	err := r.Scan(&p.IsRunning, &p.Mode, &p.ValidFrom, &p.ValidTo)
	return p, err
}

// Load reads what scoring [from, to) needs. With closedGrace ≥ 0 only
// closed hours are read (hours with energy readings in a later hour, or that
// ended more than closedGrace ago); with a negative closedGrace every hour
// (the caller knows they closed). The first Load of a transaction (first =
// true) also takes the machine's scoring lock and reads Now, Generation and
// Previous.
func (a *AnomalyTx) Load(ctx context.Context, from, to, periodsFrom time.Time, closedGrace time.Duration, first bool) (ScoringRead, error) {
	var r ScoringRead
	var grace *float64
	if closedGrace >= 0 {
		g := closedGrace.Seconds()
		grace = &g
	}
	b := &pgx.Batch{}
	if first {
		b.Queue(`SELECT pg_advisory_xact_lock(hashtext('anomaly_hours'), hashtext($1::text))`, a.machineID).Exec(func(pgconn.CommandTag) error { return nil })
		b.Queue(`SELECT now(), coalesce((SELECT generation FROM anomaly_machine_state WHERE machine_id = $1), 0)`,
			a.machineID).QueryRow(func(row pgx.Row) error { return row.Scan(&r.Now, &r.Generation) })
		b.Queue(`SELECT `+anomalyHourColumns+` FROM anomaly_hours WHERE machine_id = $1 AND bucket < $2 ORDER BY bucket DESC LIMIT 1`,
			a.machineID, from).Query(func(rows pgx.Rows) error {
			hs, err := pgx.CollectRows(rows, scanAnomalyHour)
			if len(hs) > 0 {
				r.Previous = &hs[0]
			}
			return err
		})
	}
	b.Queue(inputsSQL, a.machineID, from, to, grace).Query(func(rows pgx.Rows) (err error) {
		r.Inputs, err = pgx.CollectRows(rows, scanInput)
		return err
	})
	b.Queue(`SELECT `+anomalyHourColumns+` FROM anomaly_hours WHERE machine_id = $1 AND bucket >= $2 AND bucket < $3 ORDER BY bucket`,
		a.machineID, from, to).Query(func(rows pgx.Rows) (err error) {
		r.Stored, err = pgx.CollectRows(rows, scanAnomalyHour)
		return err
	})
	b.Queue(`SELECT is_running, mode::text, valid_from, valid_to FROM machine_status_history
		 WHERE machine_id = $1 AND valid_from < $3 AND (valid_to IS NULL OR valid_to > $2) ORDER BY valid_from`,
		a.machineID, periodsFrom, to.Add(time.Hour)).Query(func(rows pgx.Rows) (err error) {
		r.Periods, err = pgx.CollectRows(rows, scanPeriod)
		return err
	})
	b.Queue(`SELECT min(bucket) FROM anomaly_hours WHERE machine_id = $1 AND bucket >= $2`, a.machineID, to).
		QueryRow(func(row pgx.Row) error { return row.Scan(&r.Next) })
	if err := a.tx.SendBatch(ctx, b).Close(); err != nil {
		return r, fmt.Errorf("read scoring inputs: %w", unavailable(err))
	}
	return r, nil
}

const anomalyHourColumns = `bucket, status, coalesce(reason, ''), actual_kwh, expected_kwh, std_error, z,
	coalesce(model_hours, 0), coalesce(model_version, ''), types, avg_power_kw, production_count,
	avg_machine_temp_c, max_machine_temp_c, avg_pressure_bar, pressure_dev_bar, max_vibration_mm_s,
	signals, state, scored_at`

func scanAnomalyHour(r pgx.CollectableRow) (AnomalyHour, error) {
	var h AnomalyHour
	var f [11]*float64
	err := r.Scan(&h.Hour, &h.Status, &h.Reason, &f[0], &f[1], &f[2], &f[3], &h.ModelHours, &h.ModelVersion,
		&h.Types, &f[4], &f[5], &f[6], &f[7], &f[8], &f[9], &f[10], &h.Signals, &h.State, &h.ScoredAt)
	h.ActualKWh, h.ExpectedKWh, h.StdError, h.Z = nan(f[0]), nan(f[1]), nan(f[2]), nan(f[3])
	h.AvgPowerKW, h.ProductionCount, h.AvgMachineTempC, h.MaxMachineTempC = nan(f[4]), nan(f[5]), nan(f[6]), nan(f[7])
	h.AvgPressureBar, h.PressureDevBar, h.MaxVibrationMMS = nan(f[8]), nan(f[9]), nan(f[10])
	return h, err
}

// LearningHours returns up to limit of the machine's hours before t that the
// rolling model learned from (status normal or unscored), newest first,
// without their signals and state.
func (a *AnomalyTx) LearningHours(ctx context.Context, before time.Time, limit int) ([]AnomalyHour, error) {
	rows, err := a.tx.Query(ctx, `SELECT `+strings.Replace(anomalyHourColumns, "signals, state", "'{}'::jsonb, '{}'::jsonb", 1)+`
		FROM anomaly_hours WHERE machine_id = $1 AND status IN ('normal', 'unscored') AND bucket < $2
		ORDER BY bucket DESC LIMIT $3`, a.machineID, before, limit)
	if err != nil {
		return nil, fmt.Errorf("read learning hours: %w", unavailable(err))
	}
	out, err := pgx.CollectRows(rows, scanAnomalyHour)
	if err != nil {
		return nil, fmt.Errorf("read learning hours: %w", unavailable(err))
	}
	return out, nil
}

// ScoringWrite is what a re-score writes, in one round trip.
type ScoringWrite struct {
	Hours    []AnomalyHour // records to upsert
	Episodes []Episode     // episodes to upsert
	// Delete, when set, removes the machine's episodes whose first hour lies
	// in [DeleteFrom, DeleteTo] and whose key is not in Keep (a re-score no
	// longer finds them).
	Delete               bool
	DeleteFrom, DeleteTo time.Time
	Keep                 []EpisodeKey
	// LastHour, when not zero, is recorded as the latest hour scored, and
	// the machine's generation is bumped.
	LastHour time.Time
}

// ScoringSaved reports what Save did.
type ScoringSaved struct {
	Generation int64    // the machine's generation after the write (when LastHour was set)
	EpisodeIDs []string // ids of Episodes, in order
	// Notified are the ids anomaly_detected was sent for (delivered at
	// commit): episodes that are new, or whose severity rose.
	Notified []string
	Deleted  int64
}

// putHoursSQL upserts hour records given as parallel arrays (one
// statement for a run's hours); types travel comma-joined.
const putHoursSQL = `
	INSERT INTO anomaly_hours (machine_id, bucket, status, reason, actual_kwh, expected_kwh, std_error, z,
		model_hours, model_version, types, avg_power_kw, production_count, avg_machine_temp_c,
		max_machine_temp_c, avg_pressure_bar, pressure_dev_bar, max_vibration_mm_s, signals, state, scored_at)
	SELECT $1, u.bucket, u.status, nullif(u.reason, ''), u.actual_kwh, u.expected_kwh, u.std_error, u.z,
		u.model_hours, nullif(u.model_version, ''), string_to_array(u.types, ','), u.avg_power_kw, u.production_count,
		u.avg_machine_temp_c, u.max_machine_temp_c, u.avg_pressure_bar, u.pressure_dev_bar, u.max_vibration_mm_s,
		u.signals::jsonb, u.state::jsonb, now()
	  FROM unnest($2::timestamptz[], $3::text[], $4::text[], $5::float8[], $6::float8[], $7::float8[], $8::float8[],
		$9::int[], $10::text[], $11::text[], $12::float8[], $13::float8[], $14::float8[], $15::float8[], $16::float8[],
		$17::float8[], $18::float8[], $19::text[], $20::text[])
		AS u (bucket, status, reason, actual_kwh, expected_kwh, std_error, z, model_hours, model_version, types,
		      avg_power_kw, production_count, avg_machine_temp_c, max_machine_temp_c, avg_pressure_bar,
		      pressure_dev_bar, max_vibration_mm_s, signals, state)
	ON CONFLICT (machine_id, bucket) DO UPDATE SET status = excluded.status, reason = excluded.reason,
		actual_kwh = excluded.actual_kwh, expected_kwh = excluded.expected_kwh, std_error = excluded.std_error,
		z = excluded.z, model_hours = excluded.model_hours, model_version = excluded.model_version,
		types = excluded.types, avg_power_kw = excluded.avg_power_kw, production_count = excluded.production_count,
		avg_machine_temp_c = excluded.avg_machine_temp_c, max_machine_temp_c = excluded.max_machine_temp_c,
		avg_pressure_bar = excluded.avg_pressure_bar, pressure_dev_bar = excluded.pressure_dev_bar,
		max_vibration_mm_s = excluded.max_vibration_mm_s, signals = excluded.signals, state = excluded.state,
		scored_at = now()`

// hourArgs are putHoursSQL's arguments for hs.
func hourArgs(machineID string, hs []AnomalyHour) []any {
	n := len(hs)
	hours := make([]time.Time, n)
	status, reason, version, types, signals, state := make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n)
	modelHours := make([]int32, n)
	floats := make([][]*float64, 11)
	for i := range floats {
		floats[i] = make([]*float64, n)
	}
	for i, h := range hs {
		hours[i], status[i], reason[i], version[i] = h.Hour, h.Status, h.Reason, h.ModelVersion
		types[i] = strings.Join(h.Types, ",")
		signals[i], state[i] = string(jsonOrEmpty(h.Signals)), string(jsonOrEmpty(h.State))
		modelHours[i] = int32(h.ModelHours)
		for j, v := range []float64{h.ActualKWh, h.ExpectedKWh, h.StdError, h.Z, h.AvgPowerKW, h.ProductionCount,
			h.AvgMachineTempC, h.MaxMachineTempC, h.AvgPressureBar, h.PressureDevBar, h.MaxVibrationMMS} {
			floats[j][i] = null(v)
		}
	}
	return []any{machineID, hours, status, reason, floats[0], floats[1], floats[2], floats[3], modelHours, version,
		types, floats[4], floats[5], floats[6], floats[7], floats[8], floats[9], floats[10], signals, state}
}

// upsertEpisodeSQL writes an episode keyed by (machine, type, first hour),
// keeping its resolution fields, and notifies anomaly_detected with its id
// when it is new or its severity rose (alert_level orders normal < warning
// < critical).
const upsertEpisodeSQL = `
	WITH prev AS (
		SELECT severity FROM anomalies
		 WHERE machine_id = $1 AND anomaly_type = $2 AND detected_at = $3 AND hour_count IS NOT NULL),
	up AS (
		INSERT INTO anomalies (machine_id, anomaly_type, detected_at, last_hour, hour_count, severity, metric_name,
			metric_value, expected_value, deviation_percent, deviation_std_dev, detection_method, confidence_score, metadata)
		VALUES ($1, $2, $3, $4, $5, $6::alert_level, nullif($7, ''), $8, $9, $10, $11, nullif($12, ''), $13, $14)
		ON CONFLICT (machine_id, anomaly_type, detected_at) WHERE hour_count IS NOT NULL DO UPDATE SET
			last_hour = excluded.last_hour, hour_count = excluded.hour_count, severity = excluded.severity,
			metric_name = excluded.metric_name, metric_value = excluded.metric_value,
			expected_value = excluded.expected_value, deviation_percent = excluded.deviation_percent,
			deviation_std_dev = excluded.deviation_std_dev, detection_method = excluded.detection_method,
			confidence_score = excluded.confidence_score, metadata = excluded.metadata
		RETURNING id, severity),
	flag AS (
		SELECT up.id, (prev.severity IS NULL OR up.severity > prev.severity) AS notify FROM up LEFT JOIN prev ON true)
	SELECT id::text, notify, CASE WHEN notify THEN pg_notify('anomaly_detected', id::text) END FROM flag`

// Save writes w.
func (a *AnomalyTx) Save(ctx context.Context, w ScoringWrite) (ScoringSaved, error) {
	var out ScoringSaved
	b := &pgx.Batch{}
	if len(w.Hours) > 0 {
		b.Queue(putHoursSQL, hourArgs(a.machineID, w.Hours)...)
	}
	out.EpisodeIDs = make([]string, len(w.Episodes))
	for i, e := range w.Episodes {
		b.Queue(upsertEpisodeSQL, a.machineID, e.Type, e.DetectedAt, e.LastHour, e.Hours, e.Severity, e.MetricName,
			null(e.MetricValue), null(e.ExpectedValue), null(e.DeviationPercent), null(e.DeviationStdDev),
			e.Method, null(e.Confidence), jsonOrEmpty(e.Metadata)).QueryRow(func(row pgx.Row) error {
			var notify bool
			if err := row.Scan(&out.EpisodeIDs[i], &notify, nil); err != nil {
				return err
			}
			if notify {
				out.Notified = append(out.Notified, out.EpisodeIDs[i])
			}
			return nil
		})
	}
	if w.Delete {
		types := make([]string, len(w.Keep))
		starts := make([]time.Time, len(w.Keep))
		for i, k := range w.Keep {
			types[i], starts[i] = k.Type, k.DetectedAt
		}
		b.Queue(`
			DELETE FROM anomalies a
			 WHERE a.machine_id = $1 AND a.hour_count IS NOT NULL AND a.detected_at >= $2 AND a.detected_at <= $3
			   AND NOT EXISTS (SELECT 1 FROM unnest($4::text[], $5::timestamptz[]) AS k(t, d)
			                    WHERE k.t = a.anomaly_type AND k.d = a.detected_at)`,
			a.machineID, w.DeleteFrom, w.DeleteTo, types, starts).Exec(func(tag pgconn.CommandTag) error {
			out.Deleted = tag.RowsAffected()
			return nil
		})
	}
	if !w.LastHour.IsZero() {
		b.Queue(`
			INSERT INTO anomaly_machine_state AS s (machine_id, generation, last_hour, updated_at) VALUES ($1, 1, $2, now())
			ON CONFLICT (machine_id) DO UPDATE SET generation = s.generation + 1,
				last_hour = greatest(s.last_hour, excluded.last_hour), updated_at = now()
			RETURNING generation`, a.machineID, w.LastHour).QueryRow(func(row pgx.Row) error { return row.Scan(&out.Generation) })
	}
	if b.Len() == 0 {
		return out, nil
	}
	if err := a.tx.SendBatch(ctx, b).Close(); err != nil {
		return out, fmt.Errorf("save scoring: %w", unavailable(err))
	}
	return out, nil
}

func nan(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

func null(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

func jsonOrEmpty(b json.RawMessage) []byte {
	if len(b) == 0 {
		return []byte("{}")
	}
	return b
}
