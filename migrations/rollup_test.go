package migrations_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/enms/enms-analytics/internal/testdb"
)

// plant creates one factory and a machine per sampling interval (seconds)
// and returns the machine ids in the same order.
func plant(t testing.TB, pool *pgxpool.Pool, intervals ...int) []string {
	t.Helper()
	ctx := context.Background()
	var factory string
	if err := pool.QueryRow(ctx, `INSERT INTO factories (name) VALUES ('Test Plant') RETURNING id::text`).Scan(&factory); err != nil {
		t.Fatalf("create factory: %v", err)
	}
	ids := make([]string, len(intervals))
	for i, iv := range intervals {
		err := pool.QueryRow(ctx, `INSERT INTO machines (factory_id, name, type, data_interval_seconds)
			VALUES ($1, $2, 'compressor', $3) RETURNING id::text`, factory, fmt.Sprintf("M-%d", i), iv).Scan(&ids[i])
		if err != nil {
			t.Fatalf("create machine: %v", err)
		}
	}
	return ids
}

// poolInZone opens a pool on url whose sessions use the given TimeZone, so a
// test can show that bucket boundaries do not follow the session's zone.
func poolInZone(t testing.TB, url, zone string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["timezone"] = zone
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// rawTable describes one raw telemetry table for the generators below: its
// columns (time and machine_id first) and how to draw a random row.
type rawTable struct {
	name string
	cols []string
	// gen draws the values after time and machine_id for a machine sampling
	// every interval seconds.
	gen func(r *rand.Rand, interval int) []any
}

// maybe returns v, or nil with probability p (a NULL column).
func maybe(r *rand.Rand, p float64, v float64) any {
	if r.Float64() < p {
		return nil
	}
	return v
}

// Every generated number is a small multiple of a power of two, so every sum
// over it is exact in binary floating point whatever the order of addition:
// sums can then be compared exactly, not within a tolerance. Power is
// k·(225/16)/interval kW, so that the energy integrated from it,
// power·interval/3600 = k/256 kWh, is exact too (225/16/3600 = 1/256).
var rawTables = []rawTable{
	{
		name: "energy_readings",
		cols: []string{"time", "machine_id", "power_kw", "energy_kwh", "voltage_v", "current_a", "power_factor"},
		gen: func(r *rand.Rand, interval int) []any {
			power := float64(r.Intn(10*interval+1)) * 225 / 16 / float64(interval)
			var energy any // a third metered, a third NULL, a third 0 (both mean: integrate power)
			switch r.Intn(3) {
			case 0:
				energy = float64(1+r.Intn(4096)) / 1024
			case 1:
				energy = 0.0
			}
			return []any{power, energy,
				maybe(r, 0.2, 380+float64(r.Intn(400))/8),
				maybe(r, 0.2, float64(r.Intn(4000))/16),
				maybe(r, 0.2, float64(700+r.Intn(325))/1024)}
		},
	},
	{
		name: "production_data",
		cols: []string{"time", "machine_id", "production_count", "production_count_good", "production_count_bad",
			"throughput_units_per_hour", "operating_mode", "speed_percent", "downtime_seconds", "metadata"},
		gen: func(r *rand.Rand, interval int) []any {
			var count, good, bad any
			if r.Intn(6) > 0 {
				n := r.Intn(21)
				g := r.Intn(n + 1)
				count, good, bad = int64(n), int64(g), int64(n-g)
			}
			modes := []string{"running", "running", "running", "idle", "maintenance", "fault", "offline"}
			var mode any
			if r.Intn(8) > 0 {
				mode = modes[r.Intn(len(modes))]
			}
			var meta string
			switch r.Intn(4) {
			case 0:
				meta = `{}`
			case 1:
				meta = `{"material_moisture": "n/a"}` // not a number: ignored
			default:
				meta = fmt.Sprintf(`{"material_moisture": %g}`, float64(r.Intn(400))/16)
			}
			return []any{count, good, bad, maybe(r, 0.2, float64(r.Intn(800))/4), mode,
				maybe(r, 0.2, float64(r.Intn(800))/8), maybe(r, 0.3, float64(r.Intn(2*interval+1))/2), meta}
		},
	},
	{
		name: "environmental_data",
		cols: []string{"time", "machine_id", "outdoor_temp_c", "indoor_temp_c", "machine_temp_c",
			"outdoor_humidity_percent", "pressure_bar", "pressure_setpoint_bar", "flow_rate_m3h", "cop", "vibration_mm_s"},
		gen: func(r *rand.Rand, interval int) []any {
			v := make([]any, 9)
			for i := range v {
				v[i] = maybe(r, 0.15, float64(r.Intn(1000))/16-10)
			}
			return v
		},
	},
}

// reading is one raw row: table index, key and values.
type reading struct {
	table   int
	machine string
	at      time.Time
	vals    []any // after time and machine_id
}

func (rd reading) key() string {
	return fmt.Sprintf("%d/%s/%d", rd.table, rd.machine, rd.at.UnixNano())
}

func (rd reading) row() []any { return append([]any{rd.at, rd.machine}, rd.vals...) }

// insertRows writes rows (all of one table) in one statement; suffix is
// appended (an ON CONFLICT clause).
func insertRows(ctx context.Context, db interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, table int, rows []reading, suffix string) error {
	tb := rawTables[table]
	var sb strings.Builder
	args := make([]any, 0, len(rows)*len(tb.cols))
	fmt.Fprintf(&sb, "INSERT INTO %s (%s) VALUES ", tb.name, strings.Join(tb.cols, ", "))
	for i, rd := range rows {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("(")
		for j, v := range rd.row() {
			if j > 0 {
				sb.WriteString(", ")
			}
			args = append(args, v)
			fmt.Fprintf(&sb, "$%d", len(args))
			if tb.cols[j] == "metadata" {
				sb.WriteString("::jsonb")
			}
			if tb.cols[j] == "operating_mode" {
				sb.WriteString("::operating_mode")
			}
		}
		sb.WriteString(")")
	}
	sb.WriteString(" " + suffix)
	_, err := db.Exec(ctx, sb.String(), args...)
	return err
}

// upsertClause is ON CONFLICT … DO UPDATE setting every value column.
func upsertClause(table int) string {
	var sets []string
	for _, c := range rawTables[table].cols[2:] {
		sets = append(sets, fmt.Sprintf("%s = excluded.%s", c, c))
	}
	return "ON CONFLICT (machine_id, time) DO UPDATE SET " + strings.Join(sets, ", ")
}

func copyRows(ctx context.Context, pool *pgxpool.Pool, table int, rows []reading) error {
	src := make([][]any, len(rows))
	for i, rd := range rows {
		src[i] = rd.row()
		for j, c := range rawTables[table].cols {
			if c == "metadata" {
				src[i][j] = []byte(src[i][j].(string))
			}
		}
	}
	_, err := pool.CopyFrom(ctx, pgx.Identifier{rawTables[table].name}, rawTables[table].cols, pgx.CopyFromRows(src))
	return err
}

// TestRollupsEqualGroupBy is the property test of the rollup triggers: random
// readings of machines sampling every 1 s, 10 s and 30 s, across hour and
// 15-minute boundaries, are written in shuffled batches (late readings), by
// multi-row INSERT, COPY, INSERT … ON CONFLICT DO NOTHING and DO UPDATE
// (re-sent readings, some with changed values), then changed by UPDATEs
// (values and times, across buckets) and DELETEs. After the writes, after
// the changes and after rollup_rebuild(), every row of the four rollups must equal a direct
// GROUP BY over the raw tables: counts, sums, minima and maxima exactly,
// averages within 1e-9 relative. The writer's session runs in Asia/Kolkata
// (UTC+5:30): buckets must still be UTC hours. Seeds are fixed so a failure
// reproduces.
func TestRollupsEqualGroupBy(t *testing.T) {
	t.Parallel()
	for _, seed := range []int64{1, 2, 3} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			runRollupProperty(t, seed)
		})
	}
}

