package anomaly

import (
	"context"
	"math"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/enms/enms-analytics/internal/testdb"
	"github.com/enms/enms-analytics/store"
)

// fixed is a small harness: one machine whose hourly energy the test writes,
// scored against a stand-in model that always expects 50 kWh with standard
// error 1 kWh, so an hour of 50 + z kWh has residual z exactly.
type fixed struct {
	pool       *pgxpool.Pool
	st         *store.Store
	svc        *Service
	machine    string
	modelHours atomic.Int64
}

func newFixed(t *testing.T, cfg func(*Config)) *fixed {
	t.Helper()
	f := &fixed{pool: testdb.New(t)}
	f.st = store.New(f.pool)
	f.modelHours.Store(500)
	c := Config{Store: f.st, Model: PredictorFunc(func(context.Context, string, time.Time) (Prediction, error) {
		return Prediction{OK: true, Expected: 50, StdErr: 1, ModelHours: int(f.modelHours.Load()), ModelVersion: "fixed"}, nil
	})}
	if cfg != nil {
		cfg(&c)
	}
	var err error
	if f.svc, err = New(c); err != nil {
		t.Fatal(err)
	}
	err = f.pool.QueryRow(context.Background(), `
		WITH fa AS (INSERT INTO factories (name) VALUES ('fixed') RETURNING id)
		INSERT INTO machines (factory_id, name, type) SELECT id, 'M', 'pump' FROM fa RETURNING id::text`).Scan(&f.machine)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// put writes (or overwrites) the energy of hour i (from t0) as 50 + z kWh.
func (f *fixed) put(t *testing.T, i int, z float64) {
	t.Helper()
	_, err := f.pool.Exec(context.Background(), `
		INSERT INTO energy_readings_1hour (bucket, machine_id, reading_count, sum_power_kw, total_energy_kwh)
		VALUES ($1, $2, 60, 60 * $3::float8, $3::float8)
		ON CONFLICT (machine_id, bucket) DO UPDATE SET sum_power_kw = excluded.sum_power_kw,
			total_energy_kwh = excluded.total_energy_kwh`, hourAt(i), f.machine, 50+z)
	if err != nil {
		t.Fatal(err)
	}
}

func hourAt(i int) time.Time { return t0.Add(time.Duration(i) * time.Hour) }

// close scores hour i.
func (f *fixed) close(t *testing.T, i int) (HourResult, Result) {
	t.Helper()
	hr, res, err := f.svc.HourClosed(context.Background(), f.machine, hourAt(i))
	if err != nil {
		t.Fatal(err)
	}
	return hr, res
}

// run writes zs from hour 0 on and closes each hour.
func (f *fixed) run(t *testing.T, zs []float64) {
	t.Helper()
	for i, z := range zs {
		f.put(t, i, z)
	}
	for i := range zs {
		f.close(t, i)
	}
}

func (f *fixed) episodes(t *testing.T) []store.Anomaly {
	t.Helper()
	eps, err := f.st.MachineEpisodes(context.Background(), f.machine, t0, t0.AddDate(1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	return eps
}

func quiet(n int) []float64 { return make([]float64, n) }

// TestEpisodesAndQuietGap: hours anomalous 3 hours apart are one episode
// (the gap of 6 quiet hours did not pass); 10 hours apart, two episodes.
func TestEpisodesAndQuietGap(t *testing.T) {
	t.Parallel()
	f := newFixed(t, nil)
	zs := quiet(40)
	zs[5], zs[8] = 6, 5   // one episode: hours 5..8, 2 anomalous hours
	zs[20], zs[30] = 7, 8 // two episodes
	f.run(t, zs)
	eps := f.episodes(t)
	if len(eps) != 3 {
		t.Fatalf("%d episodes, want 3: %+v", len(eps), eps)
	}
	e := eps[0]
	if !e.DetectedAt.Equal(hourAt(5)) || !e.LastHour.Equal(hourAt(8)) || *e.HourCount != 2 || *e.DeviationStdDev != 6 {
		t.Errorf("first episode: from %s to %s, %d hours, peak z %v; want 5..8, 2 hours, peak 6",
			e.DetectedAt, e.LastHour, *e.HourCount, *e.DeviationStdDev)
	}
	// Metric columns at the peak hour: 56 kWh against 50, +12 %.
	if *e.MetricValue != 56 || *e.ExpectedValue != 50 || math.Abs(*e.DeviationPercent-12) > 1e-12 {
		t.Errorf("metric %v expected %v deviation %v %%", *e.MetricValue, *e.ExpectedValue, *e.DeviationPercent)
	}
	if e.AnomalyType != TypeEnergyOver || e.Severity != "critical" {
		t.Errorf("type %s severity %s", e.AnomalyType, e.Severity)
	}
	var statuses []string
	rows, err := f.pool.Query(context.Background(), `SELECT status FROM anomaly_hours WHERE machine_id = $1 ORDER BY bucket`, f.machine)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		statuses = append(statuses, s)
	}
	// All 40 hours close (the last has no later data but ended long ago);
	// the quiet hours inside an episode are normal.
	if len(statuses) != 40 || statuses[5] != StatusAnomalous || statuses[6] != StatusNormal || statuses[8] != StatusAnomalous {
		t.Errorf("statuses %v", statuses)
	}
	// What the baseline reads: anomalous hours are not learnable; normal
	// hours and hours never scored are.
	for _, c := range []struct {
		hour int
		want bool
	}{{5, false}, {6, true}, {8, false}, {100, true}} {
		var got bool
		if err := f.pool.QueryRow(context.Background(), `SELECT anomaly_hour_learnable($1, $2)`, f.machine, hourAt(c.hour)).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("anomaly_hour_learnable(hour %d) = %v, want %v", c.hour, got, c.want)
		}
	}
}

// TestUnscoredBeforeMinHistory: while the model holds fewer than
// ANOMALY_MIN_HISTORY_HOURS hours, even a 10σ hour is recorded unscored,
// and the model may learn it.
func TestUnscoredBeforeMinHistory(t *testing.T) {
	t.Parallel()
	f := newFixed(t, nil)
	f.modelHours.Store(167)
	f.put(t, 0, 10)
	f.put(t, 1, 0)
	hr, _ := f.close(t, 0)
	if hr.Status != StatusUnscored || hr.Reason != "min_history" || !hr.Learn {
		t.Errorf("hour with a 167-hour model: %+v, want unscored (min_history), learnable", hr)
	}
	if eps := f.episodes(t); len(eps) != 0 {
		t.Errorf("episodes before min history: %+v", eps)
	}
	f.modelHours.Store(168)
	f.put(t, 2, 10)
	f.put(t, 3, 0)
	if hr, _ := f.close(t, 2); hr.Status != StatusAnomalous || hr.Learn {
		t.Errorf("hour with a 168-hour model: %+v, want anomalous, not learnable", hr)
	}
}

// TestSuppressionAndWarmup: hours overlapping maintenance, fault or offline
// are suppressed, and the warm-up hours after the machine runs again.
func TestSuppressionAndWarmup(t *testing.T) {
	t.Parallel()
	f := newFixed(t, nil)
	set := func(mode string, running bool, at time.Time) {
		t.Helper()
		if _, err := f.pool.Exec(context.Background(), `
			INSERT INTO machine_status (machine_id, is_running, current_mode, last_updated) VALUES ($1, $2, $3, $4)
			ON CONFLICT (machine_id) DO UPDATE SET is_running = excluded.is_running,
				current_mode = excluded.current_mode, last_updated = excluded.last_updated`,
			f.machine, running, mode, at); err != nil {
			t.Fatal(err)
		}
	}
	set("running", true, hourAt(0))
	set("maintenance", false, hourAt(10).Add(20*time.Minute)) // 10:20
	set("running", true, hourAt(13).Add(30*time.Minute))      // 13:30
	set("fault", false, hourAt(30))
	set("running", true, hourAt(31))
	// Every hour of 10 σ: only the unsuppressed ones can be anomalous.
	zs := make([]float64, 40)
	for i := range zs {
		zs[i] = 10
	}
	f.run(t, zs)
	got := map[int]string{}
	rows, err := f.pool.Query(context.Background(), `SELECT bucket, status, coalesce(reason, '') FROM anomaly_hours WHERE machine_id = $1`, f.machine)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var b time.Time
		var s, r string
		if err := rows.Scan(&b, &s, &r); err != nil {
			t.Fatal(err)
		}
		got[int(b.Sub(t0)/time.Hour)] = s + ":" + r
	}
	// Maintenance 10:20–13:30 touches hours 10..13; warm-up (2 h) covers
	// hours starting before 15:30: 14 and 15. Fault 30:00–31:00 covers hour
	// 30 only; warm-up hours 31 and 32.
	want := map[int]string{9: "anomalous:", 10: "suppressed:maintenance", 13: "suppressed:maintenance",
		14: "suppressed:warmup", 15: "suppressed:warmup", 16: "anomalous:", 29: "anomalous:",
		30: "suppressed:fault", 31: "suppressed:warmup", 32: "suppressed:warmup", 33: "anomalous:"}
	for h, w := range want {
		if got[h] != w {
			t.Errorf("hour %d: %q, want %q", h, got[h], w)
		}
	}
	// A stop ends the open episode: 0..9, then 16..29, then 33..39.
	var spans [][2]int
	for _, e := range f.episodes(t) {
		spans = append(spans, [2]int{int(e.DetectedAt.Sub(t0) / time.Hour), int(e.LastHour.Sub(t0) / time.Hour)})
	}
	if want := [][2]int{{0, 9}, {16, 29}, {33, 39}}; !slices.Equal(spans, want) {
		t.Errorf("episodes %v, want %v", spans, want)
	}
}

