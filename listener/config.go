package listener

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"crypto/rand"
	"encoding/hex"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/enms/enms-analytics/store"
)

// Config configures a Worker. Store is required; every other field has a
// default, applied when the field is zero.
type Config struct {
	// Store is the database. Required.
	Store *store.Store

	// Logger receives the worker's operational log (reconnects, failed
	// events). Optional; nil discards.
	Logger *slog.Logger

	// Registerer is where the worker's Prometheus metrics are registered.
	// Optional; nil keeps them unregistered (Status still works). Two workers
	// cannot register on the same Registerer.
	Registerer prometheus.Registerer

	// Name identifies this worker in analytics_events.locked_by and
	// baseline_train_requests.locked_by. Default: host-pid-random, unique per
	// Worker.
	Name string

	// Concurrency is how many machines are processed in parallel
	// (WORKER_CONCURRENCY). Default 4.
	Concurrency int

	// BatchSize is how many machines one claim leases events of (one event
	// each, or one run each; see MaxRun). Default 64, and at least
	// Concurrency.
	BatchSize int

	// MaxRun is the most events one run holds: for a kind with a run
	// handler (Worker.HandleRun), a claim leases a machine's oldest pending
	// event together with up to MaxRun−1 of its next events of the same
	// kind that were never tried, and hands them to the run handler at once.
	// 1 disables runs (every event is handled alone). Default 128.
	MaxRun int

	// LeaseDuration is how long a claimed event or training request stays
	// leased without renewal. The worker renews its leases every third of
	// it while it holds them, so a worker that dies (killed, partitioned)
	// holds its events for at most this long before another claims them.
	// Default 30 s.
	LeaseDuration time.Duration

	// MaxAttempts is how many times an event or a training request is tried
	// before it is parked (events) or failed (requests) with its error
	// (WORKER_MAX_ATTEMPTS). Default 5.
	MaxAttempts int

	// Backoff is the delay before retry number attempt+1 after attempt
	// failed. Default: 1 s × 2^(attempt−1), at most 5 min.
	Backoff func(attempt int) time.Duration

	// HandlerTimeout bounds one event's handlers, or one run's (their
	// context is cancelled after it). Default 1 min.
	HandlerTimeout time.Duration

	// TrainTimeout bounds one training request. Default 10 min.
	TrainTimeout time.Duration

	// ReconnectDelay is how long the listener waits before reconnecting
	// after losing its connection (LISTENER_RECONNECT_DELAY). Default 2 s
	// (pgxlisten's own default of a minute is too slow).
	ReconnectDelay time.Duration

	// PollInterval is the polling fallback: the outbox and the training queue
	// are checked this often even without a notification (POLL_INTERVAL).
	// It is also how often the queue gauges are refreshed. Default 5 s.
	PollInterval time.Duration

	// PingInterval: when the LISTEN connection has received nothing for this
	// long, the worker sends itself a notification through the pool; if it
	// does not arrive within PingTimeout the connection is presumed dead and
	// replaced. Defaults 30 s and 5 s.
	PingInterval time.Duration
	PingTimeout  time.Duration

	// SweepInterval is how often the sweeper closes hours with no newer data
	// and prunes old events. Default 1 min.
	SweepInterval time.Duration

	// HourCloseGrace: an hour with no newer data closes this long after its
	// end (HOUR_CLOSE_GRACE). Default 10 min.
	HourCloseGrace time.Duration

	// EventRetention: processed events are deleted this long after they were
	// done (EVENT_RETENTION). Default 168 h.
	EventRetention time.Duration

	// ShutdownTimeout: at shutdown, handlers already running get this long
	// to finish before their context is cancelled; claimed events not yet
	// started are released at once. Default 30 s.
	ShutdownTimeout time.Duration

	// ApplicationName is the application_name of the LISTEN connection (it
	// shows in pg_stat_activity). Default "enms-analytics-listener".
	ApplicationName string

	// Connect, when set, replaces how the LISTEN connection is opened. It
	// must return a fresh connection for the listener's exclusive use on
	// every call. Default: a new connection with the pool's configuration.
	Connect func(ctx context.Context) (*pgx.Conn, error)
}

func (c *Config) applyDefaults() error {
	if c.Store == nil {
		return errors.New("listener: Config.Store is required")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Name == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		c.Name = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 64
	}
	c.BatchSize = max(c.BatchSize, c.Concurrency)
	if c.MaxRun <= 0 {
		c.MaxRun = 128
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 5
	}
	if c.Backoff == nil {
		c.Backoff = DefaultBackoff
	}
	def(&c.LeaseDuration, 30*time.Second)
	def(&c.HandlerTimeout, time.Minute)
	def(&c.TrainTimeout, 10*time.Minute)
	def(&c.ReconnectDelay, 2*time.Second)
	def(&c.PollInterval, 5*time.Second)
	def(&c.PingInterval, 30*time.Second)
	def(&c.PingTimeout, 5*time.Second)
	def(&c.SweepInterval, time.Minute)
	def(&c.HourCloseGrace, 10*time.Minute)
	def(&c.EventRetention, 168*time.Hour)
	def(&c.ShutdownTimeout, 30*time.Second)
	if c.ApplicationName == "" {
		c.ApplicationName = "enms-analytics-listener"
	}
	return nil
}

// DefaultBackoff is 1 s × 2^(attempt−1), at most 5 minutes.
func DefaultBackoff(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	if attempt > 9 {
		return 5 * time.Minute
	}
	return min(time.Second<<(attempt-1), 5*time.Minute)
}
