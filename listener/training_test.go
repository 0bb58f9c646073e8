package listener

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/enms/enms-analytics/internal/workertest"
	"github.com/enms/enms-analytics/store"
	"github.com/enms/enms-analytics/triggers"
)

// trainCall is one call of the stand-in trainer.
type trainCall struct {
	req store.TrainRequest
	at  time.Time
}

// TestTrainRequestWakesWorker: a request inserted with plain SQL (its own
// autocommit statement, as psql sends it) reaches the trainer through the
// baseline_train_requested notification, with polling off; the latency from
// sending the INSERT (its commit follows) to the trainer's call is reported. The request ends
// done with the trainer's baseline id, and baseline_train_done carries its id.
func TestTrainRequestWakesWorker(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ms := b.machines(t, 1)
	calls := make(chan trainCall, 10)
	w := newWorker(t, b, Config{})
	w.HandleTrain(func(ctx context.Context, tx pgx.Tx, req store.TrainRequest) (TrainResult, error) {
		calls <- trainCall{req, time.Now()}
		return TrainResult{Status: store.TrainDone, BaselineID: "7b0d8c1e-2f57-4e43-9a55-3f1c2d4e5f60"}, nil
	})
	workertest.Start(t, w)

	done, err := pgx.Connect(ctx, b.url)
	if err != nil {
		t.Fatal(err)
	}
	defer done.Close(ctx)
	if _, err := done.Exec(ctx, "LISTEN "+string(triggers.ChannelTrainDone)); err != nil {
		t.Fatal(err)
	}

	psql, err := pgx.Connect(ctx, b.url)
	if err != nil {
		t.Fatal(err)
	}
	defer psql.Close(ctx)
	var worst time.Duration
	for i := range 5 {
		var id string
		sent := time.Now()
		err := psql.QueryRow(ctx, `
			INSERT INTO baseline_train_requests (machine_id, drivers, training_start, training_end, requested_by)
			VALUES ($1, '{production_count,outdoor_temp_c}', '2026-01-01', '2026-02-01', 'psql') RETURNING id`, ms[0]).Scan(&id)
		if err != nil {
			t.Fatal(err)
		}
		var c trainCall
		select {
		case c = <-calls:
		case <-time.After(waitTimeout):
			t.Fatal("the trainer was not called")
		}
		// The commit happens between sending the INSERT and its answer, and
		// the notification races the answer, so the bound is taken from
		// the moment the INSERT was sent.
		latency := c.at.Sub(sent)
		t.Logf("request %d: INSERT sent → trainer called in %.2f ms", i, float64(latency.Microseconds())/1000)
		worst = max(worst, latency)
		if c.req.ID != id || c.req.MachineID != ms[0] || len(c.req.Drivers) != 2 || c.req.Attempts != 1 || c.req.RequestedBy != "psql" {
			t.Errorf("trainer got %+v, want request %s", c.req, id)
		}
		nctx, cancel := context.WithTimeout(ctx, waitTimeout)
		n, err := done.WaitForNotification(nctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if got, err := triggers.ParseRequestNotification(n.Payload); err != nil || got.RequestID != id {
			t.Errorf("baseline_train_done payload %q (%v), want %s", n.Payload, err, id)
		}
		var status, baseline string
		if err := b.pool.QueryRow(ctx, `SELECT status, baseline_id::text FROM baseline_train_requests WHERE id = $1`, id).Scan(&status, &baseline); err != nil {
			t.Fatal(err)
		}
		if status != "done" || baseline != "7b0d8c1e-2f57-4e43-9a55-3f1c2d4e5f60" {
			t.Errorf("request ended %s with baseline %s", status, baseline)
		}
	}
	// The target is 100 ms; 1 s keeps the test robust on a busy machine.
	if worst > time.Second {
		t.Errorf("worst commit → trainer latency %s, want under 1 s", worst)
	}
}

// TestTrainOutcomes: the trainer's verdicts are recorded as it gives them;
// what it wrote in the transaction commits with a verdict and rolls back with
// an error; a transient error is retried and fails the request after
// MaxAttempts with the error in a sentence; a malformed verdict fails the
// request with the reason.
func TestTrainOutcomes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ms := b.machines(t, 1)
	var mu sync.Mutex
	tries := map[string]int{}
	finished := make(chan string, 10)
	w := newWorker(t, b, Config{MaxAttempts: 3})
	w.HandleTrain(func(ctx context.Context, tx pgx.Tx, req store.TrainRequest) (TrainResult, error) {
		mu.Lock()
		tries[req.RequestedBy]++
		mu.Unlock()
		// Every call writes a marker in the trainer's transaction.
		if _, err := tx.Exec(ctx, `UPDATE baseline_train_requests SET options = options || '{"trainer_wrote": true}' WHERE id = $1`, req.ID); err != nil {
			return TrainResult{}, err
		}
		switch req.RequestedBy {
		case "unknown-machine":
			return TrainResult{Status: store.TrainFailed, Error: fmt.Sprintf("Machine %s does not exist.", req.MachineID)}, nil
		case "low-r2":
			return TrainResult{Status: store.TrainRejected, Error: "R² 0.62 is below the minimum of 0.80.", BaselineID: "5c7a1b2e-0d4f-4a8b-9c3d-2e1f0a9b8c7d"}, nil
		case "flaky":
			return TrainResult{}, errors.New("connection reset by peer")
		case "no-reason":
			return TrainResult{Status: store.TrainRejected}, nil
		}
		return TrainResult{Status: store.TrainDone, BaselineID: "7b0d8c1e-2f57-4e43-9a55-3f1c2d4e5f60"}, nil
	})
	listen, err := pgx.Connect(ctx, b.url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := listen.Exec(ctx, "LISTEN "+string(triggers.ChannelTrainDone)); err != nil {
		t.Fatal(err)
	}
	lctx, stopListening := context.WithCancel(ctx)
	listening := make(chan struct{})
	defer func() {
		stopListening()
		<-listening
		listen.Close(ctx)
	}()
	go func() {
		defer close(listening)
		for {
			n, err := listen.WaitForNotification(lctx)
			if err != nil {
				return
			}
			finished <- n.Payload
		}
	}()
	workertest.Start(t, w)

	type want struct {
		status, errText, baseline string
		tries                     int
		trainerWrote              bool
	}
	cases := map[string]want{
		"unknown-machine": {"failed", "Machine 00000000-0000-0000-0000-000000000001 does not exist.", "", 1, true},
		"low-r2":          {"rejected", "R² 0.62 is below the minimum of 0.80.", "5c7a1b2e-0d4f-4a8b-9c3d-2e1f0a9b8c7d", 1, true},
		"flaky":           {"failed", "Training failed after 3 attempts: connection reset by peer", "", 3, false},
		"no-reason":       {"failed", "The trainer reported rejected without saying why; this is a bug in the trainer.", "", 1, false},
		"fine":            {"done", "", "7b0d8c1e-2f57-4e43-9a55-3f1c2d4e5f60", 1, true},
	}
	ids := map[string]string{}
	for name := range cases {
		machine := ms[0]
		if name == "unknown-machine" {
			machine = "00000000-0000-0000-0000-000000000001"
		}
		var id string
		if err := b.pool.QueryRow(ctx, `INSERT INTO baseline_train_requests (machine_id, requested_by) VALUES ($1, $2) RETURNING id`, machine, name).Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids[id] = name
	}
	for range cases {
		select {
		case id := <-finished:
			delete(ids, id)
		case <-time.After(waitTimeout):
			t.Fatalf("requests never finished: %v", ids)
		}
	}
	for name, wt := range cases {
		var status, errText, baseline string
		var attempts int
		var wrote bool
		err := b.pool.QueryRow(ctx, `
			SELECT status, coalesce(error, ''), coalesce(baseline_id::text, ''), attempts, options ? 'trainer_wrote'
			  FROM baseline_train_requests WHERE requested_by = $1`, name).Scan(&status, &errText, &baseline, &attempts, &wrote)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		n := tries[name]
		mu.Unlock()
		if status != wt.status || errText != wt.errText || baseline != wt.baseline || n != wt.tries || attempts != wt.tries || wrote != wt.trainerWrote {
			t.Errorf("%s: status=%s error=%q baseline=%q tries=%d attempts=%d trainer_wrote=%v; want %+v",
				name, status, errText, baseline, n, attempts, wrote, wt)
		}
	}
}