// TestLateDataRescores: hour_revised re-scores; a spike revised away
// removes its episode, a normal hour revised into a spike opens one, and an
// episode's extent follows the revision.
func TestLateDataRescores(t *testing.T) {
	t.Parallel()
	f := newFixed(t, nil)
	zs := quiet(30)
	zs[10], zs[11] = 8, 8
	f.run(t, zs)
	if eps := f.episodes(t); len(eps) != 1 || *eps[0].HourCount != 2 {
		t.Fatalf("before revision: %+v", eps)
	}
	ctx := context.Background()
	revise := func(i int, z float64) Result {
		t.Helper()
		f.put(t, i, z)
		res, err := f.svc.HourRevised(ctx, f.machine, hourAt(i))
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// Hour 11 was never a spike: the episode shrinks to one hour.
	revise(11, 0)
	eps := f.episodes(t)
	if len(eps) != 1 || *eps[0].HourCount != 1 || !eps[0].LastHour.Equal(hourAt(10)) {
		t.Fatalf("after revising hour 11: %+v", eps)
	}
	id := eps[0].ID
	// Hour 10 neither: the episode is removed.
	if res := revise(10, 0); res.Deleted != 1 {
		t.Errorf("revising hour 10 deleted %d episodes, want 1", res.Deleted)
	}
	if eps := f.episodes(t); len(eps) != 0 {
		t.Fatalf("after revising hour 10: %+v", eps)
	}
	// Hour 20 turns out to be a spike: a new episode, notified.
	res := revise(20, -9)
	eps = f.episodes(t)
	if len(eps) != 1 || eps[0].AnomalyType != TypeEnergyUnder || !eps[0].DetectedAt.Equal(hourAt(20)) || len(res.Notified) != 1 || eps[0].ID == id {
		t.Fatalf("after revising hour 20: %+v, notified %v", eps, res.Notified)
	}
	// The revised hours are learnable again (11, 10) or not (20).
	for _, h := range res.Hours {
		if h.Hour.Equal(hourAt(20)) && h.Learn {
			t.Error("a revised spike is learnable")
		}
	}
}

// TestNotifyOnOpenAndEscalation: anomaly_detected carries the row id when
// an episode opens (a warning, through the CUSUM) and again when it
// escalates to critical, not when it merely extends.
func TestNotifyOnOpenAndEscalation(t *testing.T) {
	t.Parallel()
	f := newFixed(t, nil)
	ctx := context.Background()
	conn, err := f.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `LISTEN anomaly_detected`); err != nil {
		t.Fatal(err)
	}
	// z = 2.5 from hour 5: the upper CUSUM grows by 2.5 − 0.5 = 2 an hour
	// and crosses h = 8.38 at hour 9 (10 > 8.38), opening a warning episode
	// (|z| 2.5 < 3). Hour 10 extends it at 2.5 (no notification), hour 11
	// at z = 3.5 makes it critical (a second notification).
	zs := append(quiet(5), 2.5, 2.5, 2.5, 2.5, 2.5, 2.5, 3.5)
	zs = append(zs, quiet(3)...)
	f.run(t, zs)
	eps := f.episodes(t)
	if len(eps) != 1 || !eps[0].DetectedAt.Equal(hourAt(9)) || eps[0].Severity != "critical" || *eps[0].DetectionMethod != "cusum" {
		t.Fatalf("episodes: %+v", eps)
	}
	var got []string
	for range 2 {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		n, err := conn.Conn().WaitForNotification(wctx)
		cancel()
		if err != nil {
			t.Fatalf("notification %d: %v", len(got)+1, err)
		}
		got = append(got, n.Payload)
	}
	if got[0] != eps[0].ID || got[1] != eps[0].ID {
		t.Errorf("notifications %v, want the episode id %s twice", got, eps[0].ID)
	}
	// No third one: the extension at hour 10 was not an escalation.
	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if n, err := conn.Conn().WaitForNotification(wctx); err == nil {
		t.Errorf("unexpected notification %q", n.Payload)
	}
}

// TestHourClosedIdempotent: closing an hour again (at-least-once delivery)
// reuses the stored prediction and writes nothing new.
func TestHourClosedIdempotent(t *testing.T) {
	t.Parallel()
	f := newFixed(t, nil)
	zs := quiet(20)
	zs[12] = 9
	f.run(t, zs)
	before := f.episodes(t)
	// The model has moved on (it would predict differently now): the stored
	// prediction is what counts on redelivery.
	f.modelHours.Store(10)
	for i := range 20 {
		hr, res := f.close(t, i)
		if len(res.Notified) != 0 {
			t.Errorf("hour %d: redelivery notified %v", i, res.Notified)
		}
		if i == 12 && hr.Status != StatusAnomalous {
			t.Errorf("hour 12 on redelivery: %+v", hr)
		}
	}
	after := f.episodes(t)
	if len(after) != 1 || len(before) != 1 || after[0].ID != before[0].ID || *after[0].HourCount != 1 {
		t.Errorf("before %+v, after %+v", before, after)
	}
}