func runRollupProperty(t *testing.T, seed int64) {
	ctx := context.Background()
	url := testdb.URL(t)
	pool := poolInZone(t, url, "Asia/Kolkata")
	intervals := []int{1, 10, 30}
	machines := plant(t, pool, intervals...)
	r := rand.New(rand.NewSource(seed))

	// 10:50 to 13:10 UTC: two whole hours, two partial ones, and the
	// 15-minute boundaries inside them. Of the 8,400 one-second slots 1,200
	// are used, of the 10 s slots 500, of the 30 s slots all 280.
	start := time.Date(2026, 3, 2, 10, 50, 0, 0, time.UTC)
	const window = 140 * 60
	perMachine := []int{1200, 500, 280}
	var all []reading
	for ti := range rawTables {
		for mi, m := range machines {
			slots := r.Perm(window / intervals[mi])[:perMachine[mi]]
			for _, s := range slots {
				at := start.Add(time.Duration(s*intervals[mi]) * time.Second)
				all = append(all, reading{ti, m, at, rawTables[ti].gen(r, intervals[mi])})
			}
		}
	}
	r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	interval := map[string]int{}
	for i, m := range machines {
		interval[m] = intervals[i]
	}

	// Phase 1: new readings in shuffled batches of 1–300 rows, interleaved
	// with re-sends of readings already written.
	var sent []reading
	sentKey := map[string]int{} // key → index in sent
	for len(all) > 0 {
		if len(sent) > 0 && r.Intn(4) == 0 {
			resend(t, ctx, pool, r, sent, sentKey, interval)
			continue
		}
		table := all[0].table
		n := 1 + r.Intn(300)
		var batch []reading
		rest := all[:0]
		for _, rd := range all {
			if rd.table == table && len(batch) < n {
				batch = append(batch, rd)
			} else {
				rest = append(rest, rd)
			}
		}
		all = rest
		fresh := batch
		var err error
		switch r.Intn(4) {
		case 0:
			err = insertRows(ctx, pool, table, batch, "")
		case 1:
			err = copyRows(ctx, pool, table, batch)
		case 2:
			err = insertRows(ctx, pool, table, batch, "ON CONFLICT (machine_id, time) DO NOTHING")
		case 3:
			// New readings and changed re-sends in one upsert: the statement
			// fires both the UPDATE and the INSERT trigger.
			batch = append(batch, changedResends(r, sent, sentKey, table, interval)...)
			err = insertRows(ctx, pool, table, batch, upsertClause(table))
		}
		if err != nil {
			t.Fatalf("write %d rows into %s: %v", len(batch), rawTables[table].name, err)
		}
		for _, rd := range fresh {
			sentKey[rd.key()] = len(sent)
			sent = append(sent, rd)
		}
	}
	checkRollups(t, pool, "after inserts and re-sends")

	// Phase 2: UPDATEs of values and of times (moving readings into other
	// buckets), an UPDATE that changes nothing the rollups read, DELETEs.
	tmin := start.Add(time.Duration(r.Intn(window/2)) * time.Second)
	tmax := tmin.Add(time.Duration(600+r.Intn(3600)) * time.Second)
	for _, m := range machines {
		half := time.Duration(interval[m]) * time.Second / 2
		stmts := []struct {
			sql  string
			args []any
		}{
			{`UPDATE energy_readings SET power_kw = power_kw * 2, energy_kwh = NULL WHERE machine_id = $1 AND time >= $2 AND time < $3`, []any{m, tmin, tmax}},
			{`UPDATE energy_readings SET source = 'relabelled', metadata = '{"x": 1}' WHERE machine_id = $1`, []any{m}},
			{`UPDATE production_data SET operating_mode = 'fault', production_count = production_count + 1 WHERE machine_id = $1 AND time >= $2 AND time < $3`, []any{m, tmin, tmax}},
			{`UPDATE environmental_data SET pressure_bar = NULL, outdoor_temp_c = outdoor_temp_c + 1 WHERE machine_id = $1 AND time >= $2 AND time < $3`, []any{m, tmin, tmax}},
			// Half an interval off the sampling grid cannot collide with another reading.
			{`UPDATE energy_readings SET time = time + $4::interval WHERE machine_id = $1 AND time >= $2 AND time < $3`, []any{m, tmin.Add(-20 * time.Minute), tmin, half}},
			{`UPDATE production_data SET time = time + $4::interval WHERE machine_id = $1 AND time >= $2 AND time < $3`, []any{m, tmax, tmax.Add(20 * time.Minute), half}},
			{`UPDATE environmental_data SET time = time + $4::interval WHERE machine_id = $1 AND time >= $2 AND time < $3`, []any{m, tmin, tmax, half}},
			{`DELETE FROM energy_readings WHERE machine_id = $1 AND time >= $2 AND time < $3`, []any{m, tmax, tmax.Add(10 * time.Minute)}},
			{`DELETE FROM production_data WHERE machine_id = $1 AND time >= $2 AND time < $3`, []any{m, tmin, tmin.Add(7 * time.Minute)}},
			{`DELETE FROM environmental_data WHERE machine_id = $1 AND time >= $2 AND time < $3`, []any{m, start, start.Add(13 * time.Minute)}},
		}
		for _, s := range stmts {
			if _, err := pool.Exec(ctx, s.sql, s.args...); err != nil {
				t.Fatalf("%s: %v", s.sql, err)
			}
		}
	}
	checkRollups(t, pool, "after updates and deletes")

	// The operator's rebuild (also run for adopted data) gives the same rows.
	if _, err := pool.Exec(ctx, `SELECT rollup_rebuild()`); err != nil {
		t.Fatalf("rollup_rebuild: %v", err)
	}
	checkRollups(t, pool, "after rollup_rebuild()")
}

