package store_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/enms/enms-analytics/internal/testdb"
	"github.com/enms/enms-analytics/store"
	"github.com/enms/enms-analytics/triggers"
)

// hour0 is the first hour the events below are about.
var hour0 = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

// newMachines creates n machines in a new factory and returns their ids.
func newMachines(t testing.TB, pool *pgxpool.Pool, n int) []string {
	t.Helper()
	ctx := context.Background()
	rows, err := pool.Query(ctx, `
		WITH f AS (INSERT INTO factories (name) VALUES ('plant-' || gen_random_uuid()) RETURNING id)
		INSERT INTO machines (factory_id, name, type)
		SELECT f.id, 'machine-' || g, 'compressor' FROM f, generate_series(1, $1) g
		RETURNING id::text`, n)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// outboxRow is an analytics_events row to insert as written, so a test can
// set what the triggers never would (attempts, a later run_after).
type outboxRow struct {
	kind     triggers.Kind
	hour     int // bucket = hour0 + hour h (hour kinds)
	attempts int
	later    bool // run_after an hour from now
}

// insertEvents inserts rows for machine in the given order (so ids follow
// it).
func insertEvents(t testing.TB, pool *pgxpool.Pool, machine string, rows ...outboxRow) {
	t.Helper()
	for _, r := range rows {
		var bucket *time.Time
		if r.kind != triggers.KindStatusChanged {
			b := hour0.Add(time.Duration(r.hour) * time.Hour)
			bucket = &b
		}
		_, err := pool.Exec(context.Background(), `
			INSERT INTO analytics_events (kind, machine_id, bucket, attempts, run_after)
			VALUES ($1, $2, $3, $4, now() + CASE WHEN $5 THEN interval '1 hour' ELSE interval '0' END)`,
			string(r.kind), machine, bucket, r.attempts, r.later)
		if err != nil {
			t.Fatal(err)
		}
	}
}

// insertBacklog writes pending hour_closed events of hours 0 … n−1 for
// each machine, hour by hour (ids follow the hours), as a backfill leaves
// them.
func insertBacklog(t testing.TB, pool *pgxpool.Pool, ms []string, n int) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `
		INSERT INTO analytics_events (kind, machine_id, bucket)
		SELECT 'hour_closed', m::uuid, $2::timestamptz + h * interval '1 hour'
		  FROM generate_series(0, $3 - 1) h, unnest($1::text[]) m
		 ORDER BY h, m`, ms, hour0, n)
	if err != nil {
		t.Fatal(err)
	}
}

// runLabel names a run by its events' kinds and hours, e.g.
// "hour_closed@0,1" or "status_changed".
func runLabel(run []triggers.Event) string {
	s := string(run[0].Kind)
	if run[0].Kind == triggers.KindStatusChanged {
		return s
	}
	for i, ev := range run {
		sep := ","
		if i == 0 {
			sep = "@"
		}
		s += fmt.Sprintf("%s%d", sep, int(ev.Bucket.Sub(hour0)/time.Hour))
	}
	return s
}

