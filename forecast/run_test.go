package forecast_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
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
// (HoursClosed) — with one Service, with a fresh Service (cold cache) per
// run, and as one run — leave the same energy_forecasts, row for row and
// column for column but issued_at and created_at. With the default 90-day
// retention nothing is pruned and the whole record is compared: forecasts,
// daily forecasts at the local midnights, the insert-time actuals and those
// recorded as targets close within a run. With a 30-hour retention the
// prune at a run's last local midnight deletes rows issued earlier in the
// same run (the 68-hour run, origins day 62 04:00 to day 65 00:00, holds
// the local midnights at day 63 and day 64 04:00 UTC).
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
			} else if unpruned := 116*28 + 4*7; len(want) >= unpruned {
				// Else the runs' prune would be compared with a prune that
				// deletes nothing.
				t.Fatalf("%d rows with a %s retention, want fewer than the %d kept without one", len(want), retention, unpruned)
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

			// All 116 hours as one run (with the default retention 3,276 rows:
			// two of SaveForecastRun's statements).
			d := newRunScenario(t)
			if err := forecast.New(cfg(d.st)).HoursClosed(ctx, machineID, d.hours); err != nil {
				t.Fatal(err)
			}
			sameTable(t, "one run of 116 hours", want, dumpForecasts(t, d.pool))
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
// recorded actuals, and the scoring finds nothing left to score. The run,
// day 60 21:00 to day 62 14:00 UTC (origins), crosses a UTC and two local
// midnights and the machine's closed_through (day 61 06:00).
//
// Then late data revises two hours (energy 999 kWh) without hour_revised
// having been handled yet, and the run is closed again, here as a run and
// in a second database hour by hour: the tables agree. Closing hour by hour
// reads the actual of a target again only when it had closed before the
// forecast was issued (day 61 03:00, before closed_through); a target that
// closed later (day 61 20:00) keeps the actual recorded when its hour
// closed.
func TestHoursClosedTwice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	revised := []time.Time{day0.Add(61*24*time.Hour + 3*time.Hour), day0.Add(61*24*time.Hour + 20*time.Hour)}
	revise := func(pool *pgxpool.Pool) {
		if _, err := pool.Exec(ctx, `UPDATE energy_readings_1hour SET total_energy_kwh = 999 WHERE machine_id = $1 AND bucket = ANY ($2)`,
			machineID, revised); err != nil {
			t.Fatal(err)
		}
	}
	b := newRunScenario(t)
	run := b.hours[20:60]
	svc := forecast.New(forecast.Config{Store: b.st})
	if err := svc.HoursClosed(ctx, machineID, run); err != nil {
		t.Fatal(err)
	}
	once := dumpForecasts(t, b.pool)
	var scored int
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM energy_forecasts WHERE actual_kwh IS NOT NULL AND target_bucket > $1`,
		runClosedThrough).Scan(&scored); err != nil {
		t.Fatal(err)
	}
	if scored == 0 {
		t.Fatal("the run scored no target closing within it")
	}
	if err := svc.HoursClosed(ctx, machineID, run); err != nil {
		t.Fatal(err)
	}
	sameTable(t, "the run again, same service", once, dumpForecasts(t, b.pool))
	if err := forecast.New(forecast.Config{Store: b.st}).HoursClosed(ctx, machineID, run); err != nil {
		t.Fatal(err)
	}
	sameTable(t, "the run again, fresh service", once, dumpForecasts(t, b.pool))

	revise(b.pool)
	if err := svc.HoursClosed(ctx, machineID, run); err != nil {
		t.Fatal(err)
	}
	a := newRunScenario(t)
	svc = forecast.New(forecast.Config{Store: a.st})
	for i := range 2 {
		if i == 1 {
			revise(a.pool)
		}
		for _, h := range run {
			if err := svc.HourClosed(ctx, machineID, h); err != nil {
				t.Fatal(err)
			}
		}
	}
	sameTable(t, "the run again after revisions", dumpForecasts(t, a.pool), dumpForecasts(t, b.pool))
	var reread, kept int
	if err := a.pool.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE target_bucket = $2 AND actual_kwh = 999),
		       count(*) FILTER (WHERE target_bucket = $3 AND actual_kwh <> 999)
		FROM energy_forecasts WHERE machine_id = $1 AND resolution = '1hour'`, machineID, revised[0], revised[1]).Scan(&reread, &kept); err != nil {
		t.Fatal(err)
	}
	if reread == 0 || kept == 0 {
		t.Errorf("%d hourly targets at %s re-read, %d at %s kept: want some of each", reread, revised[0], kept, revised[1])
	}
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

