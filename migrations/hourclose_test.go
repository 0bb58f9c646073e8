package migrations_test

import (
	"context"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/enms/enms-analytics/internal/testdb"
)

// day0 is the first hour the hour-close tests write; long past, like a replay.
var day0 = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

func hour(h int) time.Time { return day0.Add(time.Duration(h) * time.Hour) }

// hourEvents lists a machine's hour events in id order as "kind hour", with
// hour counted from day0.
func hourEvents(t *testing.T, pool *pgxpool.Pool, machine string) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT kind, bucket FROM analytics_events
		WHERE machine_id = $1 AND kind IN ('hour_closed', 'hour_revised') ORDER BY id`, machine)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var kind string
		var bucket time.Time
		if err := rows.Scan(&kind, &bucket); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %d", kind, int(bucket.Sub(day0)/time.Hour)))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// energyAt writes one energy reading per time, in one statement.
func energyAt(t *testing.T, pool *pgxpool.Pool, machine string, power float64, times ...time.Time) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `INSERT INTO energy_readings (time, machine_id, power_kw)
		SELECT unnest($2::timestamptz[]), $1, $3`, machine, times, power)
	if err != nil {
		t.Fatalf("insert readings: %v", err)
	}
}

// markProcessed marks every event of the machine done, as a worker that
// handled them would: a later change to those hours is then a revision.
func markProcessed(t *testing.T, pool *pgxpool.Pool, machine string) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), `UPDATE analytics_events SET done_at = now(), attempts = 1
		WHERE machine_id = $1 AND done_at IS NULL`, machine); err != nil {
		t.Fatal(err)
	}
}

// span returns the times from (inclusive) to (exclusive) every step.
func span(from, to time.Time, step time.Duration) []time.Time {
	var out []time.Time
	for at := from; at.Before(to); at = at.Add(step) {
		out = append(out, at)
	}
	return out
}

func expectEvents(t *testing.T, pool *pgxpool.Pool, machine string, want ...string) {
	t.Helper()
	got := hourEvents(t, pool, machine)
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("events = [%s]\nwant     [%s]", strings.Join(got, ", "), strings.Join(want, ", "))
	}
}

// closedHours is the events of hours 0..n-1 each closing once, in order.
func closedHours(n int) []string {
	want := make([]string, n)
	for h := range want {
		want[h] = fmt.Sprintf("hour_closed %d", h)
	}
	return want
}

// TestHoursCloseOnceInOrder: readings written in order, ten minutes per
// statement, for hours 0–4: each of hours 0–3 closes exactly once, when the
// first reading of the next hour commits; hour 4 stays open. The worker is
// woken on hourly_aggregate_closed with the machine id as payload.
func TestHoursCloseOnceInOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	m := plant(t, pool, 10)[0]

	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN hourly_aggregate_closed"); err != nil {
		t.Fatal(err)
	}

	for h := 0; h < 5; h++ {
		for tenth := 0; tenth < 6; tenth++ {
			from := hour(h).Add(time.Duration(tenth) * 10 * time.Minute)
			energyAt(t, pool, m, 30, span(from, from.Add(10*time.Minute), 10*time.Second)...)
		}
	}
	expectEvents(t, pool, m, "hour_closed 0", "hour_closed 1", "hour_closed 2", "hour_closed 3")

	var open, closed time.Time
	if err := pool.QueryRow(ctx, `SELECT open_hour, closed_through FROM analytics_hour_state WHERE machine_id = $1`, m).Scan(&open, &closed); err != nil {
		t.Fatal(err)
	}
	if !open.Equal(hour(4)) || !closed.Equal(hour(3)) {
		t.Errorf("state: open %v, closed through %v; want hour 4 open, closed through hour 3", open, closed)
	}

	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := conn.Conn().WaitForNotification(wctx)
	if err != nil {
		t.Fatalf("no notification on hourly_aggregate_closed: %v", err)
	}
	if n.Channel != "hourly_aggregate_closed" || n.Payload != m {
		t.Errorf("notification %s %q; want hourly_aggregate_closed %q", n.Channel, n.Payload, m)
	}
}

// TestReplayedHistoryClosesAllButNewest: one COPY of 60 days of one-minute
// readings closes the 60 × 24 − 1 = 1,439 older hours at once, in order, and
// leaves the newest open.
func TestReplayedHistoryClosesAllButNewest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	m := plant(t, pool, 60)[0]
	const hours = 60 * 24
	rows := make([][]any, 0, hours*60)
	for i := 0; i < hours*60; i++ {
		rows = append(rows, []any{day0.Add(time.Duration(i) * time.Minute), m, float64(i % 50)})
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"energy_readings"}, []string{"time", "machine_id", "power_kw"}, pgx.CopyFromRows(rows)); err != nil {
		t.Fatalf("copy history: %v", err)
	}
	expectEvents(t, pool, m, closedHours(hours-1)...)
}

// TestLateReadingRevisesOnce: after hours 0 and 1 closed, a late reading
// for hour 0 yields exactly one hour_revised. More late data for hour 0
// joins that revision while it waits unclaimed; once a worker claimed it, a
// newer change gets a revision of its own. Re-sending identical readings of
// a closed hour changes nothing and revises nothing.
func TestLateReadingRevisesOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	m := plant(t, pool, 60)[0]
	for h := 0; h < 3; h++ {
		energyAt(t, pool, m, 10, span(hour(h), hour(h+1), time.Minute)...)
	}
	expectEvents(t, pool, m, "hour_closed 0", "hour_closed 1")
	markProcessed(t, pool, m) // a worker handled hours 0 and 1

	energyAt(t, pool, m, 99, hour(0).Add(30*time.Second)) // late: a new reading in closed hour 0
	expectEvents(t, pool, m, "hour_closed 0", "hour_closed 1", "hour_revised 0")

	// Waiting unclaimed: a second late reading and a deletion join it.
	energyAt(t, pool, m, 98, hour(0).Add(90*time.Second))
	if _, err := pool.Exec(ctx, `DELETE FROM energy_readings WHERE machine_id = $1 AND time = $2`, m, hour(0).Add(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	expectEvents(t, pool, m, "hour_closed 0", "hour_closed 1", "hour_revised 0")

	// Identical re-send of closed hour 1, as upsert and as DO NOTHING.
	for _, suffix := range []string{"ON CONFLICT (machine_id, time) DO UPDATE SET power_kw = excluded.power_kw", "ON CONFLICT DO NOTHING"} {
		_, err := pool.Exec(ctx, `INSERT INTO energy_readings (time, machine_id, power_kw)
			SELECT unnest($2::timestamptz[]), $1, 10 `+suffix, m, span(hour(1), hour(2), time.Minute))
		if err != nil {
			t.Fatal(err)
		}
	}
	expectEvents(t, pool, m, "hour_closed 0", "hour_closed 1", "hour_revised 0")

	// A worker claims the revision; a newer change must not be swallowed by it.
	if _, err := pool.Exec(ctx, `UPDATE analytics_events SET locked_until = now() + interval '1 minute', attempts = 1
		WHERE machine_id = $1 AND kind = 'hour_revised'`, m); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE energy_readings SET power_kw = 11 WHERE machine_id = $1 AND time = $2`, m, hour(0)); err != nil {
		t.Fatal(err)
	}
	expectEvents(t, pool, m, "hour_closed 0", "hour_closed 1", "hour_revised 0", "hour_revised 0")

	var n int64
	if err := pool.QueryRow(ctx, `SELECT reading_count FROM energy_readings_1hour WHERE machine_id = $1 AND bucket = $2`, m, hour(0)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	// 60 on-the-minute readings + 2 late ones − 1 deleted.
	if n != 61 {
		t.Errorf("hour 0 has %d readings, want 61", n)
	}
}

