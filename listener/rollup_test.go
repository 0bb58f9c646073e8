package listener

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/enms/enms-analytics/internal/workertest"
	"github.com/enms/enms-analytics/triggers"
)

// hourKey names one machine-hour event.
type hourKey struct {
	kind    triggers.Kind
	machine string
	hour    time.Time
}

// hourCounter counts handler calls per machine-hour and kind.
type hourCounter struct {
	mu      sync.Mutex
	n       map[hourKey]int
	total   int
	changed chan struct{}
}

func newHourCounter() *hourCounter {
	return &hourCounter{n: map[hourKey]int{}, changed: make(chan struct{}, 1)}
}

func (c *hourCounter) handle(_ context.Context, ev triggers.Event) error {
	c.mu.Lock()
	c.n[hourKey{ev.Kind, ev.MachineID, ev.Bucket.UTC()}]++
	c.total++
	c.mu.Unlock()
	wake(c.changed)
	return nil
}

func (c *hourCounter) waitTotal(t testing.TB, want int) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		got := c.total
		c.mu.Unlock()
		if got >= want {
			return
		}
		select {
		case <-c.changed:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %d hour events; %d handled", want, got)
		}
	}
}

// writeHour writes, in one transaction, one time step of readings for the
// given machines: energy at :00 and :30, production at :10, environment at
// :20 (step 0–3).
func writeStep(ctx context.Context, pool *pgxpool.Pool, machines []string, hour time.Time, step int) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		switch step {
		case 0, 3:
			ts := hour.Add(map[int]time.Duration{0: 0, 3: 30 * time.Minute}[step])
			_, err = tx.Exec(ctx, `INSERT INTO energy_readings (time, machine_id, power_kw, energy_kwh)
				SELECT $1, m::uuid, 40, 20 FROM unnest($2::text[]) m`, ts, machines)
		case 1:
			_, err = tx.Exec(ctx, `INSERT INTO production_data (time, machine_id, production_count, operating_mode)
				SELECT $1, m::uuid, 100, 'running' FROM unnest($2::text[]) m`, hour.Add(10*time.Minute), machines)
		case 2:
			_, err = tx.Exec(ctx, `INSERT INTO environmental_data (time, machine_id, outdoor_temp_c)
				SELECT $1, m::uuid, 12.5 FROM unnest($2::text[]) m`, hour.Add(20*time.Minute), machines)
		}
		return err
	})
}

