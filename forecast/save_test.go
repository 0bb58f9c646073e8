package forecast_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/enms/enms-analytics/forecast"
	"github.com/enms/enms-analytics/store"
)

// TestHoursClosedRacingWriter: another transaction stores a key of the
// run while the run writes — an hourly row of the run's first origin,
// uncommitted while the run's insert waits on it, then committed. The run
// must not fail, and must leave the table a second database leaves where
// the same row was committed before the run. The racing row's values (999
// kWh, model "racer") are overwritten by the run's in both.
func TestHoursClosedRacingWriter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// The run: the scenario's first 7 closed hours, origins day 60 01:00 …
	// 07:00; the racing key is the 1-hour-ahead hourly target of the first.
	run := func(sc runScenario) []time.Time { return sc.hours[:7] }
	origin := runFirstHour.Add(time.Hour)
	const insertRacer = `INSERT INTO energy_forecasts (machine_id, origin, target_bucket, resolution, horizon,
		predicted_kwh, predicted_kw, lower_80, upper_80, lower_95, upper_95, model)
		VALUES ($1, $2, $2, '1hour', 1, 999, 999, 999, 999, 999, 999, 'racer')`

	a := newRunScenario(t)
	if _, err := a.pool.Exec(ctx, insertRacer, machineID, origin); err != nil {
		t.Fatal(err)
	}
	if err := forecast.New(forecast.Config{Store: a.st}).HoursClosed(ctx, machineID, run(a)); err != nil {
		t.Fatal(err)
	}
	want := dumpForecasts(t, a.pool)
	// 28 rows per hour, and 7 daily at the origin day 60 05:00 UTC, the
	// factory's midnight starting 2026-03-06 (EST).
	if len(want) != 7*28+7 {
		t.Fatalf("%d rows, want 7 × 28 + 7 = 203", len(want))
	}

	b := newRunScenario(t)
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, insertRacer, machineID, origin); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- forecast.New(forecast.Config{Store: b.st}).HoursClosed(ctx, machineID, run(b)) }()
	waitForLockWait(t, b.pool, done)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the run failed after a racing writer stored one of its keys: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the run did not finish within 30 s of the racing writer's commit")
	}
	sameTable(t, "run raced by a writer", want, dumpForecasts(t, b.pool))
}

// waitForLockWait returns once a session of pool's database waits for a
// lock (the run's insert waiting on the racing transaction's key); it
// fails the test when the run ends first or after 30 s.
func waitForLockWait(t *testing.T, pool *pgxpool.Pool, done <-chan error) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(30 * time.Second)
	for {
		var waiting bool
		if err := pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			return
		}
		select {
		case err := <-done:
			t.Fatalf("the run ended (%v) without waiting for the racing writer", err)
		case <-timeout:
			t.Fatal("the run did not wait for the racing writer within 30 s")
		case <-tick.C:
		}
	}
}

// TestSaveForecastRunKeepsSessionSettings: SaveForecastRun turns
// sequential scans off for its own transaction only; the connection's next
// statement plans with the server's setting again (a pool of one
// connection, so it is the same session).
func TestSaveForecastRunKeepsSessionSettings(t *testing.T) {
	t.Parallel()
	sc := newRunScenario(t)
	ctx := context.Background()
	one := onePool(t, sc.pool)
	if err := forecast.New(forecast.Config{Store: store.New(one)}).HoursClosed(ctx, machineID, sc.hours[:2]); err != nil {
		t.Fatal(err)
	}
	var n int
	var seqscan string
	if err := one.QueryRow(ctx, `SELECT count(*), current_setting('enable_seqscan') FROM energy_forecasts`).Scan(&n, &seqscan); err != nil {
		t.Fatal(err)
	}
	if n != 2*28 { // origins day 60 01:00 and 02:00: no local midnight
		t.Fatalf("%d rows, want 2 × 28 = 56", n)
	}
	if seqscan != "on" {
		t.Errorf("enable_seqscan = %s after the run, want on", seqscan)
	}
}