// TestResendingIdenticalOpenHourEmitsNothing: re-sending the open hour's
// readings unchanged (DO NOTHING or DO UPDATE) writes no event and leaves
// the rollup as it was; so does a new reading for the open hour.
func TestResendingIdenticalOpenHourEmitsNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	m := plant(t, pool, 60)[0]
	energyAt(t, pool, m, 10, span(hour(0), hour(1), time.Minute)...)
	energyAt(t, pool, m, 20, span(hour(1), hour(1).Add(30*time.Minute), time.Minute)...)
	expectEvents(t, pool, m, "hour_closed 0")

	for _, suffix := range []string{"ON CONFLICT DO NOTHING",
		"ON CONFLICT (machine_id, time) DO UPDATE SET power_kw = excluded.power_kw, energy_kwh = excluded.energy_kwh"} {
		_, err := pool.Exec(ctx, `INSERT INTO energy_readings (time, machine_id, power_kw)
			SELECT unnest($2::timestamptz[]), $1, 20 `+suffix, m, span(hour(1), hour(1).Add(30*time.Minute), time.Minute))
		if err != nil {
			t.Fatal(err)
		}
	}
	energyAt(t, pool, m, 20, hour(1).Add(45*time.Minute))
	expectEvents(t, pool, m, "hour_closed 0")
	var n int64
	var sum float64
	if err := pool.QueryRow(ctx, `SELECT reading_count, sum_power_kw FROM energy_readings_1hour WHERE machine_id = $1 AND bucket = $2`,
		m, hour(1)).Scan(&n, &sum); err != nil {
		t.Fatal(err)
	}
	// 30 readings + 1 new one, each 20 kW.
	if n != 31 || sum != 620 {
		t.Errorf("open hour: %d readings, %v kW summed; want 31 and 620", n, sum)
	}
}