// resend writes 1–50 readings that were written before again, in one
// statement: unchanged with DO NOTHING or DO UPDATE, or with new values with
// DO UPDATE.
func resend(t *testing.T, ctx context.Context, pool *pgxpool.Pool, r *rand.Rand, sent []reading, sentKey map[string]int, interval map[string]int) {
	t.Helper()
	table := sent[r.Intn(len(sent))].table
	seen := map[string]bool{}
	var batch []reading
	for range 1 + r.Intn(50) {
		rd := sent[r.Intn(len(sent))]
		if rd.table != table || seen[rd.key()] {
			continue
		}
		seen[rd.key()] = true
		batch = append(batch, rd)
	}
	if len(batch) == 0 {
		return
	}
	suffix := "ON CONFLICT (machine_id, time) DO NOTHING"
	switch r.Intn(3) {
	case 1:
		suffix = upsertClause(table)
	case 2:
		suffix = upsertClause(table)
		for i := range batch {
			batch[i].vals = rawTables[table].gen(r, interval[batch[i].machine])
			sent[sentKey[batch[i].key()]] = batch[i]
		}
	}
	if err := insertRows(ctx, pool, table, batch, suffix); err != nil {
		t.Fatalf("re-send %d rows into %s: %v", len(batch), rawTables[table].name, err)
	}
}

