package forecast_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/enms/enms-analytics/forecast"
	"github.com/enms/enms-analytics/store"
)

// runScenario is a backfill in a New York factory: 66 days of rollups from
// day0 (2026-01-05) and the hours closing from day 60 00:00 UTC (2026-03-06)
// to day 64 23:00 UTC, 120 hours, less two gaps whose rollups are missing
// (no hour_closed is raised for them): day 61 10:00–13:00 (3 hours), and
// day 62 04:00–05:00, the hour ending at the local midnight starting
// 2026-03-08 — so no daily forecast is issued there and the daily target of
// 2026-03-07, ending within that hour, is not scored when its hour closes.
// 116 closed hours. The run crosses five UTC midnights (refits), the New
// York midnights at 05:00 UTC (EST) and, after the change to summer time on
// 2026-03-08 (a 23-hour local day), at 04:00 UTC (EDT). The machine's hours
// are closed through day 61 06:00 (analytics_hour_state, as during a
// backfill): targets ending by day 61 07:00 get their actuals when they are
// written, later ones when their hour closes within the run.
type runScenario struct {
	pool  *pgxpool.Pool
	st    *store.Store
	hours []time.Time
}

var (
	runFirstHour = day0.Add(60 * 24 * time.Hour)
	runGaps      = []time.Time{
		day0.Add(61*24*time.Hour + 10*time.Hour), day0.Add(61*24*time.Hour + 11*time.Hour),
		day0.Add(61*24*time.Hour + 12*time.Hour), day0.Add(62*24*time.Hour + 4*time.Hour),
	}
	runClosedThrough = day0.Add(61*24*time.Hour + 6*time.Hour)
)

func newRunScenario(t testing.TB) runScenario {
	t.Helper()
	pool, st := fixture(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `UPDATE factories SET timezone = 'America/New_York' WHERE id = $1`, factoryID); err != nil {
		t.Fatal(err)
	}
	insertRollups(t, pool, simPower(11, 66*96), 0, 66*96)
	if _, err := pool.Exec(ctx, `
		DELETE FROM energy_readings_1hour WHERE machine_id = $1 AND bucket = ANY ($2);
		`, machineID, runGaps); err != nil {
		t.Fatal(err)
	}
	for _, h := range runGaps {
		if _, err := pool.Exec(ctx, `DELETE FROM energy_readings_15min WHERE machine_id = $1 AND bucket >= $2 AND bucket < $3`,
			machineID, h, h.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `INSERT INTO analytics_hour_state (machine_id, open_hour, closed_through) VALUES ($1, $2, $2)`,
		machineID, runClosedThrough); err != nil {
		t.Fatal(err)
	}
	var hours []time.Time
	for h := runFirstHour; h.Before(runFirstHour.Add(120 * time.Hour)); h = h.Add(time.Hour) {
		if !slices.ContainsFunc(runGaps, h.Equal) {
			hours = append(hours, h)
		}
	}
	if len(hours) != 116 {
		t.Fatalf("%d closed hours, want 120 − 4 = 116", len(hours))
	}
	return runScenario{pool: pool, st: st, hours: hours}
}

// dumpForecasts is the machine's forecast table, every column but the
// wall-clock ones, one JSON text per row in key order.
func dumpForecasts(t testing.TB, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT (to_jsonb(f) - '{issued_at,created_at}'::text[])::text FROM energy_forecasts f
		ORDER BY machine_id, origin, resolution, target_bucket`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameTable(t *testing.T, what string, want, got []string) {
	t.Helper()
	for i := range min(len(want), len(got)) {
		if want[i] != got[i] {
			t.Fatalf("%s: row %d differs:\nhour by hour: %s\n     got: %s", what, i, want[i], got[i])
		}
	}
	if len(want) != len(got) {
		t.Fatalf("%s: %d rows, hour by hour left %d", what, len(got), len(want))
	}
}

// splitRuns cuts hours into runs of the given sizes, the rest last.
func splitRuns(hours []time.Time, sizes ...int) [][]time.Time {
	var runs [][]time.Time
	for _, n := range sizes {
		runs, hours = append(runs, hours[:n]), hours[n:]
	}
	return append(runs, hours)
}

// TestHoursClosedEqualsHourByHour: the scenario's 116 hours closed hour by
// hour (HourClosed) and in runs of 1, 7, 40 and the remaining 68 hours
// (HoursClosed) — with one Service, and with a fresh Service (cold cache)
// per run — leave the same energy_forecasts, row for row and column for
// column but issued_at and created_at. With the default 90-day retention
// nothing is pruned and the whole record is compared: forecasts, daily
// forecasts at the local midnights, the insert-time actuals and those
// recorded as targets close within a run. With a 30-hour retention the
// prune at a run's last local midnight deletes rows issued earlier in the
// same run (the 68-hour run holds three local midnights).
func TestHoursClosedEqualsHourByHour(t *testing.T) {
	t.Parallel()
	for _, retention := range []time.Duration{0, 30 * time.Hour} {
		t.Run(fmt.Sprintf("retention=%s", retention), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			cfg := func(st *store.Store) forecast.Config { return forecast.Config{Store: st, Retention: retention} }

			a := newRunScenario(t)
			svc := forecast.New(cfg(a.st))
			for _, h := range a.hours {
				if err := svc.HourClosed(ctx, machineID, h); err != nil {
					t.Fatal(err)
				}
			}
			want := dumpForecasts(t, a.pool)
			if retention == 0 {
				checkRecord(t, a, want)
			}

			b := newRunScenario(t)
			svc = forecast.New(cfg(b.st))
			for _, run := range splitRuns(b.hours, 1, 7, 40) {
				if err := svc.HoursClosed(ctx, machineID, run); err != nil {
					t.Fatal(err)
				}
			}
			sameTable(t, "runs of 1, 7, 40, 68 hours", want, dumpForecasts(t, b.pool))

			c := newRunScenario(t)
			for _, run := range splitRuns(c.hours, 1, 7, 40) {
				if err := forecast.New(cfg(c.st)).HoursClosed(ctx, machineID, run); err != nil {
					t.Fatal(err)
				}
			}
			sameTable(t, "runs with a cold cache each", want, dumpForecasts(t, c.pool))
		})
	}
}

// checkRecord checks that the record closed hour by hour holds what the
// scenario is built to exercise, so that the comparison is not one of empty
// or trivial tables.
func checkRecord(t *testing.T, sc runScenario, dump []string) {
	t.Helper()
	ctx := context.Background()
	// 24 hourly + 4 quarter-hour rows per closed hour, and 7 daily rows at
	// each local midnight closed: 2026-03-06 05:00, 03-07 05:00 (EST), 03-09
	// 04:00, 03-10 04:00 (EDT) UTC; 03-08 05:00 is the gap.
	if want := 116*28 + 4*7; len(dump) != want {
		t.Errorf("%d rows, want 116 × 28 + 4 × 7 = %d", len(dump), want)
	}
	var scoredLate, dst int
	var gapDay *float64
	if err := sc.pool.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE actual_kwh IS NOT NULL AND target_bucket >= $2),
		       count(*) FILTER (WHERE resolution = '1day' AND target_bucket = '2026-03-08 00:00 America/New_York'
		                        AND actual_kwh IS NOT NULL),
		       max(actual_kwh) FILTER (WHERE resolution = '1day' AND target_bucket = '2026-03-07 00:00 America/New_York')
		FROM energy_forecasts WHERE machine_id = $1`, machineID, runClosedThrough.Add(time.Hour)).Scan(&scoredLate, &dst, &gapDay); err != nil {
		t.Fatal(err)
	}
	// Targets after the hours closed through: scored only as their hours
	// close within the run.
	if scoredLate == 0 {
		t.Error("no target after closed_through was scored")
	}
	// The 23-hour local day 2026-03-08 ends at 03-09 04:00 UTC, within the
	// run: its daily targets (issued at 03-06 and 03-07) are scored.
	if dst != 2 {
		t.Errorf("%d daily targets of 2026-03-08 scored, want 2", dst)
	}
	// The local day 2026-03-07 ends at 03-08 05:00 UTC, the end of the gap
	// hour: it never closed, so its daily targets stay unscored.
	if gapDay != nil {
		t.Errorf("the daily target of 2026-03-07 was scored (%v) though its last hour never closed", *gapDay)
	}
}

