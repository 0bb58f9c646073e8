package listener

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the worker's Prometheus collectors.
type metrics struct {
	processed     *prometheus.CounterVec // by kind
	failed        *prometheus.CounterVec // failed attempts, by kind
	parked        *prometheus.CounterVec // by kind
	latency       prometheus.Histogram   // event written → handled
	runEvents     prometheus.Histogram   // events per run given to a run handler
	queueDepth    prometheus.Gauge
	parkedDepth   prometheus.Gauge
	lag           prometheus.Gauge
	trainPending  prometheus.Gauge
	trainFinished *prometheus.CounterVec // by final status
	notifications *prometheus.CounterVec // by channel
	connected     prometheus.Gauge
	reconnects    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "enms_analytics", "worker"
	m := &metrics{
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "events_processed_total",
			Help: "Outbox events handled successfully, by kind.",
		}, []string{"kind"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "events_failed_total",
			Help: "Failed attempts at handling an outbox event, by kind.",
		}, []string{"kind"}),
		parked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "events_parked_total",
			Help: "Outbox events given up on after the attempt limit, by kind.",
		}, []string{"kind"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "event_latency_seconds",
			Help:    "Time from an event's commit to the end of its handling.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		runEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "run_events",
			Help:    "Events per run given to a run handler (1 when handled alone).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 9), // 1 … 256
		}),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "event_queue_depth",
			Help: "Outbox events waiting to be handled (not done, not parked).",
		}),
		parkedDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "events_parked",
			Help: "Outbox events currently parked.",
		}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "event_lag_seconds",
			Help: "Age of the oldest outbox event waiting to be handled.",
		}),
		trainPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "train_requests_open",
			Help: "Training requests pending or running.",
		}),
		trainFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "train_requests_finished_total",
			Help: "Training requests finished by this worker, by final status.",
		}, []string{"status"}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "notifications_total",
			Help: "Notifications received on the LISTEN connection, by channel.",
		}, []string{"channel"}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "listener_connected",
			Help: "1 while the LISTEN connection is up and listening on every channel.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "listener_connects_total",
			Help: "Times the LISTEN connection was (re)established.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.processed, m.failed, m.parked, m.latency, m.runEvents, m.queueDepth,
		m.parkedDepth, m.lag, m.trainPending, m.trainFinished, m.notifications, m.connected, m.reconnects} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register worker metrics: %w", err)
		}
	}
	return m, nil
}
