package listener

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

func TestMain(m *testing.M) { testdb.Main(m) }

// waitTimeout bounds every wait in these tests; a healthy run needs a small
// fraction of it.
const waitTimeout = 60 * time.Second

// hour0 is the first hour the tests' events are about.
var hour0 = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

type bundle struct {
	pool *pgxpool.Pool
	st   *store.Store
	url  string
}

func setup(t testing.TB) bundle {
	t.Helper()
	url := testdb.URL(t)
	pool := testdb.Pool(t, url)
	return bundle{pool: pool, st: store.New(pool), url: url}
}

// machines creates n machines in a new factory and returns their ids.
func (b bundle) machines(t testing.TB, n int) []string {
	t.Helper()
	ctx := context.Background()
	var factory string
	if err := b.pool.QueryRow(ctx, `INSERT INTO factories (name) VALUES ('plant-' || gen_random_uuid()) RETURNING id::text`).Scan(&factory); err != nil {
		t.Fatal(err)
	}
	rows, err := b.pool.Query(ctx, `
		INSERT INTO machines (factory_id, name, type)
		SELECT $1, 'machine-' || g, 'compressor' FROM generate_series(1, $2) g
		RETURNING id::text`, factory, n)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	return ids
}

// closeHours writes an hour_closed event for each machine and hour into the
// outbox in one transaction, with the wake-up the rollup triggers send, as
// those triggers would.
func closeHours(ctx context.Context, db interface {
	Begin(context.Context) (pgx.Tx, error)
}, machines []string, hours []time.Time) error {
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
			INSERT INTO analytics_events (kind, machine_id, bucket)
			SELECT 'hour_closed', m::uuid, h FROM unnest($1::text[]) m, unnest($2::timestamptz[]) h
			ORDER BY h, m`, machines, hours)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `SELECT pg_notify($1, m) FROM unnest($2::text[]) m`, string(triggers.ChannelHourClosed), machines)
		return err
	})
}

func hours(from time.Time, n int) []time.Time {
	hs := make([]time.Time, n)
	for i := range hs {
		hs[i] = from.Add(time.Duration(i) * time.Hour)
	}
	return hs
}

// recorder is a Handler that records every call, in order per machine.
type recorder struct {
	mu      sync.Mutex
	calls   map[int64]int               // event id → invocations
	order   map[string][]triggers.Event // machine → events in handling order
	total   int
	changed chan struct{}
	fail    func(ev triggers.Event) error // optional
	before  func(ev triggers.Event)       // optional, called first
}

func newRecorder() *recorder {
	return &recorder{calls: map[int64]int{}, order: map[string][]triggers.Event{}, changed: make(chan struct{}, 1)}
}

func (r *recorder) handle(ctx context.Context, ev triggers.Event) error {
	if r.before != nil {
		r.before(ev)
	}
	r.mu.Lock()
	r.calls[ev.ID]++
	r.order[ev.MachineID] = append(r.order[ev.MachineID], ev)
	r.total++
	r.mu.Unlock()
	wake(r.changed)
	if r.fail != nil {
		return r.fail(ev)
	}
	return nil
}

// waitFor waits until cond (called under the recorder's lock) holds.
func (r *recorder) waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	waitLocked(t, &r.mu, r.changed, what, cond)
}

// waitLocked waits until cond, called with mu held, holds; changed is
// signalled after each change that may make it hold.
func waitLocked(t testing.TB, mu *sync.Mutex, changed <-chan struct{}, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		mu.Lock()
		ok := cond()
		mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
		}
	}
}

// distinct is the number of distinct events handled (call under lock).
func (r *recorder) distinct() int { return len(r.calls) }

// checkOnceInOrder fails unless every event was handled exactly once and
// each machine's events in id order.
func (r *recorder) checkOnceInOrder(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, n := range r.calls {
		if n != 1 {
			t.Errorf("event %d handled %d times, want once", id, n)
		}
	}
	for m, evs := range r.order {
		for i := 1; i < len(evs); i++ {
			if evs[i].ID <= evs[i-1].ID {
				t.Errorf("machine %s: event %d handled after event %d", m, evs[i].ID, evs[i-1].ID)
				break
			}
		}
	}
}

// newWorker builds a worker with test-friendly defaults: no backoff, a poll
// interval so long that only notifications and reconnects wake it, and no
// periodic sweep.
func newWorker(t testing.TB, b bundle, cfg Config) *Worker {
	t.Helper()
	cfg.Store = b.st
	if cfg.PollInterval == 0 {
		cfg.PollInterval = time.Hour
	}
	if cfg.Backoff == nil {
		cfg.Backoff = func(int) time.Duration { return 0 }
	}
	if cfg.SweepInterval == 0 && cfg.HourCloseGrace == 0 {
		// The tests' hours lie in the past: a sweep would close every open
		// hour at once. Only the sweeper test turns it on. The worker also
		// sweeps once as it starts, which can come after a test began
		// writing (seen under -race: hours closed mid-write, their later
		// readings revisions), so the grace is made longer than the
		// tests' hours are old (hour0 is in 2026).
		cfg.SweepInterval = time.Hour
		cfg.HourCloseGrace = 100 * 365 * 24 * time.Hour
	}
	if cfg.ReconnectDelay == 0 {
		cfg.ReconnectDelay = 20 * time.Millisecond
	}
	if cfg.ApplicationName == "" {
		cfg.ApplicationName = fmt.Sprintf("listener-test-%d", time.Now().UnixNano())
	}
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// eventuallyDB polls a database condition (every 5 ms) until it holds.
func eventuallyDB(t testing.TB, what string, cond func() (bool, error)) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
		}
	}
}

func scalar[T any](t testing.TB, pool *pgxpool.Pool, sql string, args ...any) T {
	t.Helper()
	var v T
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// receive waits for a value on ch, at most waitTimeout.
func receive[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	var v T
	select {
	case v = <-ch:
	case <-time.After(waitTimeout):
		t.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
	}
	return v
}