// TestClaimRunsBoundaries: one claimer claims and completes until nothing is
// ready; each machine's runs stop where the rules say.
func TestClaimRunsBoundaries(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	st := store.New(pool)
	ctx := context.Background()
	ms := newMachines(t, pool, 6)
	hc, hr, sc := triggers.KindHourClosed, triggers.KindHourRevised, triggers.KindStatusChanged
	// A change of kind ends a run; status_changed is no run kind here, so it
	// goes alone, and so does its follower's run of one.
	insertEvents(t, pool, ms[0], outboxRow{kind: hc, hour: 0}, outboxRow{kind: hc, hour: 1}, outboxRow{kind: sc}, outboxRow{kind: hc, hour: 3})
	// An event tried before (attempts 1) is no follower, and as a head on
	// its second try it takes none.
	insertEvents(t, pool, ms[1], outboxRow{kind: hc, hour: 0}, outboxRow{kind: hc, hour: 1}, outboxRow{kind: hc, hour: 2, attempts: 1}, outboxRow{kind: hc, hour: 3})
	// A revision of an earlier hour than the event before it ends a run.
	insertEvents(t, pool, ms[2], outboxRow{kind: hr, hour: 5}, outboxRow{kind: hr, hour: 3}, outboxRow{kind: hr, hour: 4})
	// maxRun 4 cuts 10 consecutive hours into 4 + 4 + 2.
	var ten []outboxRow
	for h := range 10 {
		ten = append(ten, outboxRow{kind: hc, hour: h})
	}
	insertEvents(t, pool, ms[3], ten...)
	// An event waiting for its retry time is no follower, nor a head.
	insertEvents(t, pool, ms[4], outboxRow{kind: hc, hour: 0}, outboxRow{kind: hc, hour: 1, later: true}, outboxRow{kind: hc, hour: 2})
	// A tried head (attempts 2 once claimed) goes alone; its untried
	// followers then form a run.
	insertEvents(t, pool, ms[5], outboxRow{kind: hc, hour: 0, attempts: 1}, outboxRow{kind: hc, hour: 1}, outboxRow{kind: hc, hour: 2})

	want := map[string][]string{
		ms[0]: {"hour_closed@0,1", "status_changed", "hour_closed@3"},
		ms[1]: {"hour_closed@0,1", "hour_closed@2", "hour_closed@3"},
		ms[2]: {"hour_revised@5", "hour_revised@3,4"},
		ms[3]: {"hour_closed@0,1,2,3", "hour_closed@4,5,6,7", "hour_closed@8,9"},
		ms[4]: {"hour_closed@0"},
		ms[5]: {"hour_closed@0", "hour_closed@1,2"},
	}
	got := map[string][]string{}
	for claim := 0; ; claim++ {
		if claim > 10 { // the longest list above has 3 runs: 3 claims, and one more that finds nothing
			t.Fatal("claims keep finding events")
		}
		runs, err := st.ClaimRuns(ctx, "w", 10, 4, []triggers.Kind{hc, hr}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) == 0 {
			break
		}
		var all []triggers.Event
		for i, run := range runs {
			if i > 0 && run[0].ID <= runs[i-1][0].ID {
				t.Errorf("runs not in the order of their heads: %d after %d", run[0].ID, runs[i-1][0].ID)
			}
			m := run[0].MachineID
			got[m] = append(got[m], runLabel(run))
			for j, ev := range run {
				if ev.MachineID != m || (j > 0 && ev.ID <= run[j-1].ID) {
					t.Errorf("run %s: event %d (machine %s) out of place", runLabel(run), ev.ID, ev.MachineID)
				}
			}
			all = append(all, run...)
		}
		if done, err := st.CompleteEvents(ctx, "w", all); err != nil || len(done) != len(all) {
			t.Fatalf("complete %d claimed events: %d done, %v", len(all), len(done), err)
		}
	}
	for i, m := range ms {
		if !slices.Equal(got[m], want[m]) {
			t.Errorf("machine %d: runs %q, want %q", i, got[m], want[m])
		}
	}
	// Each claim counted one attempt: 1 for the events inserted untried, 2
	// for the two inserted with attempts 1.
	n := scalarInt(t, pool, `
		SELECT count(*) FROM analytics_events WHERE done_at IS NOT NULL
		   AND attempts <> CASE WHEN (bucket, machine_id) IN (($1, $2::uuid), ($3, $4::uuid)) THEN 2 ELSE 1 END`,
		hour0.Add(2*time.Hour), ms[1], hour0, ms[5])
	if n != 0 {
		t.Errorf("%d done events have an attempt count other than the claims they saw", n)
	}
}

