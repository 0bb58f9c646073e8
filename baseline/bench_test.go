package baseline

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/enms/enms-analytics/simulator"
	"github.com/enms/enms-analytics/store"
	"github.com/enms/enms-analytics/triggers"
)

// benchHours writes n hours from t0 of a machine with six live drivers
// (simulator.WriteTrainingHours) and analyses the rollups, as autovacuum
// would after a bulk load, so the planner sees the row counts.
func benchHours(b testing.TB, bd *bundle, m string, n int) {
	b.Helper()
	ctx := context.Background()
	if err := simulator.WriteTrainingHours(ctx, bd.pool, m, t0, n); err != nil {
		b.Fatal(err)
	}
	for _, table := range []string{"energy_readings_1hour", "production_data_1hour", "environmental_data_1hour"} {
		if _, err := bd.pool.Exec(ctx, "ANALYZE "+table); err != nil {
			b.Fatal(err)
		}
	}
}

func percentile(d []time.Duration, q float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(math.Ceil(q*float64(len(s))))-1]
}

// BenchmarkTrainRequestLatency: from the INSERT of a training request (plain
// SQL) to the baseline_train_done notification, through the real worker,
// over 2,160 hourly samples × 6 drivers. Target p50 ≤ 100 ms.
//
//	go test -run '^$' -bench TrainRequestLatency -benchtime 30x ./baseline/
func BenchmarkTrainRequestLatency(b *testing.B) {
	bd := setup(b, func(c *Config) { c.MinSamples = 1000 })
	m := bd.machine(b, "bench-train")
	benchHours(b, bd, m, 2160)
	bd.startWorker(b)
	ctx := context.Background()
	conn, err := bd.pool.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		conn.Conn().Close(ctx)
		conn.Release()
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+string(triggers.ChannelTrainDone)); err != nil {
		b.Fatal(err)
	}
	end := t0.Add(2160 * time.Hour)
	var lat []time.Duration
	b.ResetTimer()
	for range b.N {
		began := time.Now()
		var id string
		if err := conn.QueryRow(ctx, `INSERT INTO baseline_train_requests (machine_id, drivers, training_start, training_end)
			VALUES ($1, $2, $3, $4) RETURNING id::text`, m, simulator.TrainingDrivers, t0, end).Scan(&id); err != nil {
			b.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		for {
			n, err := conn.Conn().WaitForNotification(wctx)
			if err != nil {
				b.Fatal(err)
			}
			if n.Payload == id {
				break
			}
		}
		cancel()
		lat = append(lat, time.Since(began))
	}
	b.StopTimer()
	r, err := bd.st.TrainRequest(ctx, lat0ID(b, bd, m))
	if err != nil || r.Status != store.TrainDone {
		b.Fatalf("the benchmark's requests did not train: %v %v", r.Status, err)
	}
	b.ReportMetric(float64(percentile(lat, 0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
}

// lat0ID is the id of the machine's latest request.
func lat0ID(b testing.TB, bd *bundle, m string) string {
	var id string
	if err := bd.pool.QueryRow(context.Background(), `SELECT id::text FROM baseline_train_requests
		WHERE machine_id = $1 ORDER BY created_at DESC LIMIT 1`, m).Scan(&id); err != nil {
		b.Fatal(err)
	}
	return id
}

// BenchmarkRollingRefresh: one hour_closed refresh of a 90-day rolling
// model with 6 drivers (add the hour, remove the one leaving the window,
// persist), against BenchmarkFullRefit below.
//
//	go test -run '^$' -bench 'RollingRefresh|FullRefit' -benchtime 200x ./baseline/
func BenchmarkRollingRefresh(b *testing.B) {
	const extra = 2000
	if b.N > extra {
		b.Skipf("b.N = %d exceeds the %d prepared hours; use -benchtime %dx or less", b.N, extra, extra)
	}
	bd := setup(b, nil)
	m := bd.machine(b, "bench-rolling")
	benchHours(b, bd, m, 2160+extra)
	ctx := context.Background()
	bd.trainBench(b, m)
	// the first refresh builds the model from the window (O(window))
	if err := bd.svc.Refresh(ctx, m, t0.Add(2159*time.Hour), true); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		if err := bd.svc.Refresh(ctx, m, t0.Add(time.Duration(2160+i)*time.Hour), true); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	st, _ := bd.st.ReadRollingState(ctx, m)
	r, err := decodeState(st)
	if err != nil || r.stats.N() != 2160 {
		b.Fatalf("rolling model holds %d hours, want the 2,160 of the window (%v)", r.stats.N(), err)
	}
}

// trainBench publishes an active baseline with simulator.TrainingDrivers so the rolling
// model uses them.
func (bd *bundle) trainBench(b testing.TB, m string) {
	ctx := context.Background()
	end := t0.Add(2160 * time.Hour)
	f, err := bd.svc.fitRequest(ctx, store.TrainRequest{MachineID: m, Drivers: simulator.TrainingDrivers, TrainingStart: ptr(t0), TrainingEnd: &end})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := bd.svc.publish(ctx, nil, f, f.metadata("bench"), "bench"); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkFullRefit: what the refresh replaces — read the 2,160-hour window
// from the rollups, assemble, fit and report.
func BenchmarkFullRefit(b *testing.B) {
	bd := setup(b, nil)
	m := bd.machine(b, "bench-refit")
	benchHours(b, bd, m, 2160)
	ctx := context.Background()
	end := t0.Add(2160 * time.Hour)
	req := store.TrainRequest{MachineID: m, Drivers: simulator.TrainingDrivers, TrainingStart: ptr(t0), TrainingEnd: &end}
	b.ResetTimer()
	for range b.N {
		f, err := bd.svc.fitRequest(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		if f.model.N != 2160 {
			b.Fatalf("n = %d", f.model.N)
		}
	}
}
