package simulator

// All SQL of the simulator lives in this file and training.go: loading the demo plant,
// reading machines, and writing generated telemetry.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// SeedPlant loads p into the database in one transaction. It is idempotent:
// factories are matched by name, machines by (factory, name), tariffs by
// (factory, name), carbon factors by region; a rerun changes nothing, and
// rows that already exist keep their ids. An existing active carbon factor
// of a region is adopted rather than overwritten.
func SeedPlant(ctx context.Context, pool *pgxpool.Pool, p Plant) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("seed plant: begin: %w", err)
	}
	defer tx.Rollback(ctx)
	factoryIDs := map[string]pgtype.UUID{}
	for _, f := range p.Factories {
		_, err := tx.Exec(ctx, `
			INSERT INTO factories (id, name, location, timezone, metadata)
			VALUES ($1, $2, $3, $4, jsonb_build_object('grid_region', $5::text))
			ON CONFLICT (name) DO UPDATE
			   SET location = EXCLUDED.location, timezone = EXCLUDED.timezone,
			       metadata = factories.metadata || EXCLUDED.metadata, updated_at = now()
			 WHERE (factories.location, factories.timezone, factories.metadata->>'grid_region')
			       IS DISTINCT FROM (EXCLUDED.location, EXCLUDED.timezone, $5::text)`,
			pgUUID(f.ID), f.Name, f.Location, f.Timezone, f.GridRegion)
		if err != nil {
			return fmt.Errorf("seed factory %q: %w", f.Name, err)
		}
		var id pgtype.UUID
		if err := tx.QueryRow(ctx, `SELECT id FROM factories WHERE name = $1`, f.Name).Scan(&id); err != nil {
			return fmt.Errorf("seed factory %q: read id: %w", f.Name, err)
		}
		factoryIDs[f.Name] = id
	}
	factory := func(name string) (pgtype.UUID, error) {
		id, ok := factoryIDs[name]
		if !ok {
			return id, fmt.Errorf("factory %q is not part of the plant", name)
		}
		return id, nil
	}
	for _, m := range p.Machines {
		fid, err := factory(m.Factory)
		if err != nil {
			return fmt.Errorf("seed machine %q: %w", m.Name, err)
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO machines (id, factory_id, name, type, rated_power_kw, data_interval_seconds, is_active, is_critical)
			VALUES ($1, $2, $3, $4::text::machine_type, $5, $6, true, $7)
			ON CONFLICT (factory_id, name) DO UPDATE
			   SET type = EXCLUDED.type, rated_power_kw = EXCLUDED.rated_power_kw,
			       data_interval_seconds = EXCLUDED.data_interval_seconds, is_active = true,
			       is_critical = EXCLUDED.is_critical, updated_at = now()
			 WHERE (machines.type, machines.rated_power_kw, machines.data_interval_seconds, machines.is_active, machines.is_critical)
			       IS DISTINCT FROM (EXCLUDED.type, EXCLUDED.rated_power_kw, EXCLUDED.data_interval_seconds, true, EXCLUDED.is_critical)`,
			pgUUID(m.ID), fid, m.Name, string(m.Type), m.RatedKW, int(m.Interval/time.Second), m.IsCritical)
		if err != nil {
			return fmt.Errorf("seed machine %q: %w", m.Name, err)
		}
	}
	for _, t := range p.Tariffs {
		fid, err := factory(t.Factory)
		if err != nil {
			return fmt.Errorf("seed tariff %q: %w", t.Name, err)
		}
		var start, end *int
		var days []int32
		if t.TimeOfUse {
			start, end, days = &t.StartHour, &t.EndHour, t.Days
		}
		_, err = tx.Exec(ctx, `
			UPDATE energy_tariffs
			   SET rate_per_kwh = $3, currency = $4, is_time_of_use = $5, start_hour = $6, end_hour = $7,
			       applicable_days = $8, is_active = true
			 WHERE factory_id = $1 AND name = $2
			   AND (rate_per_kwh, currency, is_time_of_use, start_hour, end_hour, applicable_days, is_active)
			       IS DISTINCT FROM ($3::float8, $4::text, $5::bool, $6::int, $7::int, $8::int[], true)`,
			fid, t.Name, t.Rate, t.Currency, t.TimeOfUse, start, end, days)
		if err != nil {
			return fmt.Errorf("seed tariff %q: %w", t.Name, err)
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO energy_tariffs (id, factory_id, name, rate_per_kwh, currency, is_time_of_use, start_hour, end_hour, applicable_days, is_active)
			SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, true
			 WHERE NOT EXISTS (SELECT 1 FROM energy_tariffs WHERE factory_id = $2 AND name = $3)`,
			pgUUID(t.ID), fid, t.Name, t.Rate, t.Currency, t.TimeOfUse, start, end, days)
		if err != nil {
			return fmt.Errorf("seed tariff %q: %w", t.Name, err)
		}
	}
	for _, c := range p.CarbonFactors {
		_, err := tx.Exec(ctx, `
			INSERT INTO carbon_factors (id, region, emission_factor_kg_co2_per_kwh, source, is_active)
			SELECT $1, $2, $3, $4, true
			 WHERE NOT EXISTS (SELECT 1 FROM carbon_factors WHERE region = $2 AND is_active)`,
			pgUUID(c.ID), c.Region, c.KgPerKWh, c.Source)
		if err != nil {
			return fmt.Errorf("seed carbon factor %q: %w", c.Region, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("seed plant: commit: %w", err)
	}
	return nil
}

// Machines loads the active machines with the given names (every active
// machine when names is empty) with their factories' sites, in the order of
// names. An unknown name is an error that lists the known ones.
func Machines(ctx context.Context, pool *pgxpool.Pool, names []string) ([]Machine, error) {
	rows, err := pool.Query(ctx, `
		SELECT m.id, m.name, m.type::text, coalesce(m.rated_power_kw, 0), m.data_interval_seconds,
		       f.name, f.timezone, coalesce(f.metadata->>'grid_region', '')
		  FROM machines m JOIN factories f ON f.id = m.factory_id
		 WHERE m.is_active
		 ORDER BY f.name, m.name`)
	if err != nil {
		return nil, fmt.Errorf("load machines: %w", err)
	}
	var all []Machine
	sites := map[string]Site{}
	for rows.Next() {
		var m Machine
		var id pgtype.UUID
		var typ, factory, tz, region string
		var interval int
		if err := rows.Scan(&id, &m.Name, &typ, &m.RatedKW, &interval, &factory, &tz, &region); err != nil {
			return nil, fmt.Errorf("load machines: %w", err)
		}
		m.ID, m.Type, m.Interval = id.Bytes, MachineType(typ), time.Duration(interval)*time.Second
		site, ok := sites[factory]
		if !ok {
			if site, err = SiteFor(factory, tz, region); err != nil {
				return nil, err
			}
			sites[factory] = site
		}
		m.Site = site
		all = append(all, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load machines: %w", err)
	}
	if len(names) == 0 {
		return all, nil
	}
	out := make([]Machine, 0, len(names))
	for _, n := range names {
		i := slices.IndexFunc(all, func(m Machine) bool { return m.Name == n })
		if i < 0 {
			known := make([]string, len(all))
			for j, m := range all {
				known[j] = m.Name
			}
			return nil, fmt.Errorf("no active machine is named %q; known machines: %s (load the demo plant with `enms-analytics seed`)", n, strings.Join(known, ", "))
		}
		out = append(out, all[i])
	}
	return out, nil
}

// LastReadings returns, per machine, the time of its latest energy reading
// in [from, to); machines without one are absent.
func LastReadings(ctx context.Context, pool *pgxpool.Pool, machines []Machine, from, to time.Time) (map[UUID]time.Time, error) {
	ids := make([]pgtype.UUID, len(machines))
	for i, m := range machines {
		ids[i] = pgUUID(m.ID)
	}
	rows, err := pool.Query(ctx, `
		SELECT m, (SELECT max(time) FROM energy_readings WHERE machine_id = m AND time >= $2 AND time < $3)
		  FROM unnest($1::uuid[]) AS m`, ids, from, to)
	if err != nil {
		return nil, fmt.Errorf("find latest readings: %w", err)
	}
	out := map[UUID]time.Time{}
	for rows.Next() {
		var id pgtype.UUID
		var t pgtype.Timestamptz
		if err := rows.Scan(&id, &t); err != nil {
			return nil, fmt.Errorf("find latest readings: %w", err)
		}
		if t.Valid {
			out[id.Bytes] = t.Time
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find latest readings: %w", err)
	}
	return out, nil
}

// Writer writes generated batches.
type Writer struct {
	pool *pgxpool.Pool
	seed uint64
}

// NewWriter returns a writer on pool; seed is recorded with the labels.
func NewWriter(pool *pgxpool.Pool, seed uint64) *Writer { return &Writer{pool: pool, seed: seed} }

// Write stores b in one transaction: first the mode transitions (upserts of
// machine_status with last_updated = the transition's time, in time order,
// so machine_status_history replays them; a row whose last_updated is newer
// is left alone), then the readings with one COPY per table, then the
// incident labels, then each machine's current status. It returns the number
// of telemetry rows written (three per reading).
func (w *Writer) Write(ctx context.Context, b *Batch) (int64, error) {
	conn, err := w.pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("write telemetry: acquire connection: %w", err)
	}
	defer conn.Release()
	if err := registerEnums(ctx, conn.Conn()); err != nil {
		return 0, err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("write telemetry: begin: %w", err)
	}
	defer tx.Rollback(ctx)

	var q pgx.Batch
	for _, t := range b.Transitions {
		queueStatus(&q, t)
	}
	if q.Len() > 0 {
		if err := tx.SendBatch(ctx, &q).Close(); err != nil {
			return 0, fmt.Errorf("write machine status transitions: %w", err)
		}
	}
	var total int64
	for _, rows := range byHour(b.Readings) {
		for _, c := range copyTables {
			n, err := tx.CopyFrom(ctx, pgx.Identifier{c.table}, c.columns, &readingSource{rows: rows, values: c.values, dst: make([]any, len(c.columns))})
			if err != nil {
				return 0, fmt.Errorf("copy %s: %w", c.table, describeCopyError(err))
			}
			total += n
		}
	}
	q = pgx.Batch{}
	seen := map[string]bool{}
	for _, inc := range b.Incidents {
		k := inc.MachineID.String() + string(inc.Type) + inc.Start.String()
		if seen[k] {
			continue
		}
		seen[k] = true
		q.Queue(`
			INSERT INTO simulator_labels (machine_id, incident_type, start_time, end_time, magnitude, description, seed)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (machine_id, incident_type, start_time) DO UPDATE
			   SET end_time = EXCLUDED.end_time, magnitude = EXCLUDED.magnitude,
			       description = EXCLUDED.description, seed = EXCLUDED.seed`,
			pgUUID(inc.MachineID), string(inc.Type), inc.Start, inc.End, inc.Magnitude, inc.Description, int64(w.seed))
	}
	if q.Len() > 0 {
		if err := tx.SendBatch(ctx, &q).Close(); err != nil {
			return 0, fmt.Errorf("write incident labels: %w", err)
		}
	}
	q = pgx.Batch{}
	for _, t := range b.Current {
		queueStatus(&q, t)
	}
	if q.Len() > 0 {
		if err := tx.SendBatch(ctx, &q).Close(); err != nil {
			return 0, fmt.Errorf("write current machine status: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("write telemetry: commit: %w", err)
	}
	return total, nil
}

func queueStatus(q *pgx.Batch, t Transition) {
	q.Queue(`
		INSERT INTO machine_status (machine_id, is_running, current_mode, current_power_kw, last_updated, last_fault_at)
		VALUES ($1, $2, $3::text::operating_mode, $4, $5, CASE WHEN $3::text = 'fault' THEN $5::timestamptz END)
		ON CONFLICT (machine_id) DO UPDATE
		   SET is_running = EXCLUDED.is_running, current_mode = EXCLUDED.current_mode,
		       current_power_kw = EXCLUDED.current_power_kw, last_updated = EXCLUDED.last_updated,
		       last_fault_at = coalesce(EXCLUDED.last_fault_at, machine_status.last_fault_at)
		 WHERE machine_status.last_updated <= EXCLUDED.last_updated`,
		pgUUID(t.MachineID), t.Running(), string(t.Mode), t.PowerKW, t.At)
}

// copyTables are the three raw tables a reading fills.
var copyTables = []struct {
	table   string
	columns []string
	values  func(r *Reading, dst []any)
}{
	{"energy_readings", energyColumns, energyValues},
	{"production_data", productionColumns, productionValues},
	{"environmental_data", environmentColumns, environmentValues},
}

// byHour splits readings into runs of one clock hour each, in hour order
// (each run keeps the batch's order). The rollup triggers close a machine's
// earlier hours when a statement brings data for a later one, and report a
// change to a closed hour as a revision; writing all three tables hour by
// hour means an hour closes only once all its rows are in, so a backfill
// produces hour_closed events and no spurious hour_revised ones.
func byHour(readings []Reading) [][]Reading {
	if len(readings) == 0 {
		return nil
	}
	sorted := slices.Clone(readings)
	slices.SortStableFunc(sorted, func(a, b Reading) int {
		return a.Time.Truncate(time.Hour).Compare(b.Time.Truncate(time.Hour))
	})
	var out [][]Reading
	start := 0
	for i := 1; i <= len(sorted); i++ {
		if i == len(sorted) || !sorted[i].Time.Truncate(time.Hour).Equal(sorted[start].Time.Truncate(time.Hour)) {
			out = append(out, sorted[start:i])
			start = i
		}
	}
	return out
}

// describeCopyError turns a duplicate-reading violation into advice.
func describeCopyError(err error) error {
	if strings.Contains(err.Error(), "23505") || strings.Contains(err.Error(), "duplicate key") {
		return fmt.Errorf("readings already exist for some machine in this period (the simulator only appends after a machine's latest reading): %w", err)
	}
	return err
}

// registerEnums makes operating_mode known to the connection: COPY's binary
// format needs the enum's type.
func registerEnums(ctx context.Context, conn *pgx.Conn) error {
	if _, ok := conn.TypeMap().TypeForName("operating_mode"); ok {
		return nil
	}
	t, err := conn.LoadType(ctx, "operating_mode")
	if err != nil {
		return fmt.Errorf("load type operating_mode: %w", err)
	}
	conn.TypeMap().RegisterType(t)
	return nil
}

// readingSource feeds one table's columns of the readings to COPY.
type readingSource struct {
	rows   []Reading
	i      int
	values func(r *Reading, dst []any)
	dst    []any
}

func (s *readingSource) Next() bool {
	s.i++
	return s.i <= len(s.rows)
}

func (s *readingSource) Values() ([]any, error) {
	s.values(&s.rows[s.i-1], s.dst)
	return s.dst, nil
}

func (s *readingSource) Err() error { return nil }

var energyColumns = []string{"time", "machine_id", "power_kw", "energy_kwh", "voltage_v", "current_a", "power_factor", "frequency_hz", "quality_score", "source"}

func energyValues(r *Reading, dst []any) {
	dst[0], dst[1], dst[2], dst[3] = r.Time, pgUUID(r.MachineID), r.PowerKW, r.EnergyKWh
	dst[4], dst[5], dst[6], dst[7] = opt(r.VoltageV), opt(r.CurrentA), opt(r.PowerFactor), opt(r.FrequencyHz)
	dst[8], dst[9] = 1.0, "simulator"
}

var productionColumns = []string{"time", "machine_id", "production_count", "production_count_good", "production_count_bad", "throughput_units_per_hour", "operating_mode", "speed_percent", "downtime_seconds", "metadata"}

func productionValues(r *Reading, dst []any) {
	dst[0], dst[1], dst[2], dst[3], dst[4] = r.Time, pgUUID(r.MachineID), r.Count, r.Good, r.Bad
	dst[5], dst[6], dst[7], dst[8] = r.ThroughputPerHour, string(r.Mode), opt(r.SpeedPercent), r.DowntimeSeconds
	dst[9] = productionMetadata(r)
}

// productionMetadata is the production row's metadata: the seconds the
// reading covers (interval_seconds: the step, which for history is coarser
// than machines.data_interval_seconds) and, where the machine processes
// material, its moisture in % (material_moisture).
func productionMetadata(r *Reading) []byte {
	b := make([]byte, 0, 64)
	b = append(b, `{"interval_seconds":`...)
	b = strconv.AppendInt(b, int64(r.Step/time.Second), 10)
	if !math.IsNaN(r.MaterialMoisture) {
		b = append(b, `,"material_moisture":`...)
		b = strconv.AppendFloat(b, r.MaterialMoisture, 'f', 4, 64)
	}
	return append(b, '}')
}

var environmentColumns = []string{"time", "machine_id", "outdoor_temp_c", "indoor_temp_c", "machine_temp_c", "outdoor_humidity_percent", "pressure_bar", "pressure_setpoint_bar", "flow_rate_m3h", "cop", "vibration_mm_s"}

func environmentValues(r *Reading, dst []any) {
	dst[0], dst[1], dst[2], dst[3] = r.Time, pgUUID(r.MachineID), opt(r.OutdoorTempC), opt(r.IndoorTempC)
	dst[4], dst[5], dst[6], dst[7] = opt(r.MachineTempC), opt(r.HumidityPercent), opt(r.PressureBar), opt(r.PressureSetpointBar)
	dst[8], dst[9], dst[10] = opt(r.FlowRateM3h), opt(r.COP), opt(r.VibrationMMS)
}

// opt is v, or NULL for a quantity the machine does not measure (NaN).
func opt(v float64) any {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return v
}

func pgUUID(u UUID) pgtype.UUID { return pgtype.UUID{Bytes: u, Valid: true} }

// ErrNoMachines is returned when there is nothing to simulate.
var ErrNoMachines = errors.New("no machines to simulate; load the demo plant with `enms-analytics seed` or name machines that exist")
