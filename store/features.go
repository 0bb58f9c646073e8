package store

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// queryer is what a pool and a transaction have in common.
type queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// FeatureHour is one machine-hour as the rollups and the status history
// describe it: the facts from which baseline features and the exclusion of
// abnormal hours are decided. A driver the machine did not report in the
// hour is NaN, never zero.
type FeatureHour struct {
	Hour      time.Time
	EnergyKWh float64
	// Drivers, NaN when not reported.
	ProductionCount     float64 // total_production_count (NaN: no production rollup row)
	OutdoorTempC        float64 // avg_outdoor_temp_c
	PressureBar         float64 // avg_pressure_bar
	MaterialMoisturePct float64 // avg_material_moisture
	// ProductionRunningShare is running_seconds over the seconds of every
	// mode in production_data_1hour; NaN when the hour has no mode readings.
	ProductionRunningShare float64
	// DominantMode is the production rollup's dominant_mode ("" when none).
	DominantMode string
	// HistoryRunningSeconds is machine_running_seconds(machine, hour): seconds
	// of the hour the status history says the machine ran (unknown counts as
	// running).
	HistoryRunningSeconds float64
	// AbnormalSeconds are the seconds of the hour the status history has the
	// machine in maintenance, fault or offline.
	AbnormalSeconds float64
}

// featureHoursSQL reads the window's hours in one pass: the status history
// intervals overlapping the window are read once and split over the hours
// (rather than calling machine_running_seconds per hour, which costs a
// subquery per row). The running seconds follow machine_running_seconds
// exactly: running means is_running and a mode other than maintenance,
// fault or offline, and time the history does not cover counts as running
// (TestFeatureHoursMatchStatusFunctions checks the two agree).
const featureHoursSQL = `
WITH e AS (
    SELECT bucket, total_energy_kwh
      FROM energy_readings_1hour
     WHERE machine_id = $1 AND bucket >= $2 AND bucket < $3 AND reading_count > 0
), h AS (
    SELECT valid_from, coalesce(valid_to, 'infinity') AS valid_to,
           NOT (is_running AND mode NOT IN ('maintenance', 'fault', 'offline')) AS stopped,
           mode IN ('maintenance', 'fault', 'offline') AS abnormal
      FROM machine_status_history
     WHERE machine_id = $1 AND valid_from < $3 + interval '1 hour' AND (valid_to IS NULL OR valid_to > $2)
), s AS (
    SELECT e.bucket,
           coalesce(sum(extract(epoch FROM least(h.valid_to, e.bucket + interval '1 hour') - greatest(h.valid_from, e.bucket)))
                    FILTER (WHERE h.stopped), 0)::double precision AS stopped_seconds,
           coalesce(sum(extract(epoch FROM least(h.valid_to, e.bucket + interval '1 hour') - greatest(h.valid_from, e.bucket)))
                    FILTER (WHERE h.abnormal), 0)::double precision AS abnormal_seconds
      FROM e JOIN h ON h.valid_from < e.bucket + interval '1 hour' AND h.valid_to > e.bucket
     GROUP BY e.bucket
)
SELECT e.bucket,
       e.total_energy_kwh,
       p.total_production_count::double precision,
       env.avg_outdoor_temp_c,
       env.avg_pressure_bar,
       p.avg_material_moisture,
       p.running_seconds / nullif(p.running_seconds + p.idle_seconds + p.maintenance_seconds
                                  + p.fault_seconds + p.offline_seconds, 0),
       coalesce(p.dominant_mode::text, ''),
       3600 - coalesce(s.stopped_seconds, 0),
       coalesce(s.abnormal_seconds, 0)
  FROM e
  LEFT JOIN s ON s.bucket = e.bucket
  LEFT JOIN production_data_1hour p ON p.machine_id = $1 AND p.bucket = e.bucket
  LEFT JOIN environmental_data_1hour env ON env.machine_id = $1 AND env.bucket = e.bucket
 ORDER BY e.bucket`

// FeatureHours returns the machine's hours in [start, end) that have energy
// readings, in time order.
func (s *Store) FeatureHours(ctx context.Context, machineID string, start, end time.Time) ([]FeatureHour, error) {
	return featureHours(ctx, s.pool, machineID, start, end)
}

func featureHours(ctx context.Context, q queryer, machineID string, start, end time.Time) ([]FeatureHour, error) {
	rows, err := q.Query(ctx, featureHoursSQL, machineID, start, end)
	if err != nil {
		return nil, fmt.Errorf("query feature hours: %w", unavailable(err))
	}
	return collectFeatureHours(rows)
}

func collectFeatureHours(rows pgx.Rows) ([]FeatureHour, error) {
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (FeatureHour, error) {
		var h FeatureHour
		var prod, temp, press, moist, share *float64
		err := r.Scan(&h.Hour, &h.EnergyKWh, &prod, &temp, &press, &moist, &share,
			&h.DominantMode, &h.HistoryRunningSeconds, &h.AbnormalSeconds)
		h.ProductionCount, h.OutdoorTempC, h.PressureBar = orNaN(prod), orNaN(temp), orNaN(press)
		h.MaterialMoisturePct, h.ProductionRunningShare = orNaN(moist), orNaN(share)
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("read feature hours: %w", unavailable(err))
	}
	return out, nil
}

func orNaN(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}
