// Package listener is the worker the database drives (DESIGN §4): it LISTENs
// for wake-ups (pgxlisten), claims outbox events and training requests with
// FOR UPDATE SKIP LOCKED, and dispatches them to registered handlers.
//
// The tables are the truth and notifications only wake the claim loops, so
// nothing is lost when no one listens: on every (re)connect the worker
// LISTENs first and then drains the backlog, and a polling fallback catches
// anything else. Delivery is at-least-once; handlers must be idempotent.
// Events of one machine are handled in order (a machine is claimed only
// through its oldest pending event, and never while one of its events is
// leased), machines in parallel, and any number of workers may share a
// database. For a kind with a run handler (HandleRun), a claim takes a
// machine's consecutive untried events of that kind together, up to
// Config.MaxRun, and hands them to one handler call; a run that fails is
// handled again one event at a time.
package listener

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/enms/enms-analytics/store"
	"github.com/enms/enms-analytics/triggers"
)

// Handler handles one outbox event. It must be idempotent (the same event
// may be delivered again after a crash or an expired lease) and should
// respect ctx, which is cancelled after Config.HandlerTimeout. A returned
// error makes the event retry with backoff, and park after
// Config.MaxAttempts.
type Handler func(ctx context.Context, ev triggers.Event) error

// RunHandler handles a run: one or more consecutive pending events of one
// machine and one kind, in id order (for hour_closed and hour_revised, about
// strictly increasing hours). It must leave the same results as handling
// each event in turn, and be idempotent like Handler (a run may be delivered
// again, whole or in part, after a crash). ctx is cancelled after
// Config.HandlerTimeout, which bounds the whole run. An error (or a panic)
// fails the run: the worker then handles the run's events one at a time,
// each as a run of one, so a poison event fails alone.
type RunHandler func(ctx context.Context, evs []triggers.Event) error

// TrainResult is the outcome of a training request, as a TrainHandler
// reports it.
type TrainResult struct {
	// Status is store.TrainDone, store.TrainRejected or store.TrainFailed.
	Status store.TrainStatus
	// Error is a sentence a person understands saying why the request was
	// rejected or failed (e.g. "R² 0.62 is below the minimum of 0.80").
	// Required unless Status is done.
	Error string
	// BaselineID is the energy_baselines row written: required when done;
	// optional when rejected (a model stored inactive).
	BaselineID string
}

// TrainHandler trains the baseline a request asks for. tx is the transaction
// that records the request's outcome: write the baseline through it so that
// publishing and the request's final status commit together (a crash in
// between then publishes nothing and the request is retried). A returned
// error means "could not decide, try again" (the database was unreachable):
// the request goes back to pending with backoff, and fails with the error
// after Config.MaxAttempts. A request that cannot succeed (unknown machine,
// bad window) is a TrainResult with Status failed, not an error.
type TrainHandler func(ctx context.Context, tx pgx.Tx, req store.TrainRequest) (TrainResult, error)

// Status is the worker's health, for the API's health check.
type Status struct {
	Running          bool          // Run is active
	Ready            bool          // listened and drained the backlog at least once
	Connected        bool          // the LISTEN connection is up on every channel
	LastNotification time.Time     // zero before the first
	Backlog          int64         // outbox events waiting (not done, not parked)
	Parked           int64         // outbox events parked after the attempt limit
	OldestPending    time.Duration // age of the oldest waiting event
	OpenTrainings    int64         // training requests pending or running
}

// pingChannel carries the worker's own liveness pings.
const pingChannel = "enms_analytics_listener_ping"

// Worker is the event worker. Create it with New, register handlers, then
// Run it.
type Worker struct {
	cfg     Config
	st      *store.Store
	log     *slog.Logger
	metrics *metrics

	mu       sync.Mutex
	handlers map[triggers.Kind][]Handler
	runs     map[triggers.Kind]RunHandler
	train    TrainHandler
	// the LISTEN connection being set up, and how many channels it has
	// listened on so far
	listenConn     *pgx.Conn
	listenChannels int

	running          atomic.Bool
	connected        atomic.Bool
	lastNotification atomic.Int64 // unix nanoseconds
	listenEpoch      atomic.Int64 // completed LISTEN setups

	eventWake chan struct{}
	trainWake chan struct{}
	pingEcho  chan struct{}

	ready      chan struct{}
	readyOnce  sync.Once
	readyParts atomic.Int32 // loops that drained after the first LISTEN
	readyNeed  int32

	sweepNotice sync.Once // logs a missing sweeper function once
}