// TestHoursClosedTwice: closing the same 40-hour run again — with the
// Service whose models have passed it (they refit), and with a fresh one —
// leaves the same table: the upsert rewrites the same values and keeps the
// recorded actuals, and the scoring finds nothing left to score.
func TestHoursClosedTwice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sc := newRunScenario(t)
	run := sc.hours[30:70] // day 61 07:00 … day 62 22:00 UTC: a UTC and a local midnight
	svc := forecast.New(forecast.Config{Store: sc.st})
	if err := svc.HoursClosed(ctx, machineID, run); err != nil {
		t.Fatal(err)
	}
	once := dumpForecasts(t, sc.pool)
	var scored int
	if err := sc.pool.QueryRow(ctx, `SELECT count(*) FROM energy_forecasts WHERE actual_kwh IS NOT NULL`).Scan(&scored); err != nil {
		t.Fatal(err)
	}
	if scored == 0 {
		t.Fatal("the run scored nothing")
	}
	if err := svc.HoursClosed(ctx, machineID, run); err != nil {
		t.Fatal(err)
	}
	sameTable(t, "the run again, same service", once, dumpForecasts(t, sc.pool))
	if err := forecast.New(forecast.Config{Store: sc.st}).HoursClosed(ctx, machineID, run); err != nil {
		t.Fatal(err)
	}
	sameTable(t, "the run again, fresh service", once, dumpForecasts(t, sc.pool))
}

// TestHoursClosedRejectsBadRuns: hours that are not starts of hours, or
// not strictly increasing, are refused before anything is read or written.
func TestHoursClosedRejectsBadRuns(t *testing.T) {
	t.Parallel()
	pool, st := fixture(t)
	svc := forecast.New(forecast.Config{Store: st})
	h := day0.Add(40 * 24 * time.Hour)
	for _, run := range [][]time.Time{
		{h, h.Add(90 * time.Minute)},
		{h, h.Add(time.Hour), h.Add(time.Hour)},
		{h.Add(time.Hour), h},
	} {
		if err := svc.HoursClosed(context.Background(), machineID, run); err == nil {
			t.Errorf("HoursClosed(%v) succeeded", run)
		}
	}
	if n := len(dumpForecasts(t, pool)); n != 0 {
		t.Errorf("%d rows written by refused runs", n)
	}
	if err := svc.HoursClosed(context.Background(), machineID, nil); err != nil {
		t.Errorf("an empty run: %v", err)
	}
}
