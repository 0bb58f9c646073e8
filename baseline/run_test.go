package baseline

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/enms/enms-analytics/store"
)

// refreshedThrough200 is a machine with 10 days of hours, an active
// baseline on production and cooling degree-hours, and a rolling model
// (7-day window, no publication within the test) refreshed hour by hour
// through hour 199: a full window, so runs from hour 200 on evict.
func refreshedThrough200(t *testing.T, name string) (*bundle, string, []hourRow) {
	t.Helper()
	b := setup(t, func(c *Config) { c.WindowDays = 7; c.MinSamples = 100; c.PublishInterval = 1000 * time.Hour })
	ctx := context.Background()
	m := b.machine(t, name)
	rows := knownTruth(10*24, 8)
	b.insertHours(t, m, rows)
	b.trainActive(t, m, []string{"production_count", "cdd"}, t0.Add(7*24*time.Hour))
	for _, r := range rows[:200] {
		if err := b.svc.Refresh(ctx, m, r.hour, true); err != nil {
			t.Fatal(err)
		}
	}
	return b, m, rows
}

// TestRunRedeliveredAfterNewDrivers: a worker commits a run of hours 200 …
// 219 (scores, then the rolling model) and dies before their events are
// marked done; meanwhile an energy manager activates a new baseline. The
// run's events come back one at a time, each hour one the model has already
// passed: they must leave the model as the run left it, as they would an
// uninterrupted worker's. Two cases: a baseline on the same drivers, which
// the model adopts as its source (the version the next hour is scored
// with) at the next new hour, not at a passed one; then a baseline on other
// drivers, which before this test made the first passed hour rebuild the
// model over the window ending at hour 200, after which hours 201 … 219
// were counted as refreshes again. The rebuild on the new drivers belongs
// to the next new hour, 220.
func TestRunRedeliveredAfterNewDrivers(t *testing.T) {
	t.Parallel()
	b, m, rows := refreshedThrough200(t, "redelivered")
	ctx := context.Background()
	run, ok, err := b.svc.StartRun(ctx, m, rows[200].hour, rows[219].hour)
	if err != nil || !ok {
		t.Fatalf("start run: ok %v, %v", ok, err)
	}
	for _, r := range rows[200:220] {
		if err := run.Step(r.hour, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := run.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	committed, err := b.st.ReadRollingState(ctx, m)
	if err != nil {
		t.Fatal(err)
	}

	for _, drivers := range [][]string{{"production_count", "cdd"}, {"production_count"}} {
		b.trainActive(t, m, drivers, t0.Add(7*24*time.Hour))
		for _, r := range rows[200:220] {
			if err := b.svc.Refresh(ctx, m, r.hour, true); err != nil {
				t.Fatal(err)
			}
		}
		again, err := b.st.ReadRollingState(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		if !again.LastHour.Equal(*committed.LastHour) || again.RefreshedCount != committed.RefreshedCount ||
			!slices.Equal(again.Drivers, committed.Drivers) || !bytes.Equal(again.Stats, committed.Stats) ||
			*again.SourceBaseline != *committed.SourceBaseline {
			t.Errorf("new baseline on %v: the run's hours again changed the model: last hour %s, %d refreshes, drivers %v, source %s; the run left %s, %d, %v, %s",
				drivers, again.LastHour.Format(time.RFC3339), again.RefreshedCount, again.Drivers, *again.SourceBaseline,
				committed.LastHour.Format(time.RFC3339), committed.RefreshedCount, committed.Drivers, *committed.SourceBaseline)
		}
	}

	if err := b.svc.Refresh(ctx, m, rows[220].hour, true); err != nil {
		t.Fatal(err)
	}
	next, err := b.st.ReadRollingState(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(next.Drivers, []string{"production_count"}) || !next.LastHour.Equal(rows[220].hour) {
		t.Errorf("after hour 220: drivers %v, last hour %s; want the new baseline's drivers from a rebuild at %s",
			next.Drivers, next.LastHour.Format(time.RFC3339), rows[220].hour.Format(time.RFC3339))
	}
}

// TestRunCommitAfterRefreshWritesNothing: a run reads the model, another
// refresh moves the model on before the run commits (a worker that lost
// its lease to another); the run's commit fails with ErrRollingChanged and
// writes nothing, though its observations, kept-out marks and evictions
// travel in the same batch as the check.
func TestRunCommitAfterRefreshWritesNothing(t *testing.T) {
	t.Parallel()
	b, m, rows := refreshedThrough200(t, "moved")
	ctx := context.Background()
	run, ok, err := b.svc.StartRun(ctx, m, rows[200].hour, rows[209].hour)
	if err != nil || !ok {
		t.Fatalf("start run: ok %v, %v", ok, err)
	}
	for i, r := range rows[200:210] {
		if err := run.Step(r.hour, i%2 == 0); err != nil { // odd hours kept out
			t.Fatal(err)
		}
	}
	if err := b.svc.Refresh(ctx, m, rows[200].hour, true); err != nil {
		t.Fatal(err)
	}
	want := dumpRolling(t, b, m)
	if err := run.Commit(ctx); !errors.Is(err, store.ErrRollingChanged) {
		t.Fatalf("commit after the model moved: %v, want ErrRollingChanged", err)
	}
	if got := dumpRolling(t, b, m); !slices.Equal(got, want) {
		t.Errorf("the failed commit changed the model:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// dumpRolling is the text of machine m's rolling state, observations and
// kept-out marks.
func dumpRolling(t *testing.T, b *bundle, m string) []string {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), `
		SELECT (to_jsonb(s) - 'updated_at')::text FROM baseline_rolling_state s WHERE machine_id = $1
		UNION ALL SELECT to_jsonb(h)::text FROM baseline_rolling_hours h WHERE machine_id = $1
		UNION ALL SELECT 'kept out ' || hour::text FROM baseline_rolling_kept_out WHERE machine_id = $1`, m)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}
