package anomaly

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/enms/enms-analytics/baseline"
	"github.com/enms/enms-analytics/internal/testdb"
	"github.com/enms/enms-analytics/internal/workertest"
	"github.com/enms/enms-analytics/listener"
	"github.com/enms/enms-analytics/store"
	"github.com/enms/enms-analytics/triggers"
)

// BenchmarkScoreHour measures the in-process cost of scoring one closed
// hour, without the database: the energy z and both CUSUMs, three process
// signals against robust statistics of a full 720-hour window, the
// isolation forest (100 trees), the episode bookkeeping and encoding the
// state. Reported as µs/hour.
func BenchmarkScoreHour(b *testing.B) {
	svc, err := New(Config{Store: store.New(nil), Model: PredictorFunc(
		func(context.Context, string, time.Time) (Prediction, error) {
			return Prediction{OK: true, Expected: 50, StdErr: 1, ModelHours: 2000}, nil
		})})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	input := func(i int) store.AnomalyInput {
		return store.AnomalyInput{Hour: hourAt(i), EnergyKWh: 50 + rng.NormFloat64(), AvgPowerKW: 50,
			ProductionCount: 60, AvgMachineTempC: 45 + rng.NormFloat64(), MaxMachineTempC: 52 + rng.NormFloat64(),
			AvgPressureBar: 7 + 0.05*rng.NormFloat64(), AvgPressureSetpointBar: 7, MaxVibrationMMS: 2 + 0.1*rng.NormFloat64()}
	}
	ctx := context.Background()
	r := &run{machineID: "bench", touched: map[store.EpisodeKey]*episode{}}
	// Fill the window: 720 scored hours (the forest is trained on the way,
	// without a database: the window is in memory).
	for i := range 720 {
		if _, _, err := svc.scoreHour(ctx, nil, r, input(i), store.AnomalyHour{}, false, false, nil); err != nil {
			b.Fatal(err)
		}
	}
	if r.st.ForestBefore == nil || len(r.window) < 700 {
		b.Fatalf("setup: forest %v, window %d", r.st.ForestBefore, len(r.window))
	}
	// Stay on the trained forest: the benchmark measures scoring, retraining
	// (once a week of data) is BenchmarkForestTrain.
	svc.cfg.ForestRefreshHours = 1 << 20 // 120 years: no retraining during the benchmark
	inputs := make([]store.AnomalyInput, 1024)
	for i := range inputs {
		inputs[i] = input(720 + i)
	}
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; b.Loop(); i++ {
		if _, _, err := svc.scoreHour(ctx, nil, r, inputs[i%len(inputs)], store.AnomalyHour{}, false, false, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/hour")
	// On a shared machine wall time includes waiting for a core; the
	// process's CPU time (user + system, GC included) is what scoring costs.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu_µs/hour")
}

// cpuTime is the process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkForestTrain measures training a machine's forest on 720 hours
// (done once per ForestRefreshHours of data).
func BenchmarkForestTrain(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	hours := make([]store.AnomalyHour, 720)
	for i := range hours {
		hours[i] = store.AnomalyHour{Hour: hourAt(i), Status: StatusNormal, Z: rng.NormFloat64(), AvgPowerKW: 50 + rng.NormFloat64(),
			AvgMachineTempC: 45 + rng.NormFloat64(), MaxMachineTempC: 52 + rng.NormFloat64(), AvgPressureBar: 7 + 0.05*rng.NormFloat64()}
	}
	for b.Loop() {
		if trainForest(hours, hourAt(720), 1, 100, 0.0005/7) == nil {
			b.Fatal("no forest")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/train")
}

// BenchmarkHourClosed measures HourClosed through the database (one
// transaction: lock, read, score, write) on a machine with 720 hours of
// history, closing hours in order as the worker does. Run with
// -benchtime=500x or so; at most 4,000 hours are prepared.
func BenchmarkHourClosed(b *testing.B) {
	f := newFixedB(b)
	const prepared = 4720
	if _, err := f.pool.Exec(context.Background(), `
		INSERT INTO energy_readings_1hour (bucket, machine_id, reading_count, sum_power_kw, total_energy_kwh)
		SELECT $2::timestamptz + h * interval '1 hour', $1, 60, 60 * (50 + sin(h)), 50 + sin(h)
		  FROM generate_series(0, $3 - 1) AS h`, f.machine, t0, prepared); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for i := range 720 {
		if _, _, err := f.svc.HourClosed(ctx, f.machine, hourAt(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		h := 720 + i%(prepared-720)
		if _, _, err := f.svc.HourClosed(ctx, f.machine, hourAt(h)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/hour")
}

func newFixedB(b *testing.B) *fixed {
	f := &fixed{pool: testdb.New(b)}
	f.st = store.New(f.pool)
	svc, err := New(Config{Store: f.st, Model: PredictorFunc(func(context.Context, string, time.Time) (Prediction, error) {
		return Prediction{OK: true, Expected: 50, StdErr: 1, ModelHours: 500}, nil
	})})
	if err != nil {
		b.Fatal(err)
	}
	f.svc = svc
	if err := f.pool.QueryRow(context.Background(), `
		WITH fa AS (INSERT INTO factories (name) VALUES ('bench') RETURNING id)
		INSERT INTO machines (factory_id, name, type) SELECT id, 'M', 'pump' FROM fa RETURNING id::text`).Scan(&f.machine); err != nil {
		b.Fatal(err)
	}
	return f
}

// BenchmarkHourCloseToAnomaly measures, through the real pipeline — raw
// readings, rollup triggers, the outbox, the listener worker, the baseline's
// rolling model and anomaly scoring — the time from the COMMIT of the
// reading that closes an anomalous hour to the anomaly_detected
// notification of its new episode (sent when the scoring transaction
// commits the anomalies row). Each iteration writes a spike hour (+60 %
// energy, about 35σ), the reading that closes it (timed), and then six
// quiet hours so the next spike opens a new episode. Reports p50 and p99 in
// ms. Run with -benchtime=40x or so.
func BenchmarkHourCloseToAnomaly(b *testing.B) {
	pool := testdb.New(b)
	st := store.New(pool)
	ctx := context.Background()
	bl := baseline.New(baseline.DefaultConfig(st))
	// Each spike must open a new episode (that is what notifies): a quiet
	// hour of z ≥ 2 within six hours before a spike would make the spike
	// extend an older one instead. A continuation threshold of 3.5σ (warning
	// 3.5, critical 4) and a quiet gap of 2 hours rule that out; latency does
	// not depend on the thresholds.
	svc, err := New(Config{Store: st, Model: BaselinePredictor(bl), WarningSigma: 3.5, CriticalSigma: 4, QuietGapHours: 2})
	if err != nil {
		b.Fatal(err)
	}
	// The simulated hours lie in the past, which the sweeper would close as
	// soon as it sees them; a grace of ten years leaves closing to the next
	// reading, as in live operation.
	w, err := listener.New(listener.Config{Store: st, PollInterval: 100 * time.Millisecond, HourCloseGrace: 10 * 365 * 24 * time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	// hour_closed as the service registers it: runs of a machine's events
	// (one event when live) through HoursClosed.
	w.HandleRun(triggers.KindHourClosed, func(ctx context.Context, evs []triggers.Event) error {
		hours := make([]time.Time, len(evs))
		for i, ev := range evs {
			hours[i] = ev.Bucket
		}
		return svc.HoursClosed(ctx, bl, evs[0].MachineID, hours)
	})
	w.Handle(triggers.KindHourRevised, svc.HourRevisedHandler(bl))
	defer workertest.Start(b, w)()

	var machine string
	if err := pool.QueryRow(ctx, `
		WITH fa AS (INSERT INTO factories (name) VALUES ('latency') RETURNING id)
		INSERT INTO machines (factory_id, name, type, data_interval_seconds) SELECT id, 'C1', 'compressor', 3600 FROM fa
		RETURNING id::text`).Scan(&machine); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(9, 9))
	// write inserts one reading per table for hour i: production 40..80
	// units, energy 40 + 0.5·units + N(0, 1) kWh, times factor.
	write := func(i int, factor float64) {
		units := 40 + rng.IntN(41)
		kwh := (40 + 0.5*float64(units) + rng.NormFloat64()) * factor
		h := hourAt(i)
		if _, err := pool.Exec(ctx, `
			WITH e AS (INSERT INTO energy_readings (time, machine_id, power_kw, energy_kwh) VALUES ($1, $2, $3, $3))
			INSERT INTO production_data (time, machine_id, production_count, operating_mode) VALUES ($1, $2, $4, 'running')`,
			h, machine, kwh, units); err != nil {
			b.Fatal(err)
		}
	}
	pending := func() int {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM analytics_events WHERE machine_id = $1 AND done_at IS NULL AND parked_at IS NULL`, machine).Scan(&n); err != nil {
			b.Fatal(err)
		}
		return n
	}
	drain := func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		deadline := time.After(5 * time.Minute)
		for pending() > 0 {
			select {
			case <-tick.C:
			case <-deadline:
				b.Fatal("events not processed after 5 min")
			}
		}
	}
	// 250 hours of history: the rolling model passes its 168 hours.
	hour := 0
	for ; hour < 250; hour++ {
		write(hour, 1)
	}
	drain()

	conn, err := pool.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `LISTEN anomaly_detected`); err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		write(hour, 1.6) // the spike hour (closes the hour before it)
		drain()
		b.StartTimer()
		start := time.Now() // the insert and COMMIT of the closing reading count
		write(hour+1, 1)
		nctx, ncancel := context.WithTimeout(ctx, time.Minute)
		_, err := conn.Conn().WaitForNotification(nctx)
		ncancel()
		if err != nil {
			rows, _ := pool.Query(ctx, `SELECT bucket, status, coalesce(reason, ''), coalesce(z, 0), types::text FROM anomaly_hours
				WHERE machine_id = $1 AND bucket >= $2 ORDER BY bucket`, machine, hourAt(hour-3))
			for rows.Next() {
				var bk time.Time
				var st, rs, ty string
				var z float64
				_ = rows.Scan(&bk, &st, &rs, &z, &ty)
				b.Logf("%s %s %s z=%.1f %s", bk.Format(time.RFC3339), st, rs, z, ty)
			}
			rows, _ = pool.Query(ctx, `SELECT kind, bucket, coalesce(last_error, ''), done_at IS NOT NULL, parked_at IS NOT NULL FROM analytics_events
				WHERE machine_id = $1 AND (last_error IS NOT NULL OR done_at IS NULL) ORDER BY id`, machine)
			for rows.Next() {
				var k, e string
				var bk *time.Time
				var d, p bool
				_ = rows.Scan(&k, &bk, &e, &d, &p)
				b.Logf("event %s %v done=%v parked=%v err=%s", k, bk, d, p, e)
			}
			rows, _ = pool.Query(ctx, `SELECT id::text, anomaly_type, detected_at, last_hour, hour_count, severity::text FROM anomalies WHERE machine_id = $1 ORDER BY detected_at`, machine)
			for rows.Next() {
				var id, ty, sv string
				var d, l time.Time
				var n int
				_ = rows.Scan(&id, &ty, &d, &l, &n, &sv)
				b.Logf("episode %s %s %s..%s %d %s", id, ty, d.Format(time.RFC3339), l.Format(time.RFC3339), n, sv)
			}
			b.Fatalf("no anomaly_detected for the spike at hour %d: %v", hour, err)
		}
		lat = append(lat, time.Since(start))
		b.StopTimer()
		for k := 2; k <= 7; k++ {
			write(hour+k, 1)
		}
		hour += 8
		drain()
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(math.Ceil(p*float64(len(lat))))-1)].Microseconds()) / 1000
	}
	b.ReportMetric(q(0.5), "p50_ms")
	b.ReportMetric(q(0.99), "p99_ms")
	var eps int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM anomalies WHERE machine_id = $1`, machine).Scan(&eps); err != nil {
		b.Fatal(err)
	}
	if eps != len(lat) {
		b.Errorf("%d episodes for %d spikes", eps, len(lat))
	}
	// Every closed hour after the first with a model goes as a run of one
	// unless a rebuild or publication is due: the figures are of runs.
	if svc.runHours.Load() == 0 {
		b.Error("no hour went through a run; the figures are not of the path the service takes")
	}
}
