package baseline

import (
	"context"
	"testing"
	"time"

	"github.com/enms/enms-analytics/listener"
	"github.com/enms/enms-analytics/triggers"
)

// TestRollingThroughTheWorker drives the rolling model the way the service
// does: raw readings are inserted hour by hour, the rollup triggers close
// each hour, the worker hands hour_closed to HourClosedHandler, and a late
// reading's hour_revised reaches HourRevisedHandler. The model then equals a
// from-scratch fit over its window.
func TestRollingThroughTheWorker(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.WindowDays = 2; c.MinSamples = 10; c.PublishInterval = 1000 * time.Hour })
	ctx := context.Background()
	m := b.machine(t, "live")
	drivers := []string{"production_count", "cdd"}
	rows := knownTruth(4*24, 11)
	// an active baseline fixes the drivers; it is trained on rollup rows of
	// another machine's copy of the data so this machine's rollups come
	// only from the raw readings below
	seedM := b.machine(t, "seed")
	b.insertHours(t, seedM, rows)
	f, err := b.svc.fitHoursFor(ctx, seedM, drivers, rows[0].hour, rows[len(rows)-1].hour.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	f.machineID = m
	if _, err := b.svc.publish(ctx, nil, f, f.metadata("test"), "test"); err != nil {
		t.Fatal(err)
	}

	closed := make(chan time.Time, 16)
	revised := make(chan time.Time, 16)
	b.startWorker(t, func(w *listener.Worker) {
		onClosed, onRevised := b.svc.HourClosedHandler(), b.svc.HourRevisedHandler()
		w.Handle(triggers.KindHourClosed, func(ctx context.Context, ev triggers.Event) error {
			if err := onClosed(ctx, ev); err != nil || ev.MachineID != m {
				return err
			}
			closed <- ev.Bucket
			return nil
		})
		w.Handle(triggers.KindHourRevised, func(ctx context.Context, ev triggers.Event) error {
			if err := onRevised(ctx, ev); err != nil || ev.MachineID != m {
				return err
			}
			revised <- ev.Bucket
			return nil
		})
	})
	waitFor := func(ch chan time.Time, hour time.Time) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case h := <-ch:
				if h.Equal(hour) {
					return
				}
			case <-deadline:
				t.Fatalf("hour %s was not handled within 30 s", hour)
			}
		}
	}
	insert := func(r hourRow, at time.Time, kwh float64) {
		t.Helper()
		tx, err := b.pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`INSERT INTO energy_readings (time, machine_id, power_kw, energy_kwh) VALUES ($1, $2, $3, $3)`, []any{at, m, kwh}},
			{`INSERT INTO production_data (time, machine_id, production_count, operating_mode) VALUES ($1, $2, $3, 'running')`,
				[]any{at, m, int64(r.units)}},
			{`INSERT INTO environmental_data (time, machine_id, outdoor_temp_c) VALUES ($1, $2, $3)`, []any{at, m, r.temp}},
		} {
			if _, err := tx.Exec(ctx, q.sql, q.args...); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// each hour's reading closes the hour before it
	for i, r := range rows {
		insert(r, r.hour, r.kwh)
		if i > 0 {
			waitFor(closed, rows[i-1].hour)
		}
	}
	lastClosed := rows[len(rows)-2].hour
	start := lastClosed.Add(time.Hour - 2*24*time.Hour)
	_, model := b.rollingModel(t, m)
	sameModel(t, "live", model, b.batchFit(t, m, drivers, start, lastClosed.Add(time.Hour)), 1e-8)
	if model.N != 48 {
		t.Errorf("n = %d, want the 48 hours of the 2-day window", model.N)
	}

	// a late reading in a closed hour: hour_revised corrects the model
	late := rows[len(rows)-10]
	if _, err := b.pool.Exec(ctx, `INSERT INTO energy_readings (time, machine_id, power_kw, energy_kwh) VALUES ($1, $2, 5, 5)`,
		late.hour.Add(30*time.Minute), m); err != nil {
		t.Fatal(err)
	}
	waitFor(revised, late.hour)
	_, model = b.rollingModel(t, m)
	sameModel(t, "after the late reading", model, b.batchFit(t, m, drivers, start, lastClosed.Add(time.Hour)), 1e-8)
}
