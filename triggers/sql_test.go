package triggers_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/enms/enms-analytics/internal/testdb"
	"github.com/enms/enms-analytics/store"
	"github.com/enms/enms-analytics/triggers"
)

func TestMain(m *testing.M) { testdb.Main(m) }

const waitTimeout = 30 * time.Second

var t0 = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

func newMachine(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var id string
	err := pool.QueryRow(context.Background(), `
		WITH f AS (INSERT INTO factories (name) VALUES ('plant-' || gen_random_uuid()) RETURNING id)
		INSERT INTO machines (factory_id, name, type) SELECT id, 'compressor-1', 'compressor' FROM f RETURNING id::text`).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// listen opens a connection listening on the given channels.
func listen(t *testing.T, url string, channels ...triggers.Channel) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	for _, ch := range channels {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{string(ch)}.Sanitize()); err != nil {
			t.Fatal(err)
		}
	}
	return conn
}

func next(t *testing.T, conn *pgx.Conn) (channel, payload string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	n, err := conn.WaitForNotification(ctx)
	if err != nil {
		t.Fatalf("waiting for a notification: %v", err)
	}
	return n.Channel, n.Payload
}

// noMore checks that no further notification is queued: it sends a marker
// on a private channel and expects it to be the next one.
func noMore(t *testing.T, pool *pgxpool.Pool, conn *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "LISTEN contract_test_marker"); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "SELECT pg_notify('contract_test_marker', '')"); err != nil {
		t.Fatal(err)
	}
	if ch, p := next(t, conn); ch != "contract_test_marker" {
		t.Errorf("unexpected extra notification %s %q", ch, p)
	}
}