// changedResends picks up to 20 distinct readings of table already written
// and gives them new values (recorded in sent).
func changedResends(r *rand.Rand, sent []reading, sentKey map[string]int, table int, interval map[string]int) []reading {
	seen := map[string]bool{}
	var out []reading
	for range 20 {
		if len(sent) == 0 {
			break
		}
		rd := sent[r.Intn(len(sent))]
		if rd.table != table || seen[rd.key()] {
			continue
		}
		seen[rd.key()] = true
		rd.vals = rawTables[table].gen(r, interval[rd.machine])
		sent[sentKey[rd.key()]] = rd
		out = append(out, rd)
	}
	return out
}

// rollupCheck is one rollup and the direct GROUP BY it must equal. want
// selects machine_id, bucket and then exact and approx columns in that order.
type rollupCheck struct {
	table  string
	exact  []string // counts, sums, minima, maxima, modes, times: equal
	approx []string // averages: within 1e-9 relative
	want   string
}

// Buckets in the reference queries come from the epoch (seconds since
// 1970-01-01 00:00 UTC), independent of the implementation's date_bin.
var rollupChecks = []rollupCheck{
	{
		table: "energy_readings_15min",
		exact: []string{"reading_count", "sum_power_kw", "min_power_kw", "max_power_kw", "total_energy_kwh",
			"sum_power_factor", "power_factor_count", "sum_voltage_v", "voltage_count", "sum_current_a", "current_count"},
		approx: []string{"avg_power_kw", "peak_demand_kw", "avg_power_factor", "avg_voltage_v", "avg_current_a"},
		want: `SELECT e.machine_id, to_timestamp(floor(extract(epoch FROM e.time) / 900) * 900) AS bucket,
			count(*), sum(e.power_kw), min(e.power_kw), max(e.power_kw),
			sum(CASE WHEN e.energy_kwh > 0 THEN e.energy_kwh ELSE e.power_kw * m.data_interval_seconds / 3600.0 END),
			coalesce(sum(e.power_factor), 0), count(e.power_factor), coalesce(sum(e.voltage_v), 0), count(e.voltage_v),
			coalesce(sum(e.current_a), 0), count(e.current_a),
			avg(e.power_kw), avg(e.power_kw), avg(e.power_factor), avg(e.voltage_v), avg(e.current_a)
			FROM energy_readings e JOIN machines m ON m.id = e.machine_id GROUP BY 1, 2`,
	},
	{
		table: "energy_readings_1hour",
		exact: []string{"reading_count", "sum_power_kw", "min_power_kw", "max_power_kw", "total_energy_kwh",
			"sum_power_factor", "power_factor_count", "sum_voltage_v", "voltage_count", "sum_current_a", "current_count",
			"peak_demand_at"},
		approx: []string{"avg_power_kw", "peak_demand_kw", "avg_power_factor", "avg_voltage_v", "avg_current_a"},
		// peak: the largest 15-minute average power of the hour, the
		// earliest such quarter on a tie.
		want: `WITH q AS (
				SELECT machine_id, to_timestamp(floor(extract(epoch FROM time) / 900) * 900) AS quarter, avg(power_kw) AS kw
				FROM energy_readings GROUP BY 1, 2),
			pk AS (
				SELECT DISTINCT ON (machine_id, h) machine_id, to_timestamp(floor(extract(epoch FROM quarter) / 3600) * 3600) AS h, kw, quarter
				FROM q ORDER BY machine_id, h, kw DESC, quarter)
			SELECT e.machine_id, to_timestamp(floor(extract(epoch FROM e.time) / 3600) * 3600) AS bucket,
			count(*), sum(e.power_kw), min(e.power_kw), max(e.power_kw),
			sum(CASE WHEN e.energy_kwh > 0 THEN e.energy_kwh ELSE e.power_kw * m.data_interval_seconds / 3600.0 END),
			coalesce(sum(e.power_factor), 0), count(e.power_factor), coalesce(sum(e.voltage_v), 0), count(e.voltage_v),
			coalesce(sum(e.current_a), 0), count(e.current_a),
			min(pk.quarter),
			avg(e.power_kw), min(pk.kw), avg(e.power_factor), avg(e.voltage_v), avg(e.current_a)
			FROM energy_readings e JOIN machines m ON m.id = e.machine_id
			JOIN pk ON pk.machine_id = e.machine_id AND pk.h = to_timestamp(floor(extract(epoch FROM e.time) / 3600) * 3600)
			GROUP BY 1, 2`,
	},
	{
		table: "production_data_1hour",
		exact: []string{"reading_count", "total_production_count", "total_production_count_good", "total_production_count_bad",
			"sum_throughput", "throughput_count", "sum_speed_percent", "speed_count",
			"running_seconds", "idle_seconds", "maintenance_seconds", "fault_seconds", "offline_seconds", "dominant_mode",
			"total_downtime_seconds", "sum_material_moisture", "material_moisture_count"},
		approx: []string{"avg_throughput", "avg_speed_percent", "avg_material_moisture"},
		// Mode seconds: readings in the mode × the machine's interval.
		// Dominant: most seconds; ties go to the worse state.
		want: `WITH g AS (
				SELECT p.machine_id, to_timestamp(floor(extract(epoch FROM p.time) / 3600) * 3600) AS bucket,
				count(*) AS n, coalesce(sum(p.production_count), 0)::bigint AS c, coalesce(sum(p.production_count_good), 0)::bigint AS cg,
				coalesce(sum(p.production_count_bad), 0)::bigint AS cb,
				coalesce(sum(p.throughput_units_per_hour), 0) AS st, count(p.throughput_units_per_hour) AS nt,
				coalesce(sum(p.speed_percent), 0) AS ss, count(p.speed_percent) AS ns,
				(count(*) FILTER (WHERE p.operating_mode = 'running') * min(m.data_interval_seconds))::float8 AS running,
				(count(*) FILTER (WHERE p.operating_mode = 'idle') * min(m.data_interval_seconds))::float8 AS idle,
				(count(*) FILTER (WHERE p.operating_mode = 'maintenance') * min(m.data_interval_seconds))::float8 AS maintenance,
				(count(*) FILTER (WHERE p.operating_mode = 'fault') * min(m.data_interval_seconds))::float8 AS fault,
				(count(*) FILTER (WHERE p.operating_mode = 'offline') * min(m.data_interval_seconds))::float8 AS offline,
				coalesce(sum(p.downtime_seconds), 0) AS dt,
				coalesce(sum((p.metadata->>'material_moisture')::float8) FILTER (WHERE jsonb_typeof(p.metadata->'material_moisture') = 'number'), 0) AS sm,
				count(*) FILTER (WHERE jsonb_typeof(p.metadata->'material_moisture') = 'number') AS nm,
				avg(p.throughput_units_per_hour) AS at, avg(p.speed_percent) AS asp,
				avg((p.metadata->>'material_moisture')::float8) FILTER (WHERE jsonb_typeof(p.metadata->'material_moisture') = 'number') AS am
				FROM production_data p JOIN machines m ON m.id = p.machine_id GROUP BY 1, 2)
			SELECT machine_id, bucket, n, c, cg, cb, st, nt, ss, ns, running, idle, maintenance, fault, offline,
				(SELECT v.mode FROM (VALUES ('fault', fault, 1), ('maintenance', maintenance, 2), ('offline', offline, 3),
					('idle', idle, 4), ('running', running, 5)) AS v (mode, secs, rank)
				 WHERE secs > 0 ORDER BY secs DESC, rank LIMIT 1),
				dt, sm, nm, at, asp, am
			FROM g`,
	},
	{
		table: "environmental_data_1hour",
		exact: []string{"reading_count",
			"sum_outdoor_temp_c", "outdoor_temp_count", "min_outdoor_temp_c", "max_outdoor_temp_c",
			"sum_indoor_temp_c", "indoor_temp_count", "sum_machine_temp_c", "machine_temp_count", "max_machine_temp_c",
			"sum_humidity_percent", "humidity_count", "sum_pressure_bar", "pressure_count", "min_pressure_bar", "max_pressure_bar",
			"sum_pressure_setpoint_bar", "pressure_setpoint_count", "sum_flow_rate_m3h", "flow_rate_count",
			"sum_cop", "cop_count", "sum_vibration_mm_s", "vibration_count", "max_vibration_mm_s"},
		approx: []string{"avg_outdoor_temp_c", "avg_indoor_temp_c", "avg_machine_temp_c", "avg_humidity_percent",
			"avg_pressure_bar", "avg_pressure_setpoint_bar", "avg_flow_rate_m3h", "avg_cop", "avg_vibration_mm_s"},
		want: `SELECT machine_id, to_timestamp(floor(extract(epoch FROM time) / 3600) * 3600) AS bucket, count(*),
			coalesce(sum(outdoor_temp_c), 0), count(outdoor_temp_c), min(outdoor_temp_c), max(outdoor_temp_c),
			coalesce(sum(indoor_temp_c), 0), count(indoor_temp_c), coalesce(sum(machine_temp_c), 0), count(machine_temp_c), max(machine_temp_c),
			coalesce(sum(outdoor_humidity_percent), 0), count(outdoor_humidity_percent),
			coalesce(sum(pressure_bar), 0), count(pressure_bar), min(pressure_bar), max(pressure_bar),
			coalesce(sum(pressure_setpoint_bar), 0), count(pressure_setpoint_bar), coalesce(sum(flow_rate_m3h), 0), count(flow_rate_m3h),
			coalesce(sum(cop), 0), count(cop), coalesce(sum(vibration_mm_s), 0), count(vibration_mm_s), max(vibration_mm_s),
			avg(outdoor_temp_c), avg(indoor_temp_c), avg(machine_temp_c), avg(outdoor_humidity_percent), avg(pressure_bar),
			avg(pressure_setpoint_bar), avg(flow_rate_m3h), avg(cop), avg(vibration_mm_s)
			FROM environmental_data GROUP BY 1, 2`,
	},
}