// New returns a worker. Whatever handlers are registered, the worker keeps
// analytics_machine_state (last closed hour, last status) up to date as it
// marks events done, in the same statement, so the pipeline is observable by
// SQL before any analytics exist.
func New(cfg Config) (*Worker, error) {
	if err := cfg.applyDefaults(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	w := &Worker{
		cfg:       cfg,
		st:        cfg.Store,
		log:       cfg.Logger.With("worker", cfg.Name),
		metrics:   m,
		handlers:  map[triggers.Kind][]Handler{},
		runs:      map[triggers.Kind]RunHandler{},
		eventWake: make(chan struct{}, 1),
		trainWake: make(chan struct{}, 1),
		pingEcho:  make(chan struct{}, 1),
		ready:     make(chan struct{}),
	}
	return w, nil
}

// Name is the worker's identity in locked_by columns.
func (w *Worker) Name() string { return w.cfg.Name }

// Handle adds h to the handlers of kind; an event is done when every handler
// of its kind has succeeded, called in the order they were added. Call it
// before Run.
func (w *Worker) Handle(kind triggers.Kind, h Handler) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.handlers[kind] = append(w.handlers[kind], h)
}

// HandleRun sets the run handler of kind (replacing any earlier one): events
// of that kind are then claimed in runs of up to Config.MaxRun and given to
// h. h runs first, before the handlers added with Handle for the same kind,
// which are then called for each event of the run, in order, once h has
// succeeded. A run's events are done when all of them succeeded. Call it
// before Run.
func (w *Worker) HandleRun(kind triggers.Kind, h RunHandler) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.runs[kind] = h
}

// HandleTrain sets the trainer. Without one the worker leaves training
// requests to other workers (they stay pending). Call it before Run.
func (w *Worker) HandleTrain(h TrainHandler) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.train = h
}

// Ready is closed once the worker has LISTENed on every channel and then
// claimed the backlog present at that moment, the first time.
func (w *Worker) Ready() <-chan struct{} { return w.ready }

// Run runs the worker until ctx is done, then shuts down gracefully: running
// handlers get Config.ShutdownTimeout to finish, claimed events not started
// are released. It returns nil after a cancelled ctx.
func (w *Worker) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return errors.New("listener: the worker is already running")
	}
	defer w.running.Store(false)
	w.mu.Lock()
	train := w.train
	w.mu.Unlock()
	w.readyNeed = 1
	if train != nil {
		w.readyNeed = 2
	}

	// Handlers run on a context that outlives ctx by ShutdownTimeout, so
	// shutdown finishes work in flight instead of failing it.
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()
	stopAfter := context.AfterFunc(ctx, func() {
		t := time.NewTimer(w.cfg.ShutdownTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			hcancel()
		case <-hctx.Done():
		}
	})
	defer stopAfter()

	var wg sync.WaitGroup
	start := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f()
		}()
	}
	start(func() { w.listen(ctx) })
	start(func() { w.runEvents(ctx, hctx) })
	if train != nil {
		start(func() { w.runTraining(ctx, hctx, train) })
	}
	start(func() { w.maintain(ctx) })
	// Leases are renewed until the last handler has finished, shutdown
	// included, so no other worker takes over an event still running here.
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		w.renewLeases(hctx)
	}()
	wg.Wait()
	hcancel()
	<-renewed
	w.connected.Store(false)
	w.metrics.connected.Set(0)
	w.log.Info("worker stopped")
	return nil
}

// Status reports the worker's connection state and the queues' depth.
func (w *Worker) Status(ctx context.Context) (Status, error) {
	s := Status{
		Running:   w.running.Load(),
		Connected: w.connected.Load(),
	}
	select {
	case <-w.ready:
		s.Ready = true
	default:
	}
	if ns := w.lastNotification.Load(); ns != 0 {
		s.LastNotification = time.Unix(0, ns)
	}
	b, err := w.st.EventBacklog(ctx)
	if err != nil {
		return s, fmt.Errorf("worker status: %w", err)
	}
	s.Backlog, s.Parked = b.Pending, b.Parked
	s.OldestPending = time.Duration(b.OldestPending * float64(time.Second))
	if s.OpenTrainings, err = w.st.PendingTrainRequests(ctx); err != nil {
		return s, fmt.Errorf("worker status: %w", err)
	}
	return s, nil
}

func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// markDrained records that a claim loop drained the backlog after the
// first LISTEN; when every loop has, Ready closes.
func (w *Worker) markDrained(loopDone *bool, epochAtClaim int64) {
	if *loopDone || epochAtClaim < 1 {
		return
	}
	*loopDone = true
	if w.readyParts.Add(1) >= w.readyNeed {
		w.readyOnce.Do(func() { close(w.ready) })
	}
}