func scalarInt(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// TestClaimRunsConcurrentClaimers: four claimers on one database claim runs
// and complete them until all 2,000 events are done. Every event is claimed
// exactly once, never while another claimer holds an event of its machine,
// and each machine's events in id order; runs do form (the first claim of a
// machine finds 200 untried consecutive hours, so it takes maxRun of them).
func TestClaimRunsConcurrentClaimers(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	st := store.New(pool)
	ctx := context.Background()
	const nMachines, nHours, maxRun = 10, 200, 16
	ms := newMachines(t, pool, nMachines)
	insertBacklog(t, pool, ms, nHours)

	var mu sync.Mutex
	claimed := map[int64]int{}
	lastID := map[string]int64{} // machine → newest event claimed
	longest, done := 0, 0
	var failures []error
	fail := func(err error) { // call under mu
		failures = append(failures, err)
	}
	// A claimer that keeps finding nothing (an event no claim can reach)
	// fails the test instead of spinning until go test's own timeout; a
	// healthy run needs a small fraction of the minute.
	deadline := time.Now().Add(time.Minute)
	var wg sync.WaitGroup
	for w := range 4 {
		owner := fmt.Sprintf("claimer-%d", w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if time.Now().After(deadline) && len(failures) == 0 {
					fail(fmt.Errorf("%d of %d events done after a minute", done, nMachines*nHours))
				}
				finished := done == nMachines*nHours || len(failures) > 0
				mu.Unlock()
				if finished {
					return
				}
				runs, err := st.ClaimRuns(ctx, owner, 3, maxRun, []triggers.Kind{triggers.KindHourClosed}, time.Minute)
				if err == nil {
					err = heldByOthers(ctx, pool, owner, runs)
				}
				if err != nil {
					mu.Lock()
					fail(err)
					mu.Unlock()
					return
				}
				var all []triggers.Event
				mu.Lock()
				for _, run := range runs {
					m := run[0].MachineID
					for _, ev := range run {
						claimed[ev.ID]++
						if ev.ID <= lastID[m] {
							fail(fmt.Errorf("machine %s: event %d claimed after event %d", m, ev.ID, lastID[m]))
						}
						lastID[m] = ev.ID
					}
					longest = max(longest, len(run))
					all = append(all, run...)
				}
				mu.Unlock()
				if len(all) == 0 {
					continue
				}
				completed, err := st.CompleteEvents(ctx, owner, all)
				mu.Lock()
				if err == nil && len(completed) != len(all) {
					err = fmt.Errorf("%s completed %d of its %d claimed events", owner, len(completed), len(all))
				}
				if err != nil {
					fail(err)
				}
				done += len(completed)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, err := range failures {
		t.Error(err)
	}
	if len(claimed) != nMachines*nHours {
		t.Errorf("%d distinct events claimed, want %d", len(claimed), nMachines*nHours)
	}
	for id, n := range claimed {
		if n != 1 {
			t.Errorf("event %d claimed %d times", id, n)
		}
	}
	if longest != maxRun {
		t.Errorf("longest run %d events, want maxRun = %d", longest, maxRun)
	}
	// analytics_machine_state took the newest hour of each machine from
	// batches holding many events of it: hour0 + 199 h.
	n := scalarInt(t, pool, `SELECT count(*) FROM analytics_machine_state WHERE last_closed_hour = $1`, hour0.Add((nHours-1)*time.Hour))
	if n != nMachines {
		t.Errorf("%d machines have last_closed_hour = hour0 + 199 h, want %d", n, nMachines)
	}
}

// heldByOthers fails when a machine of runs, just claimed by owner, has an
// event that another claimer still holds (leased, not done): a claim must
// wait until every event of the machine claimed before is done. Checked
// while owner holds the runs, before it completes them.
func heldByOthers(ctx context.Context, pool *pgxpool.Pool, owner string, runs [][]triggers.Event) error {
	for _, run := range runs {
		var holders []string
		err := pool.QueryRow(ctx, `
			SELECT coalesce(array_agg(DISTINCT locked_by ORDER BY locked_by), '{}') FROM analytics_events
			 WHERE machine_id = $1 AND done_at IS NULL AND locked_by <> $2 AND locked_until > now()`,
			run[0].MachineID, owner).Scan(&holders)
		if err != nil {
			return err
		}
		if len(holders) > 0 {
			return fmt.Errorf("%s claimed machine %s while %v hold(s) events of it", owner, run[0].MachineID, holders)
		}
	}
	return nil
}

// BenchmarkClaimRuns times one claim on a backfill: 20 machines with 500
// pending hour_closed events each. "runs" claims up to 64 runs of up to 128
// events (20 runs of 128 here); "heads" claims one event per machine (no run
// kinds); "blocked" finds every head leased and claims nothing (the case
// that once cost the whole backlog). After each claim the events are
// released, so every iteration sees the same table.
func BenchmarkClaimRuns(b *testing.B) {
	pool := testdb.New(b)
	st := store.New(pool)
	ctx := context.Background()
	ms := newMachines(b, pool, 20)
	insertBacklog(b, pool, ms, 500)
	if _, err := pool.Exec(ctx, `ANALYZE analytics_events`); err != nil {
		b.Fatal(err)
	}
	claimRelease := func(b *testing.B, maxRun int, kinds []triggers.Kind, wantEvents int) {
		for b.Loop() {
			runs, err := st.ClaimRuns(ctx, "bench", 64, maxRun, kinds, time.Minute)
			if err != nil {
				b.Fatal(err)
			}
			var ids []int64
			for _, run := range runs {
				for _, ev := range run {
					ids = append(ids, ev.ID)
				}
			}
			if len(ids) != wantEvents {
				b.Fatalf("claimed %d events, want %d", len(ids), wantEvents)
			}
			b.StopTimer()
			if err := st.ReleaseEvents(ctx, "bench", ids); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/claim")
	}
	hc := []triggers.Kind{triggers.KindHourClosed}
	b.Run("runs", func(b *testing.B) { claimRelease(b, 128, hc, 20*128) })
	b.Run("heads", func(b *testing.B) { claimRelease(b, 1, nil, 20) })
	b.Run("blocked", func(b *testing.B) {
		runs, err := st.ClaimRuns(ctx, "holder", 64, 128, hc, time.Hour)
		if err != nil || len(runs) != 20 {
			b.Fatalf("holder claimed %d runs, %v; want 20", len(runs), err)
		}
		// Given back at the end, so that -count 2 finds the backlog as
		// the first count did.
		defer func() {
			var ids []int64
			for _, ev := range slices.Concat(runs...) {
				ids = append(ids, ev.ID)
			}
			if err := st.ReleaseEvents(ctx, "holder", ids); err != nil {
				b.Fatal(err)
			}
		}()
		for b.Loop() {
			runs, err := st.ClaimRuns(ctx, "bench", 64, 128, hc, time.Minute)
			if err != nil || len(runs) != 0 {
				b.Fatalf("claimed %d runs, %v; want none while every head is leased", len(runs), err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/claim")
	})
}

// TestClaimRunsAfterCrash: claimer A takes a run of 4 (maxRun) of a
// machine's 6 hours and dies; once its lease has expired (set in the past
// here), claimer B takes A's 4 events one at a time — each was tried
// (attempts 1), so none is a follower, and as a head on its second try each
// goes alone — and then hours 4 and 5, untried, as one run.
func TestClaimRunsAfterCrash(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	st := store.New(pool)
	ctx := context.Background()
	ms := newMachines(t, pool, 1)
	var six []outboxRow
	for h := range 6 {
		six = append(six, outboxRow{kind: triggers.KindHourClosed, hour: h})
	}
	insertEvents(t, pool, ms[0], six...)
	hc := []triggers.Kind{triggers.KindHourClosed}
	runs, err := st.ClaimRuns(ctx, "a", 10, 4, hc, time.Minute)
	if err != nil || len(runs) != 1 || runLabel(runs[0]) != "hour_closed@0,1,2,3" {
		t.Fatalf("A claimed %v, %v; want one run of hours 0-3", runs, err)
	}
	if _, err := pool.Exec(ctx, `UPDATE analytics_events SET locked_until = now() - interval '1 second' WHERE locked_by = 'a'`); err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		runs, err := st.ClaimRuns(ctx, "b", 10, 4, hc, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) == 0 {
			break
		}
		for _, run := range runs {
			got = append(got, runLabel(run))
			for _, ev := range run {
				// A's events are on their second claim, the others on their first.
				if want := 1 + btoi(ev.Bucket.Before(hour0.Add(4*time.Hour))); ev.Attempt != want {
					t.Errorf("event of %s: attempt %d, want %d", ev.Bucket, ev.Attempt, want)
				}
			}
			if done, err := st.CompleteEvents(ctx, "b", run); err != nil || len(done) != len(run) {
				t.Fatalf("complete %d claimed events: %d done, %v", len(run), len(done), err)
			}
		}
	}
	want := []string{"hour_closed@0", "hour_closed@1", "hour_closed@2", "hour_closed@3", "hour_closed@4,5"}
	if !slices.Equal(got, want) {
		t.Errorf("B claimed %q, want %q", got, want)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestCompleteEventsReturnsDone: claimer "a" claims two machines' events;
// "b" takes over the lease of the second. CompleteEvents by "a" marks only
// the first done and returns only its id; again, it returns none (already
// done, and the other is b's).
func TestCompleteEventsReturnsDone(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	st := store.New(pool)
	ctx := context.Background()
	ms := newMachines(t, pool, 2)
	insertBacklog(t, pool, ms, 1)
	evs, err := st.ClaimEvents(ctx, "a", 10, time.Minute)
	if err != nil || len(evs) != 2 {
		t.Fatalf("claimed %d events, %v; want both machines' hour", len(evs), err)
	}
	if _, err := pool.Exec(ctx, `UPDATE analytics_events SET locked_by = 'b' WHERE id = $1`, evs[1].ID); err != nil {
		t.Fatal(err)
	}
	done, err := st.CompleteEvents(ctx, "a", evs)
	if err != nil || !slices.Equal(done, []int64{evs[0].ID}) {
		t.Errorf("CompleteEvents = %v, %v; want [%d], the event a still held", done, err, evs[0].ID)
	}
	done, err = st.CompleteEvents(ctx, "a", evs)
	if err != nil || len(done) != 0 {
		t.Errorf("CompleteEvents again = %v, %v; want none", done, err)
	}
	if n := scalarInt(t, pool, `SELECT count(*) FROM analytics_events WHERE done_at IS NULL AND locked_by = 'b'`); n != 1 {
		t.Errorf("%d events left pending with b, want 1", n)
	}
}