// checkRollups compares every rollup with its direct GROUP BY.
func checkRollups(t *testing.T, pool *pgxpool.Pool, when string) {
	t.Helper()
	for _, c := range rollupChecks {
		cols := append(append([]string{}, c.exact...), c.approx...)
		got := fetchRows(t, pool, fmt.Sprintf("SELECT machine_id, bucket, %s FROM %s", strings.Join(cols, ", "), c.table))
		want := fetchRows(t, pool, c.want)
		if len(want) == 0 {
			t.Fatalf("%s: %s: the reference query found no rows; the test wrote nothing", when, c.table)
		}
		for k, w := range want {
			g, ok := got[k]
			if !ok {
				t.Errorf("%s: %s has no row for %s", when, c.table, k)
				continue
			}
			for i, col := range cols {
				if !sameValue(g[i], w[i], i >= len(c.exact)) {
					t.Errorf("%s: %s %s: %s = %v, GROUP BY gives %v", when, c.table, k, col, g[i], w[i])
				}
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("%s: %s has a row for %s, which has no raw readings", when, c.table, k)
			}
		}
	}
}

// fetchRows runs a query whose first two columns are machine_id and bucket
// and returns the other columns keyed by "machine bucket".
func fetchRows(t *testing.T, pool *pgxpool.Pool, sql string) map[string][]any {
	t.Helper()
	rows, err := pool.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	out := map[string][]any{}
	for rows.Next() {
		v, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		key := fmt.Sprintf("%x %s", v[0], v[1].(time.Time).UTC().Format(time.RFC3339))
		out[key] = v[2:]
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

func sameValue(got, want any, approx bool) bool {
	if got == nil || want == nil {
		return got == nil && want == nil
	}
	switch w := want.(type) {
	case float64:
		g, ok := got.(float64)
		if !ok {
			return false
		}
		if approx {
			return math.Abs(g-w) <= 1e-9*math.Max(math.Abs(w), 1e-300)
		}
		return g == w
	case int64:
		g, ok := got.(int64)
		return ok && g == w
	case time.Time:
		g, ok := got.(time.Time)
		return ok && g.Equal(w)
	default:
		return fmt.Sprint(got) == fmt.Sprint(want)
	}
}

// TestRollupsIntegratePowerOverTheInterval: a machine sampling every 30 s at
// a constant 120 kW for a whole hour, without energy_kwh, used 120 kWh
// (120 readings × 120 kW × 30 s / 3600 s/h), not SUM(power)/3600 = 4 kWh; a
// metered energy_kwh is taken as it is, and 0 counts as missing.
func TestRollupsIntegratePowerOverTheInterval(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	m := plant(t, pool, 30)[0]
	_, err := pool.Exec(ctx, `INSERT INTO energy_readings (time, machine_id, power_kw, energy_kwh)
		SELECT '2026-01-05T08:00:00Z'::timestamptz + i * interval '30 seconds', $1, 120,
		       CASE WHEN i = 0 THEN 0 WHEN i = 1 THEN 2.5 END
		FROM generate_series(0, 119) AS i`, m)
	if err != nil {
		t.Fatal(err)
	}
	var energy, peak float64
	var n int64
	var peakAt time.Time
	err = pool.QueryRow(ctx, `SELECT total_energy_kwh, reading_count, peak_demand_kw, peak_demand_at
		FROM energy_readings_1hour WHERE machine_id = $1`, m).Scan(&energy, &n, &peak, &peakAt)
	if err != nil {
		t.Fatal(err)
	}
	// 119 integrated readings × 1 kWh (120 kW × 30 s) + 1 metered 2.5 kWh.
	if want := 119*1.0 + 2.5; n != 120 || energy != want {
		t.Errorf("hour: %d readings, %v kWh; want 120 readings, %v kWh", n, energy, want)
	}
	// Every quarter averages 120 kW: the peak is 120 kW, at the first quarter.
	if peak != 120 || !peakAt.Equal(time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)) {
		t.Errorf("peak demand %v kW at %v; want 120 kW at 08:00Z", peak, peakAt)
	}
}

// TestDominantModeTiesGoToTheWorseState: an hour split evenly between
// running and fault is a fault hour; maintenance beats offline beats idle.
func TestDominantModeTiesGoToTheWorseState(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	m := plant(t, pool, 60)[0]
	// Hour 0: 30 running, 30 fault. Hour 1: 20 idle, 20 offline, 20 maintenance.
	// Hour 2: 31 running, 29 fault.
	_, err := pool.Exec(ctx, `INSERT INTO production_data (time, machine_id, operating_mode)
		SELECT '2026-01-05T00:00:00Z'::timestamptz + i * interval '1 minute', $1,
		  (CASE WHEN i < 60 THEN (CASE WHEN i % 2 = 0 THEN 'running' ELSE 'fault' END)
		        WHEN i < 120 THEN (ARRAY['idle', 'offline', 'maintenance'])[i % 3 + 1]
		        ELSE (CASE WHEN i < 151 THEN 'running' ELSE 'fault' END) END)::operating_mode
		FROM generate_series(0, 179) AS i`, m)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `SELECT dominant_mode::text, running_seconds, fault_seconds FROM production_data_1hour
		WHERE machine_id = $1 ORDER BY bucket`, m)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var mode string
		var run, fault float64
		if err := rows.Scan(&mode, &run, &fault); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %g/%g", mode, run, fault))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// Seconds: 30 readings × 60 s = 1800; 31 × 60 = 1860; 29 × 60 = 1740.
	want := []string{"fault 1800/1800", "maintenance 0/0", "running 1860/1740"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("dominant modes = %v, want %v", got, want)
	}
}