// TestStatusChangeContract: a machine_status upsert that changes the state
// notifies machine_status_changed with a payload ParseMachineNotification
// accepts, and writes a status_changed event whose payload ParseStatusChange
// reads back exactly; an upsert that changes nothing emits nothing.
func TestStatusChangeContract(t *testing.T) {
	t.Parallel()
	url := testdb.URL(t)
	pool := testdb.Pool(t, url)
	ctx := context.Background()
	m := newMachine(t, pool)
	conn := listen(t, url, triggers.ChannelStatusChanged)

	at := t0.Add(90 * time.Minute)
	if _, err := pool.Exec(ctx, `INSERT INTO machine_status (machine_id, is_running, current_mode, last_updated) VALUES ($1, true, 'running', $2)`, m, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE machine_status SET is_running = false, current_mode = 'maintenance', last_updated = $2 WHERE machine_id = $1`, m, at); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE machine_status SET current_power_kw = 3.5, last_updated = $2 WHERE machine_id = $1`, m, at.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		ch, payload := next(t, conn)
		n, err := triggers.ParseMachineNotification(payload)
		if ch != string(triggers.ChannelStatusChanged) || err != nil || n.MachineID != m {
			t.Errorf("notification %s %q (%v), want machine %s", ch, payload, err, m)
		}
	}
	noMore(t, pool, conn)

	evs, err := store.New(pool).ClaimEvents(ctx, "contract-test", 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 { // one per machine per claim: the oldest
		t.Fatalf("claimed %d events, want 1", len(evs))
	}
	first := evs[0]
	if err := first.Validate(); err != nil {
		t.Fatal(err)
	}
	sc, err := first.StatusChange()
	if err != nil {
		t.Fatal(err)
	}
	if sc.OldMode != nil || sc.OldRunning != nil || sc.NewMode != triggers.ModeRunning || !sc.NewRunning || !sc.At.Equal(t0) {
		t.Errorf("first status change = %+v, want nothing → running at %s", sc, t0)
	}
	if done, err := store.New(pool).CompleteEvents(ctx, "contract-test", []triggers.Event{first}); err != nil || len(done) != 1 {
		t.Fatalf("complete the first event: %v done, %v", done, err)
	}
	evs, err = store.New(pool).ClaimEvents(ctx, "contract-test", 10, time.Minute)
	if err != nil || len(evs) != 1 {
		t.Fatalf("second claim: %d events, %v", len(evs), err)
	}
	sc, err = evs[0].StatusChange()
	if err != nil {
		t.Fatal(err)
	}
	if sc.OldMode == nil || *sc.OldMode != triggers.ModeRunning || sc.OldRunning == nil || !*sc.OldRunning ||
		sc.NewMode != triggers.ModeMaintenance || sc.NewRunning || !sc.At.Equal(at) || evs[0].MachineID != m {
		t.Errorf("second status change = %+v, want running → maintenance at %s", sc, at)
	}
}

// TestTrainChannelsContract: inserting a training request notifies
// baseline_train_requested with its id; finishing it notifies
// baseline_train_done with its id, both as the parsers expect.
func TestTrainChannelsContract(t *testing.T) {
	t.Parallel()
	url := testdb.URL(t)
	pool := testdb.Pool(t, url)
	ctx := context.Background()
	st := store.New(pool)
	conn := listen(t, url, triggers.ChannelTrainRequested, triggers.ChannelTrainDone)
	var id string
	if err := pool.QueryRow(ctx, `INSERT INTO baseline_train_requests (machine_id, drivers) VALUES (gen_random_uuid(), '{hdd}') RETURNING id`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	ch, payload := next(t, conn)
	if r, err := triggers.ParseRequestNotification(payload); ch != string(triggers.ChannelTrainRequested) || err != nil || r.RequestID != id {
		t.Errorf("notification %s %q (%v), want %s on baseline_train_requested", ch, payload, err, id)
	}
	reqs, err := st.ClaimTrainRequests(ctx, "contract-test", 5, time.Minute)
	if err != nil || len(reqs) != 1 || reqs[0].ID != id {
		t.Fatalf("claimed %+v, %v", reqs, err)
	}
	if held, err := st.FinishTrainRequestNow(ctx, "contract-test", id, store.TrainFailed, "Machine does not exist."); err != nil || !held {
		t.Fatalf("finish: held=%v err=%v", held, err)
	}
	ch, payload = next(t, conn)
	if r, err := triggers.ParseRequestNotification(payload); ch != string(triggers.ChannelTrainDone) || err != nil || r.RequestID != id {
		t.Errorf("notification %s %q (%v), want %s on baseline_train_done", ch, payload, err, id)
	}
	noMore(t, pool, conn)
}

// TestHourClosedContract: once the rollup triggers emit hour events, a
// reading for a later hour closes the earlier one: hourly_aggregate_closed
// carries the machine id, and the hour_closed event names the hour.
func TestHourClosedContract(t *testing.T) {
	t.Parallel()
	url := testdb.URL(t)
	pool := testdb.Pool(t, url)
	ctx := context.Background()
	m := newMachine(t, pool)
	conn := listen(t, url, triggers.ChannelHourClosed)
	for _, ts := range []time.Time{t0.Add(10 * time.Minute), t0.Add(70 * time.Minute)} {
		if _, err := pool.Exec(ctx, `INSERT INTO energy_readings (time, machine_id, power_kw) VALUES ($1, $2, 10)`, ts, m); err != nil {
			t.Fatal(err)
		}
	}
	ch, payload := next(t, conn)
	if n, err := triggers.ParseMachineNotification(payload); ch != string(triggers.ChannelHourClosed) || err != nil || n.MachineID != m {
		t.Errorf("notification %s %q (%v), want machine %s", ch, payload, err, m)
	}
	evs, err := store.New(pool).ClaimEvents(ctx, "contract-test", 10, time.Minute)
	if err != nil || len(evs) != 1 {
		t.Fatalf("claimed %d events (%v), want 1", len(evs), err)
	}
	if err := evs[0].Validate(); err != nil || evs[0].Kind != triggers.KindHourClosed || !evs[0].Bucket.Equal(t0) || evs[0].MachineID != m {
		t.Errorf("event %+v (%v), want hour_closed for %s at %s", evs[0], err, m, t0)
	}
}

// interval is one row of machine_status_history.
type interval struct {
	running bool
	mode    string
	from    time.Time
	to      *time.Time // nil: still in force
}

func history(t *testing.T, pool *pgxpool.Pool, m string) []interval {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT is_running, mode::text, valid_from, valid_to FROM machine_status_history
		 WHERE machine_id = $1 ORDER BY valid_from`, m)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (interval, error) {
		var iv interval
		err := r.Scan(&iv.running, &iv.mode, &iv.from, &iv.to)
		return iv, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkContiguous fails unless the intervals tile time from the first one
// on: each ends where the next starts, and only the last is open.
func checkContiguous(t *testing.T, ivs []interval) {
	t.Helper()
	for i, iv := range ivs {
		last := i == len(ivs)-1
		switch {
		case last && iv.to != nil:
			t.Errorf("the last interval ends at %s; want it open", *iv.to)
		case !last && (iv.to == nil || !iv.to.Equal(ivs[i+1].from)):
			t.Errorf("interval %d [%s, %v) does not end where interval %d starts (%s)", i, iv.from, iv.to, i+1, ivs[i+1].from)
		}
	}
}

func at(minutes int) time.Time { return t0.Add(time.Duration(minutes) * time.Minute) }

// TestStatusHistory: a sequence of status upserts — in order, unchanged,
// late (older than what is known), before all history, at an existing
// boundary — gives the intervals worked out by hand below, and
// machine_mode_at and machine_running_seconds answer from them, at the
// boundaries too.
func TestStatusHistory(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	ctx := context.Background()
	m := newMachine(t, pool)
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	set := `UPDATE machine_status SET is_running = $2, current_mode = $3, last_updated = $4 WHERE machine_id = $1`
	exec(`INSERT INTO machine_status (machine_id, is_running, current_mode, last_updated) VALUES ($1, true, 'running', $2)`, m, at(0))
	exec(set, m, false, "maintenance", at(90))                                                                  // in order
	exec(`UPDATE machine_status SET current_power_kw = 1, last_updated = $2 WHERE machine_id = $1`, m, at(120)) // no change
	exec(set, m, true, "running", at(180))                                                                      // in order
	exec(set, m, false, "fault", at(45))                                                                        // late: splits [0, 90)
	exec(set, m, false, "offline", at(-60))                                                                     // before all history
	exec(set, m, false, "idle", at(90))                                                                         // at a boundary: replaces maintenance
	exec(set, m, false, "idle", at(100))                                                                        // same state, later: nothing

	ptr := func(tm time.Time) *time.Time { return &tm }
	want := []interval{
		{false, "offline", at(-60), ptr(at(0))},
		{true, "running", at(0), ptr(at(45))},
		{false, "fault", at(45), ptr(at(90))},
		{false, "idle", at(90), ptr(at(180))},
		{true, "running", at(180), nil},
	}
	got := history(t, pool, m)
	checkContiguous(t, got)
	if len(got) != len(want) {
		t.Fatalf("history = %+v, want %+v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.running != w.running || g.mode != w.mode || !g.from.Equal(w.from) || (g.to == nil) != (w.to == nil) || (g.to != nil && !g.to.Equal(*w.to)) {
			t.Errorf("interval %d = {%v %s %s %v}, want {%v %s %s %v}", i, g.running, g.mode, g.from, g.to, w.running, w.mode, w.from, w.to)
		}
	}

	// Six changes were recorded (the no-op update and the same-state late
	// update emit nothing): six status_changed events.
	var events int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM analytics_events WHERE kind = 'status_changed' AND machine_id = $1`, m).Scan(&events); err != nil {
		t.Fatal(err)
	}
	if events != 6 {
		t.Errorf("%d status_changed events, want 6", events)
	}

	us := time.Microsecond // timestamptz resolution
	modeAt := map[time.Time]string{
		at(-61):          "running", // before all history: unknown counts as running
		at(-60):          "offline",
		at(0).Add(-us):   "offline",
		at(0):            "running",
		at(45).Add(-us):  "running",
		at(45):           "fault",
		at(90):           "idle",
		at(180).Add(-us): "idle",
		at(180):          "running",
		at(10_000):       "running",
	}
	for tm, wantMode := range modeAt {
		var mode string
		if err := pool.QueryRow(ctx, `SELECT machine_mode_at($1, $2)::text`, m, tm).Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if mode != wantMode {
			t.Errorf("machine_mode_at(%s) = %s, want %s", tm.Format(time.RFC3339Nano), mode, wantMode)
		}
	}
	var unknown string
	if err := pool.QueryRow(ctx, `SELECT machine_mode_at(gen_random_uuid(), now())::text`).Scan(&unknown); err != nil || unknown != "running" {
		t.Errorf("machine_mode_at(unknown machine) = %q, %v; want running", unknown, err)
	}

	// Running seconds per hour, from the intervals above:
	//   hour -2: before history           → 3600
	//   hour -1: offline [-60, 0)         → 0
	//   hour  0: running [0, 45), fault   → 45 × 60 = 2700
	//   hour  1: fault [60, 90), idle     → 0
	//   hour  2: idle                     → 0
	//   hour  3: running [180, …)         → 3600
	//   hour 2:30 (a window, not an hour start): idle [150, 180), running [180, 210) → 1800
	runSecs := map[time.Time]float64{
		at(-120): 3600, at(-60): 0, at(0): 2700, at(60): 0, at(120): 0, at(180): 3600, at(150): 1800,
	}
	for hour, wantSecs := range runSecs {
		var secs float64
		if err := pool.QueryRow(ctx, `SELECT machine_running_seconds($1, $2)`, m, hour).Scan(&secs); err != nil {
			t.Fatal(err)
		}
		if secs != wantSecs {
			t.Errorf("machine_running_seconds(%s) = %v, want %v", hour.Format(time.RFC3339), secs, wantSecs)
		}
	}
}

// TestStatusHistoryNowWhenTimeUnchanged: an UPDATE that changes the state
// but not last_updated is observed at the transaction's time.
func TestStatusHistoryNowWhenTimeUnchanged(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	ctx := context.Background()
	m := newMachine(t, pool)
	if _, err := pool.Exec(ctx, `INSERT INTO machine_status (machine_id, is_running, current_mode, last_updated) VALUES ($1, true, 'running', $2)`, m, t0); err != nil {
		t.Fatal(err)
	}
	var txTime time.Time
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE machine_status SET current_mode = 'fault', is_running = false WHERE machine_id = $1`, m); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT now()`).Scan(&txTime)
	})
	if err != nil {
		t.Fatal(err)
	}
	got := history(t, pool, m)
	checkContiguous(t, got)
	if len(got) != 2 || !got[1].from.Equal(txTime) || got[1].mode != "fault" {
		t.Errorf("history = %+v, want fault from the transaction time %s", got, txTime)
	}
}

// TestStatusHistoryConcurrentWriters: four writers upsert random states at
// random (often out-of-order) times for one machine at once; the history
// stays contiguous (the per-machine lock serialises the splits).
func TestStatusHistoryConcurrentWriters(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	ctx := context.Background()
	m := newMachine(t, pool)
	if _, err := pool.Exec(ctx, `INSERT INTO machine_status (machine_id, is_running, current_mode, last_updated) VALUES ($1, true, 'running', $2)`, m, t0); err != nil {
		t.Fatal(err)
	}
	modes := []string{"idle", "running", "maintenance", "fault", "offline"}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			for range 50 {
				mode := modes[rng.IntN(len(modes))]
				ts := at(rng.IntN(24 * 60))
				if _, err := pool.Exec(ctx, `UPDATE machine_status SET is_running = $2, current_mode = $3, last_updated = $4 WHERE machine_id = $1`,
					m, mode == "running", mode, ts); err != nil {
					errs <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := history(t, pool, m)
	checkContiguous(t, got)
	if len(got) < 2 {
		t.Errorf("history has %d intervals after 200 random updates", len(got))
	}
}