// TestHoursClosedRoundTrips: with the models fitted at the day's UTC
// midnight (by closing 00:00–01:00), a run of the next 21 hours of that day
// in a UTC factory (origins 02:00 … 22:00: no midnight, so no refit, daily
// forecast or prune) costs two round trips — one read of the run's buckets,
// one batch writing its 21 × 28 rows and scores — where closing them one
// by one costs 2 × 21. Rescoring a revised hour (HourRevised) is one
// batch: one round trip.
func TestHoursClosedRoundTrips(t *testing.T) {
	t.Parallel()
	pool, _ := fixture(t)
	insertRollups(t, pool, simPower(5, 41*96), 0, 41*96)
	ctx := context.Background()
	st, trips := tracedStore(t, pool)
	midnight := day0.Add(40 * 24 * time.Hour)
	var run []time.Time
	for h := 1; h <= 21; h++ {
		run = append(run, midnight.Add(time.Duration(h)*time.Hour))
	}
	for _, c := range []struct {
		name  string
		close func(svc *forecast.Service) error
		want  int64
	}{
		{"run", func(svc *forecast.Service) error { return svc.HoursClosed(ctx, machineID, run) }, 2},
		{"hour by hour", func(svc *forecast.Service) error {
			for _, h := range run {
				if err := svc.HourClosed(ctx, machineID, h); err != nil {
					return err
				}
			}
			return nil
		}, 2 * 21},
		{"revised", func(svc *forecast.Service) error { return svc.HourRevised(ctx, machineID, midnight) }, 1},
	} {
		svc := forecast.New(forecast.Config{Store: st})
		if err := svc.HourClosed(ctx, machineID, midnight); err != nil {
			t.Fatal(err)
		}
		fits, before := svc.Fits(), trips.n.Load()
		if err := c.close(svc); err != nil {
			t.Fatal(err)
		}
		if got := trips.n.Load() - before; got != c.want {
			t.Errorf("%s: %d round trips, want %d", c.name, got, c.want)
		}
		if svc.Fits() != fits {
			t.Errorf("%s refitted", c.name)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM energy_forecasts WHERE origin > $1`, midnight.Add(time.Hour)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 21*28 {
		t.Errorf("%d rows issued by the run, want 21 × 28 = 588", n)
	}
}

// BenchmarkHoursClosedRun is a backfill of one machine with 90 days of
// history (UTC factory): 128 hours closing from day 90 00:00, as one
// HoursClosed run ("run") and as 128 HourClosed calls ("single"). Each
// iteration starts a fresh Service, so both do the same 17 fits: the
// hourly and 15-minute models at the first hour and at the five UTC
// midnights inside the run (2 + 5 × 2), and the daily model at those five
// midnights (the factory's local midnights). Each iteration starts from an
// empty forecast table (truncated off the clock), as a backfill writes new
// rows. "ahead": the machine's hours
// are closed through the end of its data (analytics_hour_state as a
// backfill leaves it), so every target inside the data gets its actual with
// the row; "behind": no hour is recorded closed, so a target gets it when
// its hour closes (hour by hour: an update of the stored row). hours/s is
// 128 × iterations over the timed seconds; round-trips/op counts the
// queries and batches the service sent per 128 hours (statement
// preparation aside).
func BenchmarkHoursClosedRun(b *testing.B) {
	const n = 128
	var hours []time.Time
	for i := range n {
		hours = append(hours, day0.Add(90*24*time.Hour+time.Duration(i)*time.Hour))
	}
	closers := []struct {
		name  string
		close func(ctx context.Context, svc *forecast.Service) error
	}{
		{"run", func(ctx context.Context, svc *forecast.Service) error {
			return svc.HoursClosed(ctx, machineID, hours)
		}},
		{"single", func(ctx context.Context, svc *forecast.Service) error {
			for _, h := range hours {
				if err := svc.HourClosed(ctx, machineID, h); err != nil {
					return err
				}
			}
			return nil
		}},
	}
	for _, state := range []string{"ahead", "behind"} {
		for _, c := range closers {
			b.Run(state+"/"+c.name, func(b *testing.B) {
				pool, _ := fixture(b)
				insertRollups(b, pool, simPower(3, 96*96), 0, 96*96) // 90 days of history, 6 of the run
				ctx := context.Background()
				st, trips := tracedStore(b, pool)
				if state == "ahead" {
					last := day0.Add(96*24*time.Hour - time.Hour)
					if _, err := pool.Exec(ctx, `INSERT INTO analytics_hour_state (machine_id, open_hour, closed_through)
						VALUES ($1, $2, $2)`, machineID, last); err != nil {
						b.Fatal(err)
					}
				}
				var fits int64
				for b.Loop() {
					b.StopTimer()
					if _, err := pool.Exec(ctx, `TRUNCATE energy_forecasts`); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					svc := forecast.New(forecast.Config{Store: st})
					if err := c.close(ctx, svc); err != nil {
						b.Fatal(err)
					}
					fits = svc.Fits()
				}
				if fits != 17 {
					b.Fatalf("%d fits per iteration, want 17", fits)
				}
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "hours/s")
				b.ReportMetric(float64(trips.n.Load())/float64(b.N), "round-trips/op")
			})
		}
	}
}

// tracedStore is a Store on a new pool to pool's database, closed at the
// end of the test, whose queries and batches are counted in trips.
func tracedStore(tb testing.TB, pool *pgxpool.Pool) (st *store.Store, trips *roundTrips) {
	tb.Helper()
	trips = &roundTrips{}
	cfg := pool.Config()
	cfg.ConnConfig.Tracer = trips
	traced, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(traced.Close)
	return store.New(traced), trips
}

// onePool is a pool of one connection to pool's database, closed at the
// end of the test: every call through it runs in the same session.
func onePool(tb testing.TB, pool *pgxpool.Pool) *pgxpool.Pool {
	tb.Helper()
	cfg := pool.Config()
	cfg.MaxConns = 1
	one, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(one.Close)
	return one
}

// roundTrips counts the queries and batches sent through a pool (a pgx
// tracer): each is one round trip.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	r.n.Add(1)
	return ctx
}

func (r *roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (r *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	r.n.Add(1)
	return ctx
}

func (r *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (r *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}