// TestMaterialMoistureIgnoresNonNumbers: JSON numbers and numeric strings
// count; words, booleans, nested objects and numbers too large for a double
// are ignored without failing the insert.
func TestMaterialMoistureIgnoresNonNumbers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	m := plant(t, pool, 60)[0]
	metas := []string{`{"material_moisture": 12.5}`, `{"material_moisture": "7.5"}`, `{"material_moisture": "wet"}`,
		`{"material_moisture": true}`, `{"material_moisture": {"v": 1}}`, `{"material_moisture": 1e400}`,
		`{"material_moisture": ""}`, `{}`}
	for i, meta := range metas {
		_, err := pool.Exec(ctx, `INSERT INTO production_data (time, machine_id, metadata) VALUES ($1, $2, $3::jsonb)`,
			time.Date(2026, 1, 5, 0, i, 0, 0, time.UTC), m, meta)
		if err != nil {
			t.Fatalf("insert %s: %v", meta, err)
		}
	}
	var sum, avg float64
	var n int64
	err := pool.QueryRow(ctx, `SELECT sum_material_moisture, material_moisture_count, avg_material_moisture
		FROM production_data_1hour WHERE machine_id = $1`, m).Scan(&sum, &n, &avg)
	if err != nil {
		t.Fatal(err)
	}
	// Counted: 12.5 and "7.5": sum 20, 2 readings, average 10.
	if sum != 20 || n != 2 || avg != 10 {
		t.Errorf("moisture sum %v over %d readings (avg %v); want 20 over 2 (avg 10)", sum, n, avg)
	}
}

