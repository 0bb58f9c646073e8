package listener

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/enms/enms-analytics/internal/workertest"
	"github.com/enms/enms-analytics/triggers"
)

// BenchmarkHourCloseLatency measures, per iteration, the time from sending
// the reading that closes an hour (a single autocommit INSERT into
// energy_readings; its COMMIT happens before the answer, so this bounds the
// commit-to-handler latency from above) to the end of the hour_closed
// handler, through the rollup trigger, the outbox, NOTIFY and the claim
// (marking the event done, which also updates analytics_machine_state,
// comes after and is not timed). Reports p50 and p99 in milliseconds.
func BenchmarkHourCloseLatency(b *testing.B) {
	bd := setup(b)
	ctx := context.Background()
	ms := bd.machines(b, 1)
	done := make(chan time.Time, 1)
	w := newWorker(b, bd, Config{})
	w.Handle(triggers.KindHourClosed, func(context.Context, triggers.Event) error {
		done <- time.Now()
		return nil
	})
	workertest.Start(b, w)
	conn, err := pgx.Connect(ctx, bd.url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	insert := `INSERT INTO energy_readings (time, machine_id, power_kw) VALUES ($1, $2, 10)`
	if _, err := conn.Exec(ctx, insert, hour0, ms[0]); err != nil {
		b.Fatal(err)
	}
	fromSend := make([]time.Duration, 0, b.N)
	fromAck := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		sent := time.Now()
		// A reading in hour i+1 closes hour i.
		if _, err := conn.Exec(ctx, insert, hour0.Add(time.Duration(i+1)*time.Hour), ms[0]); err != nil {
			b.Fatal(err)
		}
		acked := time.Now()
		select {
		case at := <-done:
			fromSend = append(fromSend, at.Sub(sent))
			fromAck = append(fromAck, max(at.Sub(acked), 0))
		case <-time.After(waitTimeout):
			b.Fatal("hour_closed not handled")
		}
	}
	b.StopTimer()
	// p50_ms/p99_ms: from sending the INSERT (an upper bound of commit →
	// handler); ack_p50_ms/ack_p99_ms: from its answer, which arrives just
	// after the commit (the notification races it; 0 when it won).
	b.ReportMetric(percentile(fromSend, 50), "p50_ms")
	b.ReportMetric(percentile(fromSend, 99), "p99_ms")
	b.ReportMetric(percentile(fromAck, 50), "ack_p50_ms")
	b.ReportMetric(percentile(fromAck, 99), "ack_p99_ms")
}

// BenchmarkSameHourClose1000 measures throughput when 1,000 machines close
// the same hour at once: each iteration is one INSERT of a reading for every
// machine in the next hour (1,000 hour_closed events in one statement), and
// ends when the handler has seen all 1,000. Reports events/s from the
// INSERT's commit, and end to end (INSERT and triggers included).
func BenchmarkSameHourClose1000(b *testing.B) {
	bd := setup(b)
	ctx := context.Background()
	const n = 1000
	ms := bd.machines(b, n)
	counter := newHourCounter()
	w := newWorker(b, bd, Config{})
	w.Handle(triggers.KindHourClosed, counter.handle)
	workertest.Start(b, w)
	insert := `INSERT INTO energy_readings (time, machine_id, power_kw) SELECT $1, m::uuid, 10 FROM unnest($2::text[]) m`
	if _, err := bd.pool.Exec(ctx, insert, hour0, ms); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	var afterCommit time.Duration
	for i := range b.N {
		if _, err := bd.pool.Exec(ctx, insert, hour0.Add(time.Duration(i+1)*time.Hour), ms); err != nil {
			b.Fatal(err)
		}
		committed := time.Now()
		counter.waitTotal(b, n*(i+1))
		afterCommit += time.Since(committed)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	// events/s: from the INSERT's commit to the last handler (the worker's
	// throughput); e2e_events/s also counts the INSERT with its triggers.
	b.ReportMetric(float64(n*b.N)/afterCommit.Seconds(), "events/s")
	b.ReportMetric(float64(n*b.N)/elapsed.Seconds(), "e2e_events/s")
}

// percentile is the p-th percentile of ds in milliseconds (nearest rank).
func percentile(ds []time.Duration, p int) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := min((len(s)*p+99)/100, len(s)) - 1
	return float64(s[max(i, 0)].Microseconds()) / 1000
}