// TestSweeperClosesStaleHourOnce: analytics_close_stale_hours closes an
// open hour with no newer data once its end is more than the grace ago, and
// only once; a later reading for that hour revises it, and the next hour's
// data does not close it again. An hour that is still running is left open;
// an open hour whose readings were all deleted closes without an event.
func TestSweeperClosesStaleHourOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	ms := plant(t, pool, 60, 60, 60)
	old, live, emptied := ms[0], ms[1], ms[2]
	energyAt(t, pool, old, 10, span(hour(10), hour(11), time.Minute)...)
	energyAt(t, pool, live, 10, time.Now().Truncate(time.Hour)) // this hour: ends in the future
	energyAt(t, pool, emptied, 10, hour(10))                    // its only reading is deleted again
	if _, err := pool.Exec(ctx, `DELETE FROM energy_readings WHERE machine_id = $1`, emptied); err != nil {
		t.Fatal(err)
	}

	sweep := func() int {
		t.Helper()
		var n int
		if err := pool.QueryRow(ctx, `SELECT analytics_close_stale_hours(interval '10 minutes')`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := sweep(); n != 1 {
		t.Errorf("first sweep closed %d hours, want 1 (hour 10 of the old machine)", n)
	}
	if n := sweep(); n != 0 {
		t.Errorf("second sweep closed %d hours, want 0", n)
	}
	expectEvents(t, pool, old, "hour_closed 10")
	expectEvents(t, pool, live)
	expectEvents(t, pool, emptied) // an hour without readings closes silently
	markProcessed(t, pool, old)    // a worker handled hour 10

	energyAt(t, pool, old, 12, hour(10).Add(30*time.Second)) // late, into the swept hour
	energyAt(t, pool, old, 12, hour(11))                     // the next hour opens
	expectEvents(t, pool, old, "hour_closed 10", "hour_revised 10")

	if n := sweep(); n != 1 {
		t.Errorf("third sweep closed %d hours, want 1 (hour 11 of the old machine)", n)
	}
	expectEvents(t, pool, old, "hour_closed 10", "hour_revised 10", "hour_closed 11")
	expectEvents(t, pool, live)
}

// TestConcurrentWritersCloseEachHourOnce: four writers interleave readings
// of 100 machines over 48 hours (every 5 minutes; writer w writes the slots
// w, w+4 and w+8 of each hour, 50 machines per statement in random order).
// Every machine-hour but the newest closes exactly once: 100 × 47 = 4,700
// hour_closed events, none twice, none for hour 47; and every hour holds its
// 12 readings.
func TestConcurrentWritersCloseEachHourOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	intervals := make([]int, 100)
	for i := range intervals {
		intervals[i] = 300
	}
	machines := plant(t, pool, intervals...)
	const hours, writers, slots = 48, 4, 12

	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(w)))
			order := append([]string{}, machines...)
			for h := 0; h < hours; h++ {
				r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
				for half := 0; half < 2; half++ {
					var ids []string
					var times []time.Time
					for _, m := range order[half*50 : half*50+50] {
						for s := w; s < slots; s += writers {
							ids = append(ids, m)
							times = append(times, hour(h).Add(time.Duration(s)*5*time.Minute))
						}
					}
					_, err := pool.Exec(ctx, `INSERT INTO energy_readings (time, machine_id, power_kw)
						SELECT unnest($1::timestamptz[]), unnest($2::uuid[]), 7`, times, ids)
					if err != nil {
						errs <- fmt.Errorf("writer %d hour %d: %w", w, h, err)
						return
					}
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	var total, distinct, newest int
	err := pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT (machine_id, bucket)), count(*) FILTER (WHERE bucket = $1)
		FROM analytics_events WHERE kind = 'hour_closed'`, hour(hours-1)).Scan(&total, &distinct, &newest)
	if err != nil {
		t.Fatal(err)
	}
	if total != 100*(hours-1) || distinct != total || newest != 0 {
		t.Errorf("hour_closed events: %d, %d distinct machine-hours, %d for the newest hour; want %d, %d, 0",
			total, distinct, newest, 100*(hours-1), 100*(hours-1))
	}
	var perMachine []int
	rows, err := pool.Query(ctx, `SELECT count(*) FROM analytics_events WHERE kind = 'hour_closed' GROUP BY machine_id`)
	if err != nil {
		t.Fatal(err)
	}
	perMachine, err = pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	sort.Ints(perMachine)
	if len(perMachine) != 100 || perMachine[0] != hours-1 || perMachine[99] != hours-1 {
		t.Errorf("hour_closed per machine ranges %v; want 100 machines with %d each", perMachine, hours-1)
	}
	var badHours int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM energy_readings_1hour WHERE reading_count <> $1`, slots).Scan(&badHours); err != nil {
		t.Fatal(err)
	}
	if badHours != 0 {
		t.Errorf("%d machine-hours do not hold their %d readings", badHours, slots)
	}
}