// TestRejectsNonFiniteAndNegativeEnergy: NaN, ±Infinity and negative energy
// fail the insert with a check violation that names what is wrong; the
// rollups stay empty.
func TestRejectsNonFiniteAndNegativeEnergy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	m := plant(t, pool, 1)[0]
	cases := []struct {
		power, energy string
		constraint    string
	}{
		{"'NaN'", "NULL", "energy_readings_power_kw_finite"},
		{"'Infinity'", "NULL", "energy_readings_power_kw_finite"},
		{"10", "'-Infinity'", "energy_readings_energy_kwh_finite_nonnegative"},
		{"10", "'NaN'", "energy_readings_energy_kwh_finite_nonnegative"},
		{"10", "-0.5", "energy_readings_energy_kwh_finite_nonnegative"},
	}
	for _, c := range cases {
		_, err := pool.Exec(ctx, fmt.Sprintf(`INSERT INTO energy_readings (time, machine_id, power_kw, energy_kwh)
			VALUES ('2026-01-05T00:00:00Z', $1, %s, %s)`, c.power, c.energy), m)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "23514" || pgErr.ConstraintName != c.constraint {
			t.Errorf("power %s, energy %s: error %v; want a check violation of %s", c.power, c.energy, err, c.constraint)
			continue
		}
		if !strings.Contains(pgErr.Message, c.constraint) {
			t.Errorf("message %q does not name the constraint %s", pgErr.Message, c.constraint)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM energy_readings_1hour`).Scan(&n); err != nil || n != 0 {
		t.Errorf("rollup rows after rejected readings: %d (err %v); want 0", n, err)
	}
}

// TestDeletingAMachineDropsItsRollups: deleting a machine cascades to its
// readings; the rollup triggers must not resurrect it.
func TestDeletingAMachineDropsItsRollups(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	m := plant(t, pool, 10)[0]
	_, err := pool.Exec(ctx, `INSERT INTO energy_readings (time, machine_id, power_kw)
		SELECT '2026-01-05T00:00:00Z'::timestamptz + i * interval '10 minutes', $1, 5 FROM generate_series(0, 12) AS i`, m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `DELETE FROM machines WHERE id = $1`, m); err != nil {
		t.Fatalf("delete machine with readings: %v", err)
	}
	var n int
	err = pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM energy_readings_1hour) + (SELECT count(*) FROM energy_readings_15min)
		+ (SELECT count(*) FROM analytics_hour_state) + (SELECT count(*) FROM analytics_events)`).Scan(&n)
	if err != nil || n != 0 {
		t.Errorf("rows left for the deleted machine: %d (err %v)", n, err)
	}
}

// TestTruncateEmptiesRollups: TRUNCATE has no transition table; the
// table's rollups are emptied with it.
func TestTruncateEmptiesRollups(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	m := plant(t, pool, 10)[0]
	for _, sql := range []string{
		`INSERT INTO energy_readings (time, machine_id, power_kw) VALUES ('2026-01-05T00:00:00Z', $1, 5)`,
		`INSERT INTO environmental_data (time, machine_id, outdoor_temp_c) VALUES ('2026-01-05T00:00:00Z', $1, 5)`,
	} {
		if _, err := pool.Exec(ctx, sql, m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `TRUNCATE energy_readings`); err != nil {
		t.Fatal(err)
	}
	var energyRows, envRows int
	err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM energy_readings_1hour) + (SELECT count(*) FROM energy_readings_15min),
		(SELECT count(*) FROM environmental_data_1hour)`).Scan(&energyRows, &envRows)
	if err != nil || energyRows != 0 || envRows != 1 {
		t.Errorf("after TRUNCATE energy_readings: %d energy rollup rows, %d environmental (err %v); want 0 and 1", energyRows, envRows, err)
	}
}