// TestConcurrentWritersCloseEveryHourOnce: four writers interleave readings
// for 100 machines across 48 hours (each writer owns 25 machines and writes
// them in time order, one transaction per time step, across the three raw
// tables). Every machine-hour is handled exactly once as hour_closed — the
// first 47 hours by the data that follows them, the 48th by the sweeper
// (the hours lie in the past, beyond HOUR_CLOSE_GRACE) — and no revision is
// emitted. Then a late reading for a closed hour yields exactly one
// hour_revised, and re-sending it unchanged yields none.
func TestConcurrentWritersCloseEveryHourOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	const nMachines, nHours, nWriters = 100, 48, 4
	ms := b.machines(t, nMachines)
	counter := newHourCounter()
	w := newWorker(t, b, Config{Concurrency: 4})
	w.Handle(triggers.KindHourClosed, counter.handle)
	w.Handle(triggers.KindHourRevised, counter.handle)
	workertest.Start(t, w)

	var wg sync.WaitGroup
	errs := make(chan error, nWriters)
	for wr := range nWriters {
		own := ms[wr*nMachines/nWriters : (wr+1)*nMachines/nWriters]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for h := range nHours {
				for step := range 4 {
					if err := writeStep(ctx, b.pool, own, hour0.Add(time.Duration(h)*time.Hour), step); err != nil {
						errs <- fmt.Errorf("writer %d hour %d step %d: %w", wr, h, step, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// The last hour has no later data: the sweeper closes it (called here
	// rather than waiting for the worker's minute-long tick).
	closed, err := b.st.CloseStaleHours(ctx, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if closed != nMachines {
		t.Errorf("the sweeper closed %d hours, want %d (the last hour of each machine)", closed, nMachines)
	}
	counter.waitTotal(t, nMachines*nHours)

	counter.mu.Lock()
	for _, m := range ms {
		for h := range nHours {
			k := hourKey{triggers.KindHourClosed, m, hour0.Add(time.Duration(h) * time.Hour)}
			if n := counter.n[k]; n != 1 {
				t.Errorf("machine %s hour %d closed %d times, want once", m, h, n)
			}
		}
	}
	if counter.total != nMachines*nHours {
		t.Errorf("%d hour events handled, want %d (no revisions, nothing else)", counter.total, nMachines*nHours)
	}
	counter.mu.Unlock()
	last := hour0.Add((nHours - 1) * time.Hour)
	eventuallyDB(t, "last_closed_hour of every machine = the 48th hour", func() (bool, error) {
		var n int
		err := b.pool.QueryRow(ctx, `SELECT count(*) FROM analytics_machine_state WHERE last_closed_hour = $1`, last).Scan(&n)
		return n == nMachines, err
	})

	// A late reading for hour 10 of the first machine, in a statement of two
	// rows: one hour_revised for that machine-hour.
	late := hour0.Add(10 * time.Hour)
	if _, err := b.pool.Exec(ctx, `INSERT INTO energy_readings (time, machine_id, power_kw, energy_kwh)
		VALUES ($1, $2, 55, 1), ($3, $2, 56, 1)`, late.Add(40*time.Minute), ms[0], late.Add(50*time.Minute)); err != nil {
		t.Fatal(err)
	}
	counter.waitTotal(t, nMachines*nHours+1)
	// Re-sending one of those readings unchanged changes no rollup: no event.
	// The marker event written after it proves the worker got that far.
	if _, err := b.pool.Exec(ctx, `INSERT INTO energy_readings (time, machine_id, power_kw, energy_kwh)
		VALUES ($1, $2, 55, 1) ON CONFLICT (machine_id, time) DO UPDATE SET power_kw = excluded.power_kw, energy_kwh = excluded.energy_kwh`,
		late.Add(40*time.Minute), ms[0]); err != nil {
		t.Fatal(err)
	}
	marker := hour0.Add(1000 * time.Hour)
	if _, err := b.pool.Exec(ctx, `INSERT INTO analytics_events (kind, machine_id, bucket) VALUES ('hour_revised', $1, $2)`, ms[0], marker); err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, string(triggers.ChannelHourClosed), ms[0]); err != nil {
		t.Fatal(err)
	}
	counter.waitTotal(t, nMachines*nHours+2)
	counter.mu.Lock()
	defer counter.mu.Unlock()
	if n := counter.n[hourKey{triggers.KindHourRevised, ms[0], late}]; n != 1 {
		t.Errorf("late reading: %d hour_revised for hour 10, want 1", n)
	}
	if counter.total != nMachines*nHours+2 {
		t.Errorf("%d hour events handled, want %d: the re-sent reading must not emit one", counter.total, nMachines*nHours+2)
	}
}

// TestSweeperClosesStaleHours: the worker's sweeper closes an hour that
// got no newer data within HOUR_CLOSE_GRACE, and the handler receives it.
func TestSweeperClosesStaleHours(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ms := b.machines(t, 2)
	counter := newHourCounter()
	// One machine's last hour is in the past (closes); the other's is the
	// current hour (within grace: stays open).
	now := time.Now().UTC().Truncate(time.Hour)
	if _, err := b.pool.Exec(ctx, `INSERT INTO energy_readings (time, machine_id, power_kw) VALUES ($1, $2, 10), ($3, $4, 10)`,
		hour0, ms[0], now, ms[1]); err != nil {
		t.Fatal(err)
	}
	w := newWorker(t, b, Config{SweepInterval: 20 * time.Millisecond, HourCloseGrace: 10 * time.Minute})
	w.Handle(triggers.KindHourClosed, counter.handle)
	workertest.Start(t, w)
	counter.waitTotal(t, 1)
	counter.mu.Lock()
	defer counter.mu.Unlock()
	if counter.n[hourKey{triggers.KindHourClosed, ms[0], hour0}] != 1 {
		t.Errorf("handled %v, want hour_closed for the stale hour", counter.n)
	}
	var open int
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM analytics_events WHERE machine_id = $1`, ms[1]).Scan(&open); err != nil {
		t.Fatal(err)
	}
	if open != 0 {
		t.Errorf("the current hour was closed (%d events) before its grace ran out", open)
	}
}

// TestPruneEvents: events done longer ago than EventRetention are deleted,
// newer ones and parked ones kept.
func TestPruneEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ms := b.machines(t, 1)
	_, err := b.pool.Exec(ctx, `
		INSERT INTO analytics_events (kind, machine_id, bucket, done_at, parked_at) VALUES
		  ('hour_closed', $1, $2, now() - interval '8 days', NULL),
		  ('hour_closed', $1, $2 + interval '1 hour', now() - interval '6 days', NULL),
		  ('hour_closed', $1, $2 + interval '2 hours', NULL, now() - interval '30 days')`, ms[0], hour0)
	if err != nil {
		t.Fatal(err)
	}
	n, err := b.st.PruneEvents(ctx, 7*24*time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("pruned %d (%v), want 1: the event done 8 days ago", n, err)
	}
	if left := scalar[int64](t, b.pool, `SELECT count(*) FROM analytics_events`); left != 2 {
		t.Errorf("%d events left, want 2", left)
	}
}