// TestOneNotificationPerStatement: a statement that closes hours of three
// machines writes three events but sends one wake-up on
// hourly_aggregate_closed, naming the lowest of the machine ids; a statement
// that writes no event sends none.
func TestOneNotificationPerStatement(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	ms := plant(t, pool, 60, 60, 60)
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN hourly_aggregate_closed"); err != nil {
		t.Fatal(err)
	}
	insertAll := func(at time.Time) {
		t.Helper()
		_, err := pool.Exec(ctx, `INSERT INTO energy_readings (time, machine_id, power_kw) SELECT $1, unnest($2::uuid[]), 5`, at, ms)
		if err != nil {
			t.Fatal(err)
		}
	}
	insertAll(hour(0)) // opens hour 0: no event, no notification
	insertAll(hour(1)) // closes hour 0 of all three machines
	if _, err := pool.Exec(ctx, `SELECT pg_notify('hourly_aggregate_closed', 'sentinel')`); err != nil {
		t.Fatal(err)
	}
	lowest := ms[0]
	for _, m := range ms[1:] {
		if m < lowest {
			lowest = m
		}
	}
	var got []string
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for len(got) == 0 || got[len(got)-1] != "sentinel" {
		n, err := conn.Conn().WaitForNotification(wctx)
		if err != nil {
			t.Fatalf("notifications so far %v: %v", got, err)
		}
		got = append(got, n.Payload)
	}
	if want := []string{lowest, "sentinel"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("notifications %v, want %v", got, want)
	}
	var events int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM analytics_events WHERE kind = 'hour_closed'`).Scan(&events); err != nil || events != 3 {
		t.Errorf("hour_closed events: %d (err %v), want 3", events, err)
	}
}

// TestBackfillTransactionClosesEachHourOnce: one transaction writes two days
// table by table (energy for every hour, then production for every hour),
// as a backfill does. The production rows land in hours the energy rows
// already closed, but those hours' hour_closed events are still waiting
// unclaimed and will read the finished hours, so no hour is revised.
func TestBackfillTransactionClosesEachHourOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	m := plant(t, pool, 60)[0]
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	times := span(hour(0), hour(48), time.Minute)
	if _, err := tx.Exec(ctx, `INSERT INTO energy_readings (time, machine_id, power_kw) SELECT unnest($2::timestamptz[]), $1, 10`, m, times); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO production_data (time, machine_id, production_count, operating_mode)
		SELECT unnest($2::timestamptz[]), $1, 1, 'running'`, m, times); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	expectEvents(t, pool, m, closedHours(47)...)
}

// TestCoarseHistoryCountsItsOwnInterval: a production reading that says it
// stands for 60 s (metadata interval_seconds, as the simulator's backfilled
// history does) counts 60 s of its mode, not the machine's 1 s sampling
// interval; a reading without it counts the machine's interval.
func TestCoarseHistoryCountsItsOwnInterval(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	m := plant(t, pool, 1)[0] // a machine sampling every 1 s
	_, err := pool.Exec(ctx, `INSERT INTO production_data (time, machine_id, operating_mode, metadata) VALUES
		($2, $1, 'running', '{"interval_seconds": 60}'),
		($2 + interval '1 minute', $1, 'running', '{"interval_seconds": "60"}'),
		($2 + interval '2 minutes', $1, 'idle', '{}'),
		($2 + interval '3 minutes', $1, 'idle', '{"interval_seconds": -5}')`, m, hour(0))
	if err != nil {
		t.Fatal(err)
	}
	var running, idle float64
	if err := pool.QueryRow(ctx, `SELECT running_seconds, idle_seconds FROM production_data_1hour WHERE machine_id = $1`, m).Scan(&running, &idle); err != nil {
		t.Fatal(err)
	}
	// running: 60 + 60 s; idle: 1 s (no metadata) + 1 s (a negative interval is ignored).
	if running != 120 || idle != 2 {
		t.Errorf("running=%v idle=%v; want 120 and 2", running, idle)
	}
}
