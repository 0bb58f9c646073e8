package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Forecast resolutions, the values of energy_forecasts.resolution.
const (
	Resolution15Min = "15min"
	Resolution1Hour = "1hour"
	Resolution1Day  = "1day"
)

// BucketEnergy is the energy of one rollup bucket.
type BucketEnergy struct {
	Bucket time.Time
	KWh    float64
}

// BucketEnergies returns the machine's total_energy_kwh per bucket in
// [from, to), oldest first, from energy_readings_1hour (resolution "1hour")
// or energy_readings_15min ("15min"). Buckets without a rollup row are
// absent.
func (s *Store) BucketEnergies(ctx context.Context, machineID, resolution string, from, to time.Time) ([]BucketEnergy, error) {
	var table string
	switch resolution {
	case Resolution1Hour:
		table = "energy_readings_1hour"
	case Resolution15Min:
		table = "energy_readings_15min"
	default:
		return nil, fmt.Errorf("bucket energies: resolution %q has no rollup table", resolution)
	}
	rows, err := s.pool.Query(ctx, `SELECT bucket, total_energy_kwh FROM `+table+`
		WHERE machine_id = $1 AND bucket >= $2 AND bucket < $3 ORDER BY bucket`, machineID, from, to)
	if err != nil {
		return nil, fmt.Errorf("bucket energies of %s: %w", machineID, unavailable(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (BucketEnergy, error) {
		var b BucketEnergy
		err := r.Scan(&b.Bucket, &b.KWh)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("bucket energies of %s: %w", machineID, unavailable(err))
	}
	return out, nil
}

// DailyEnergies returns the machine's energy per local day of time zone tz,
// for the days starting in [from, to) (from and to are local midnights),
// summed from energy_readings_1hour. Each Bucket is the day's local
// midnight. Days without any hourly row are absent.
func (s *Store) DailyEnergies(ctx context.Context, machineID, tz string, from, to time.Time) ([]BucketEnergy, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT date_trunc('day', bucket AT TIME ZONE $2) AT TIME ZONE $2 AS day, sum(total_energy_kwh)
		FROM energy_readings_1hour
		WHERE machine_id = $1 AND bucket >= $3 AND bucket < $4
		GROUP BY 1 ORDER BY 1`, machineID, tz, from, to)
	if err != nil {
		return nil, fmt.Errorf("daily energies of %s: %w", machineID, unavailable(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (BucketEnergy, error) {
		var b BucketEnergy
		err := r.Scan(&b.Bucket, &b.KWh)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("daily energies of %s: %w", machineID, unavailable(err))
	}
	return out, nil
}

// ForecastRow is one row of energy_forecasts. Energies are kWh per target
// bucket; PredictedKW is the bucket's average power.
type ForecastRow struct {
	MachineID    string
	Origin       time.Time
	TargetBucket time.Time
	Resolution   string
	Horizon      int
	PredictedKWh float64
	PredictedKW  float64
	Lower80      float64
	Upper80      float64
	Lower95      float64
	Upper95      float64
	Model        string
	ActualKWh    *float64 // nil until the target bucket has closed and been scored
	IssuedAt     time.Time
	CreatedAt    time.Time
}

const upsertForecastsSQL = `
		INSERT INTO energy_forecasts AS f (machine_id, origin, target_bucket, resolution, horizon,
			predicted_kwh, predicted_kw, lower_80, upper_80, lower_95, upper_95, model)
		SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[], $4::text[], $5::int[],
			$6::float8[], $7::float8[], $8::float8[], $9::float8[], $10::float8[], $11::float8[], $12::text[])
		ON CONFLICT (machine_id, origin, target_bucket, resolution) DO UPDATE SET
			horizon = excluded.horizon, predicted_kwh = excluded.predicted_kwh,
			predicted_kw = excluded.predicted_kw, lower_80 = excluded.lower_80,
			upper_80 = excluded.upper_80, lower_95 = excluded.lower_95, upper_95 = excluded.upper_95,
			model = excluded.model, issued_at = now()`

// forecastRunRowsSQL selects the forecasts of a run of origins (the
// arrays of forecastArgs; $13 is the time zone of daily targets, $14 the
// run's closed hours as for scoreRunSQL) with the actual of every target
// that had closed before the forecast was issued (the machine's hours are
// closed through analytics_hour_state.closed_through) or that ends within a
// later hour of the run (scoreRunSQL would score it): during a backfill most
// targets have, and writing the actual with the row spares an update — a
// second row version and a dead entry in each index — per target.
//
// The actual is a scalar subquery of the row's resolution, looked up only
// when the row gets one, where a LEFT JOIN LATERAL of the three lookups
// (UNION ALL) rescanned an Append of all three for every row, whether or
// not the join condition held (some 0.5 µs a row more, backend CPU time).
var forecastRunRowsSQL = `
		SELECT u.*, CASE WHEN ` + targetEndSQL("u", "$13") + ` <= h.closed_through + interval '1 hour'
		          OR (` + closedHourSQL("u", "$13") + ` = ANY ($14::bigint[])
		              AND u.target_bucket >= to_timestamp((` + closedHourSQL("u", "$13") + ` - 25) * 3600))
			THEN ` + actualScalarSQL("u", "$13") + `
		END
		FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[], $4::text[], $5::int[],
			$6::float8[], $7::float8[], $8::float8[], $9::float8[], $10::float8[], $11::float8[], $12::text[])
			AS u (machine_id, origin, target_bucket, resolution, horizon, predicted_kwh, predicted_kw,
			      lower_80, upper_80, lower_95, upper_95, model)
		LEFT JOIN analytics_hour_state h ON h.machine_id = u.machine_id`

// saveForecastsSQL upserts the rows of forecastRunRowsSQL: a row issued
// again (a redelivered run) keeps its recorded actual unless the target had
// closed before (then the actual is read again), as closing the run hour by
// hour does: the insert keeps it, and the scoring looks only at unscored
// rows.
var saveForecastsSQL = `
		INSERT INTO energy_forecasts AS f (machine_id, origin, target_bucket, resolution, horizon,
			predicted_kwh, predicted_kw, lower_80, upper_80, lower_95, upper_95, model, actual_kwh)
		` + forecastRunRowsSQL + `
		ON CONFLICT (machine_id, origin, target_bucket, resolution) DO UPDATE SET
			horizon = excluded.horizon, predicted_kwh = excluded.predicted_kwh,
			predicted_kw = excluded.predicted_kw, lower_80 = excluded.lower_80,
			upper_80 = excluded.upper_80, lower_95 = excluded.lower_95, upper_95 = excluded.upper_95,
			model = excluded.model, issued_at = now(),
			actual_kwh = CASE
				WHEN ` + targetEndSQL("excluded", "$13") + ` <= (SELECT s.closed_through FROM analytics_hour_state s
				                                      WHERE s.machine_id = excluded.machine_id) + interval '1 hour'
				THEN coalesce(excluded.actual_kwh, f.actual_kwh)
				ELSE coalesce(f.actual_kwh, excluded.actual_kwh)
			END`

// forecastArgs are the array arguments of upsertForecastsSQL.
func forecastArgs(rows []ForecastRow) []any {
	n := len(rows)
	machine, res, model := make([]string, n), make([]string, n), make([]string, n)
	origin, target := make([]time.Time, n), make([]time.Time, n)
	horizon := make([]int32, n)
	kwh, kw, l80, u80, l95, u95 := make([]float64, n), make([]float64, n), make([]float64, n),
		make([]float64, n), make([]float64, n), make([]float64, n)
	for i, r := range rows {
		machine[i], res[i], model[i] = r.MachineID, r.Resolution, r.Model
		origin[i], target[i], horizon[i] = r.Origin, r.TargetBucket, int32(r.Horizon)
		kwh[i], kw[i], l80[i], u80[i], l95[i], u95[i] = r.PredictedKWh, r.PredictedKW, r.Lower80, r.Upper80, r.Lower95, r.Upper95
	}
	return []any{machine, origin, target, res, horizon, kwh, kw, l80, u80, l95, u95, model}
}

// UpsertForecasts writes rows in one statement. A row whose key (machine,
// origin, target bucket, resolution) exists is overwritten with the new
// values and issued_at = now(); created_at and actual_kwh are kept.
func (s *Store) UpsertForecasts(ctx context.Context, rows []ForecastRow) error {
	if len(rows) == 0 {
		return nil
	}
	_, err := s.pool.Exec(ctx, upsertForecastsSQL, forecastArgs(rows)...)
	if err != nil {
		return fmt.Errorf("upsert %d forecasts: %w", len(rows), unavailable(err))
	}
	return nil
}

// scoreForecastsSQL records actuals (see ScoreForecasts) of the targets
// ending by upTo (an expression); filter narrows the forecasts looked at,
// and must be sargable: without it the statement walks every forecast the
// machine ever got (28 per closed hour), which made it the most expensive
// statement of a backfill (27 ms a call after ten days of history,
// measured with pg_stat_statements).
//
// It is one UPDATE of the rows it finds, with no join of the table to
// itself (a CTE of the actuals joined back by key): a plan made while the
// table was small joined two scans of the machine's rows in a nested loop,
// 2.3 s a call once they numbered 6,790 (EXPLAIN of the generic plan made
// on an empty table, even without sequential scans). A row is written only
// when its actual changes; a target without rollup rows (actual NULL)
// keeps what it has. The actual is looked up in the filter and again in
// the new value of a row written.
func scoreForecastsSQL(filter, upTo string) string {
	return `
		UPDATE energy_forecasts f SET actual_kwh = ` + actualScalarSQL("f", "$2") + `
		WHERE f.machine_id = $1 AND f.target_bucket >= $3 AND ` + filter + `
		  AND ` + targetEndSQL("f", "$2") + ` <= ` + upTo + `
		  AND f.actual_kwh IS DISTINCT FROM coalesce(` + actualScalarSQL("f", "$2") + `, f.actual_kwh)`
}

// actualScalarSQL is the energy of forecast row x's target, NULL while the
// target has no rollup rows (a rollup's total_energy_kwh is never NULL):
// from energy_readings_15min and energy_readings_1hour, and for a daily
// target the sum of the hours of the local day in the time zone of
// placeholder tz. Only the lookup of x's resolution runs.
func actualScalarSQL(x, tz string) string {
	return strings.NewReplacer("x.", x+".", "$tz", tz).Replace(`CASE x.resolution
				WHEN '15min' THEN (SELECT r.total_energy_kwh FROM energy_readings_15min r
				                   WHERE r.machine_id = x.machine_id AND r.bucket = x.target_bucket)
				WHEN '1hour' THEN (SELECT r.total_energy_kwh FROM energy_readings_1hour r
				                   WHERE r.machine_id = x.machine_id AND r.bucket = x.target_bucket)
				WHEN '1day' THEN (SELECT sum(r.total_energy_kwh) FROM energy_readings_1hour r
				                  WHERE r.machine_id = x.machine_id AND r.bucket >= x.target_bucket
				                    AND r.bucket < ((x.target_bucket AT TIME ZONE $tz) + interval '1 day') AT TIME ZONE $tz)
			END`)
}

// targetEndSQL is the end of forecast row x's target bucket; a daily
// target's day is local to the time zone of placeholder tz.
func targetEndSQL(x, tz string) string {
	return strings.NewReplacer("x.", x+".", "$tz", tz).Replace(`CASE x.resolution
			        WHEN '15min' THEN x.target_bucket + interval '15 minutes'
			        WHEN '1hour' THEN x.target_bucket + interval '1 hour'
			        ELSE ((x.target_bucket AT TIME ZONE $tz) + interval '1 day') AT TIME ZONE $tz
			      END`)
}

var (
	// scoreAllSQL walks the key index by origin: a target is at most 7
	// days (the daily horizon, plus a DST hour) after its origin, so a
	// target at or after $3 has its origin after $3 − 8 days. Its bound is
	// $4, or when that is NULL the machine's latest origin, looked up in
	// the same statement (an InitPlan, evaluated once): no round trip of
	// its own on the hour_revised path.
	scoreAllSQL  = scoreForecastsSQL(`f.origin >= $3 - interval '8 days' AND f.origin < `+scoreAllUpTo, scoreAllUpTo)
	scoreAllUpTo = `coalesce($4::timestamptz, (SELECT max(origin) FROM energy_forecasts WHERE machine_id = $1))`
	// scoreRunSQL scores the unscored targets that end within one of the
	// hours that closed (after saveForecastsSQL: those the run did not
	// issue), each hour named by its end (an origin) in $5, in hours since
	// the Unix epoch: a target ending at e ends within the hour
	// ending at ⌈e⌉ (e rounded up to a whole hour of UTC). As for the hour
	// alone, a target counts only if it starts at most 25 hours before that
	// end (a local day, the longest target, has at most 25 hours). $3 = the
	// first origin − 25 h and $4 = the last origin bound the index range, so
	// the cost follows the run, not the forecasts stored.
	scoreRunSQL = scoreForecastsSQL(`f.actual_kwh IS NULL
			  AND f.resolution IN ('15min', '1hour', '1day') AND f.target_bucket < $4
			  AND `+closedHourSQL("f", "$2")+` = ANY ($5::bigint[])
			  AND f.target_bucket >= to_timestamp((`+closedHourSQL("f", "$2")+` - 25) * 3600)`, `$4`)
)

// closedHourSQL is the hour within which forecast row x's target ends, as
// the end of that hour in hours since the Unix epoch.
func closedHourSQL(x, tz string) string {
	return `ceil(extract(epoch FROM ` + targetEndSQL(x, tz) + `) / 3600)::bigint`
}

// ScoreForecasts records the actual energy of the machine's forecast
// targets that start at or after since and have closed by upTo (the target
// bucket ends at or before upTo; a zero upTo means the machine's latest
// forecast origin, the end of its last closed hour): from
// energy_readings_15min and energy_readings_1hour, and for daily targets the
// sum of the hours of the local day in time zone tz; actuals that late data
// changed are rewritten (the hour_revised path; the per-hour path is
// SaveForecastRun). A row is written only when its actual changes, so running
// it again changes nothing; a target without rollup rows stays unscored. It
// returns how many rows it wrote.
func (s *Store) ScoreForecasts(ctx context.Context, machineID, tz string, since, upTo time.Time) (int64, error) {
	var upToArg *time.Time // nil: the latest origin, as scoreAllSQL reads it
	if !upTo.IsZero() {
		upToArg = &upTo
	}
	// As in SaveForecastRun: the plans stay on the indexes however small
	// the table was when they were made.
	b := &pgx.Batch{}
	b.Queue(`SELECT set_config('enable_seqscan', 'off', true)`)
	var written int64
	b.Queue(scoreAllSQL, machineID, tz, since, upToArg).Exec(func(tag pgconn.CommandTag) error {
		written = tag.RowsAffected()
		return nil
	})
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return 0, fmt.Errorf("score forecasts of %s: %w", machineID, unavailable(err))
	}
	return written, nil
}

const forecastColumns = `machine_id::text, origin, target_bucket, resolution, horizon, predicted_kwh,
	predicted_kw, lower_80, upper_80, lower_95, upper_95, model, actual_kwh, issued_at, created_at`

func scanForecast(r pgx.CollectableRow) (ForecastRow, error) {
	var f ForecastRow
	err := r.Scan(&f.MachineID, &f.Origin, &f.TargetBucket, &f.Resolution, &f.Horizon, &f.PredictedKWh,
		&f.PredictedKW, &f.Lower80, &f.Upper80, &f.Lower95, &f.Upper95, &f.Model, &f.ActualKWh,
		&f.IssuedAt, &f.CreatedAt)
	return f, err
}

// LatestForecast returns the machine's forecast at resolution from its
// latest origin, by horizon; empty when none was issued.
func (s *Store) LatestForecast(ctx context.Context, machineID, resolution string) ([]ForecastRow, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+forecastColumns+` FROM energy_forecasts
		WHERE machine_id = $1 AND resolution = $2
		  AND origin = (SELECT max(origin) FROM energy_forecasts WHERE machine_id = $1 AND resolution = $2)
		ORDER BY horizon`, machineID, resolution)
	if err != nil {
		return nil, fmt.Errorf("latest forecast of %s: %w", machineID, unavailable(err))
	}
	out, err := pgx.CollectRows(rows, scanForecast)
	if err != nil {
		return nil, fmt.Errorf("latest forecast of %s: %w", machineID, unavailable(err))
	}
	return out, nil
}

// ForecastsAt returns the machine's forecast rows issued from origin at
// resolution, by horizon.
func (s *Store) ForecastsAt(ctx context.Context, machineID, resolution string, origin time.Time) ([]ForecastRow, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+forecastColumns+` FROM energy_forecasts
		WHERE machine_id = $1 AND resolution = $2 AND origin = $3 ORDER BY horizon`, machineID, resolution, origin)
	if err != nil {
		return nil, fmt.Errorf("forecasts of %s at %s: %w", machineID, origin, unavailable(err))
	}
	out, err := pgx.CollectRows(rows, scanForecast)
	if err != nil {
		return nil, fmt.Errorf("forecasts of %s at %s: %w", machineID, origin, unavailable(err))
	}
	return out, nil
}

// ForecastAccuracy is the accuracy of one machine's forecasts at one
// resolution and horizon, over scored targets: MAPE in % (actuals > 0;
// nil when there were none), bias = mean(predicted − actual) in kWh, MAE
// in kWh, and the share of actuals inside the 80 % and 95 % intervals.
type ForecastAccuracy struct {
	Resolution  string
	Horizon     int
	N           int
	MAPE        *float64
	BiasKWh     float64
	MAEKWh      float64
	Coverage80  float64
	Coverage95  float64
	FirstTarget time.Time
	LastTarget  time.Time
}

// ForecastAccuracies returns the machine's accuracy per resolution and
// horizon over the targets starting at or after since (the same formulas as
// the energy_forecast_accuracy view, over a window).
func (s *Store) ForecastAccuracies(ctx context.Context, machineID string, since time.Time) ([]ForecastAccuracy, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT resolution, horizon, count(*),
		       100 * avg(abs(actual_kwh - predicted_kwh) / actual_kwh) FILTER (WHERE actual_kwh > 0),
		       avg(predicted_kwh - actual_kwh), avg(abs(predicted_kwh - actual_kwh)),
		       avg(CASE WHEN actual_kwh BETWEEN lower_80 AND upper_80 THEN 1.0 ELSE 0.0 END)::float8,
		       avg(CASE WHEN actual_kwh BETWEEN lower_95 AND upper_95 THEN 1.0 ELSE 0.0 END)::float8,
		       min(target_bucket), max(target_bucket)
		FROM energy_forecasts
		WHERE machine_id = $1 AND actual_kwh IS NOT NULL AND target_bucket >= $2
		GROUP BY resolution, horizon
		ORDER BY CASE resolution WHEN '15min' THEN 1 WHEN '1hour' THEN 2 ELSE 3 END, horizon`, machineID, since)
	if err != nil {
		return nil, fmt.Errorf("forecast accuracy of %s: %w", machineID, unavailable(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ForecastAccuracy, error) {
		var a ForecastAccuracy
		err := r.Scan(&a.Resolution, &a.Horizon, &a.N, &a.MAPE, &a.BiasKWh, &a.MAEKWh,
			&a.Coverage80, &a.Coverage95, &a.FirstTarget, &a.LastTarget)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("forecast accuracy of %s: %w", machineID, unavailable(err))
	}
	return out, nil
}

// MaxPeakDemand15 is the largest 15-minute average power (kW) of the
// machine since since, or of the factory's machines together (the sum per
// 15-minute bucket) when factoryID is set instead of machineID. ok is false
// when there are no readings.
func (s *Store) MaxPeakDemand15(ctx context.Context, machineID, factoryID string, since time.Time) (kw float64, ok bool, err error) {
	var v *float64
	if machineID != "" {
		err = s.pool.QueryRow(ctx, `SELECT max(peak_demand_kw) FROM energy_readings_15min
			WHERE machine_id = $1 AND bucket >= $2`, machineID, since).Scan(&v)
	} else {
		err = s.pool.QueryRow(ctx, `SELECT max(kw) FROM (
			SELECT sum(r.peak_demand_kw) AS kw FROM energy_readings_15min r
			JOIN machines m ON m.id = r.machine_id
			WHERE m.factory_id = $1 AND m.is_active AND r.bucket >= $2 GROUP BY r.bucket) t`, factoryID, since).Scan(&v)
	}
	if err != nil {
		return 0, false, fmt.Errorf("max 15-minute demand: %w", unavailable(err))
	}
	if v == nil {
		return 0, false, nil
	}
	return *v, true, nil
}

// DemandPoint is a forecast average demand of one hourly bucket.
type DemandPoint struct {
	Bucket time.Time
	KW     float64
}

// FactoryDemandForecast sums the latest hourly forecasts (kW) of the
// factory's active machines per target bucket; each machine contributes the
// rows of its own latest origin, and only buckets that every contributing
// machine forecasts are returned (a partial sum would understate demand).
// It also returns how many machines contributed.
func (s *Store) FactoryDemandForecast(ctx context.Context, factoryID string) ([]DemandPoint, int, error) {
	var machines int
	err := s.pool.QueryRow(ctx, `
		SELECT count(DISTINCT f.machine_id) FROM energy_forecasts f JOIN machines m ON m.id = f.machine_id
		WHERE m.factory_id = $1 AND m.is_active AND f.resolution = '1hour'`, factoryID).Scan(&machines)
	if err != nil {
		return nil, 0, fmt.Errorf("factory demand forecast: %w", unavailable(err))
	}
	rows, err := s.pool.Query(ctx, `
		WITH latest AS (
			SELECT f.machine_id, max(f.origin) AS origin FROM energy_forecasts f
			JOIN machines m ON m.id = f.machine_id
			WHERE m.factory_id = $1 AND m.is_active AND f.resolution = '1hour'
			GROUP BY f.machine_id
		)
		SELECT f.target_bucket, sum(f.predicted_kw)
		FROM energy_forecasts f JOIN latest l ON l.machine_id = f.machine_id AND l.origin = f.origin
		WHERE f.resolution = '1hour'
		GROUP BY f.target_bucket
		HAVING count(*) = $2
		ORDER BY f.target_bucket`, factoryID, machines)
	if err != nil {
		return nil, 0, fmt.Errorf("factory demand forecast: %w", unavailable(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DemandPoint, error) {
		var b DemandPoint
		err := r.Scan(&b.Bucket, &b.KW)
		return b, err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("factory demand forecast: %w", unavailable(err))
	}
	return out, machines, nil
}

// TariffRow is an active row of energy_tariffs.
type TariffRow struct {
	Name       string
	RatePerKWh float64
	Currency   string
	TimeOfUse  bool
	StartHour  *int
	EndHour    *int
	Days       []int // nil: every day
	ValidFrom  *time.Time
	ValidTo    *time.Time
}

// FactoryTariffs returns the factory's active tariffs and its time zone; an
// unknown factory is an error wrapping ErrNotFound.
func (s *Store) FactoryTariffs(ctx context.Context, factoryID string) (tz string, tariffs []TariffRow, err error) {
	err = s.pool.QueryRow(ctx, `SELECT timezone FROM factories WHERE id = $1`, factoryID).Scan(&tz)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil, fmt.Errorf("factory %s: %w", factoryID, ErrNotFound)
	}
	if err != nil {
		return "", nil, fmt.Errorf("factory %s: %w", factoryID, unavailable(err))
	}
	rows, err := s.pool.Query(ctx, `
		SELECT name, rate_per_kwh, currency, is_time_of_use, start_hour, end_hour, applicable_days,
		       valid_from::timestamp, valid_to::timestamp
		FROM energy_tariffs WHERE factory_id = $1 AND is_active ORDER BY rate_per_kwh DESC, name`, factoryID)
	if err != nil {
		return "", nil, fmt.Errorf("tariffs of %s: %w", factoryID, unavailable(err))
	}
	tariffs, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (TariffRow, error) {
		var t TariffRow
		var days []int32
		err := r.Scan(&t.Name, &t.RatePerKWh, &t.Currency, &t.TimeOfUse, &t.StartHour, &t.EndHour,
			&days, &t.ValidFrom, &t.ValidTo)
		for _, d := range days {
			t.Days = append(t.Days, int(d))
		}
		return t, err
	})
	if err != nil {
		return "", nil, fmt.Errorf("tariffs of %s: %w", factoryID, unavailable(err))
	}
	return tz, tariffs, nil
}

// LatestScoredTarget returns the start of the machine's latest forecast
// target that has an actual; ok is false when none has.
func (s *Store) LatestScoredTarget(ctx context.Context, machineID string) (t time.Time, ok bool, err error) {
	var v *time.Time
	err = s.pool.QueryRow(ctx, `SELECT max(target_bucket) FROM energy_forecasts
		WHERE machine_id = $1 AND actual_kwh IS NOT NULL`, machineID).Scan(&v)
	if err != nil {
		return t, false, fmt.Errorf("latest scored target of %s: %w", machineID, unavailable(err))
	}
	if v == nil {
		return t, false, nil
	}
	return *v, true, nil
}

// RecentBucketEnergies returns, in one round trip, the machine's hourly
// energies in [hourFrom, to) and its 15-minute energies in [quarterFrom,
// to), oldest first (what the forecaster feeds its models while closing a
// run of hours).
func (s *Store) RecentBucketEnergies(ctx context.Context, machineID string, hourFrom, quarterFrom, to time.Time) (hours, quarters []BucketEnergy, err error) {
	rows, err := s.pool.Query(ctx, `
		SELECT true, bucket, total_energy_kwh FROM energy_readings_1hour
		WHERE machine_id = $1 AND bucket >= $2 AND bucket < $4
		UNION ALL
		SELECT false, bucket, total_energy_kwh FROM energy_readings_15min
		WHERE machine_id = $1 AND bucket >= $3 AND bucket < $4
		ORDER BY 1, 2`, machineID, hourFrom, quarterFrom, to)
	if err != nil {
		return nil, nil, fmt.Errorf("recent energies of %s: %w", machineID, unavailable(err))
	}
	defer rows.Close()
	for rows.Next() {
		var hourly bool
		var b BucketEnergy
		if err := rows.Scan(&hourly, &b.Bucket, &b.KWh); err != nil {
			return nil, nil, fmt.Errorf("recent energies of %s: %w", machineID, err)
		}
		if hourly {
			hours = append(hours, b)
		} else {
			quarters = append(quarters, b)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("recent energies of %s: %w", machineID, unavailable(err))
	}
	return hours, quarters, nil
}

// forecastsPerStatement bounds the rows of one saveForecastsSQL statement
// (the statements of a run still go in one batch): the planner costs its
// insert at about 28 a row (three index probes for the actual), and above
// PostgreSQL's default jit_above_cost of 100,000 it compiles the statement
// first — measured, 36 ms of the 249 ms a 7,238-row statement took. 1,024
// rows (some 29,000) keeps well below.
const forecastsPerStatement = 1024

// SaveForecastRun writes what closing a run of the machine's hours made
// known, in one round trip and one transaction; origins are the ends of the
// hours (whole hours), in increasing order, and rows the forecasts issued
// from them. It deletes the machine's forecasts whose target starts before
// pruneBefore (unless zero: no prune); upserts rows, with the actuals of the
// targets that had closed before they were issued (analytics_hour_state.
// closed_through) or that end within a later hour of the run; and records
// the actuals of the unscored targets issued before the run that end within
// one of its hours. That is what closing the hours one by one writes; and
// looking only there, rather than at every unscored target of the last
// days, keeps the cost independent of the forecasts already stored. A
// target without rollup rows stays unscored; data arriving for it later
// makes its hour hour_revised, and HourRevised (ScoreForecasts) records the
// actual then.
func (s *Store) SaveForecastRun(ctx context.Context, machineID, tz string, origins []time.Time, rows []ForecastRow, pruneBefore time.Time) error {
	if len(origins) == 0 {
		return nil
	}
	closed := make([]int64, len(origins))
	for i, o := range origins {
		if o.Unix()%3600 != 0 || o.Nanosecond() != 0 {
			return fmt.Errorf("save forecasts of %s: origin %s is not a whole hour", machineID, o.Format(time.RFC3339Nano))
		}
		closed[i] = o.Unix() / 3600
	}
	first, last := origins[0], origins[len(origins)-1]
	b := &pgx.Batch{}
	// Every statement below reads or writes a few rows of one machine
	// through an index. A prepared statement's generic plan is made
	// once, on its sixth execution, and kept while the table grows: in
	// a backfill that is while energy_forecasts is still empty (the
	// first runs write no forecast, too little history), and the plan
	// scans it sequentially — the scoring joined two such scans, up to
	// 4.3 s a call once the table had grown (bench backfill,
	// pg_stat_statements). Without sequential scans, for this
	// transaction only, every plan made here uses the indexes whatever
	// the table's size when it was made. Planning every execution
	// instead (plan_cache_mode = force_custom_plan, likewise for the
	// transaction) cost more than it saved: BenchmarkSaveForecastBackfill
	// -benchtime 3x, two runs each, 98 and 143 µs/row against 42 and 35.
	b.Queue(`SELECT set_config('enable_seqscan', 'off', true)`)
	if !pruneBefore.IsZero() {
		// A target before the bound has its origin before it too
		// (target_bucket >= origin): the origin bound lets the key
		// index find the rows to delete instead of walking every
		// forecast of the machine (3 ms a call in a backfill). The
		// resolutions (every one the table allows) let the latest
		// index serve as well, should a plan pick it.
		b.Queue(`DELETE FROM energy_forecasts WHERE machine_id = $1 AND origin < $2 AND target_bucket < $2
				AND resolution IN ('15min', '1hour', '1day')`, machineID, pruneBefore)
	}
	for chunk := range slices.Chunk(rows, forecastsPerStatement) {
		b.Queue(saveForecastsSQL, append(forecastArgs(chunk), tz, closed)...)
	}
	b.Queue(scoreRunSQL, machineID, tz, first.Add(-25*time.Hour), last, closed)
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("save %d forecasts of %s: %w", len(rows), machineID, unavailable(err))
	}
	return nil
}
