package baseline

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/enms/enms-analytics/internal/testdb"
	"github.com/enms/enms-analytics/internal/workertest"
	"github.com/enms/enms-analytics/listener"
	"github.com/enms/enms-analytics/store"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// bundle is one test's database, store and service.
type bundle struct {
	pool *pgxpool.Pool
	st   *store.Store
	svc  *Service
	dir  string // MODEL_STORAGE_PATH
}

func setup(t testing.TB, cfg func(*Config)) *bundle {
	t.Helper()
	pool := testdb.New(t)
	st := store.New(pool)
	c := DefaultConfig(st)
	c.ModelStoragePath = t.TempDir()
	if cfg != nil {
		cfg(&c)
	}
	return &bundle{pool: pool, st: st, svc: New(c), dir: c.ModelStoragePath}
}

// startWorker runs the real event worker with the service's trainer and
// stops it when the test ends.
// register, when given, adds handlers before the worker runs.
func (b *bundle) startWorker(t testing.TB, register ...func(*listener.Worker)) *listener.Worker {
	t.Helper()
	// The hours these tests write are in 2026, long past: with the default
	// grace the worker's sweeper (it also sweeps once as it starts) could
	// close a test's open hour while the test is still writing hours, as
	// listener tests saw under -race (bd9e93b). A century of grace leaves
	// closing hours to the readings.
	w, err := listener.New(listener.Config{Store: b.st, PollInterval: 200 * time.Millisecond,
		HourCloseGrace: 100 * 365 * 24 * time.Hour, Logger: workertest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	w.HandleTrain(b.svc.TrainHandler())
	for _, r := range register {
		r(w)
	}
	workertest.Start(t, w)
	return w
}

func (b *bundle) machine(t testing.TB, name string) string {
	t.Helper()
	ctx := context.Background()
	var id string
	err := b.pool.QueryRow(ctx, `
		WITH f AS (INSERT INTO factories (name) VALUES ($1 || ' plant') ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id)
		INSERT INTO machines (factory_id, name, type, data_interval_seconds) SELECT id, $1, 'compressor', 60 FROM f
		RETURNING id::text`, name).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// hourRow is one simulated machine-hour written straight into the rollups.
type hourRow struct {
	hour     time.Time
	kwh      float64
	units    float64 // production_count; NaN = no production rollup row
	temp     float64 // avg outdoor temperature; NaN = not reported
	pressure float64 // NaN = not reported
}

// insertHours writes energy, production and environmental rollup rows
// (running the whole hour) with COPY.
func (b *bundle) insertHours(t testing.TB, machineID string, rows []hourRow) {
	t.Helper()
	ctx := context.Background()
	copyRows := func(table string, cols []string, f func(r hourRow) ([]any, bool)) {
		var data [][]any
		for _, r := range rows {
			if v, ok := f(r); ok {
				data = append(data, v)
			}
		}
		if _, err := b.pool.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromRows(data)); err != nil {
			t.Fatalf("copy %s: %v", table, err)
		}
	}
	copyRows("energy_readings_1hour", []string{"bucket", "machine_id", "reading_count", "sum_power_kw", "total_energy_kwh"},
		func(r hourRow) ([]any, bool) { return []any{r.hour, machineID, 60, 60 * r.kwh, r.kwh}, true })
	copyRows("production_data_1hour", []string{"bucket", "machine_id", "reading_count", "total_production_count",
		"running_seconds", "dominant_mode"},
		func(r hourRow) ([]any, bool) {
			return []any{r.hour, machineID, 60, int64(r.units), 3600.0, "running"}, !math.IsNaN(r.units)
		})
	copyRows("environmental_data_1hour", []string{"bucket", "machine_id", "reading_count", "sum_outdoor_temp_c",
		"outdoor_temp_count", "sum_pressure_bar", "pressure_count"},
		func(r hourRow) ([]any, bool) {
			if math.IsNaN(r.temp) && math.IsNaN(r.pressure) {
				return nil, false
			}
			var st, sp float64
			var ct, cp int
			if !math.IsNaN(r.temp) {
				st, ct = r.temp, 1
			}
			if !math.IsNaN(r.pressure) {
				sp, cp = r.pressure, 1
			}
			return []any{r.hour, machineID, 1, st, ct, sp, cp}, true
		})
}

// setStatus records the machine's status at a past time through
// machine_status (its trigger appends machine_status_history).
func (b *bundle) setStatus(t testing.TB, machineID, mode string, running bool, at time.Time) {
	t.Helper()
	_, err := b.pool.Exec(context.Background(), `
		INSERT INTO machine_status (machine_id, is_running, current_mode, last_updated) VALUES ($1, $2, $3, $4)
		ON CONFLICT (machine_id) DO UPDATE SET is_running = excluded.is_running,
			current_mode = excluded.current_mode, last_updated = excluded.last_updated`,
		machineID, running, mode, at)
	if err != nil {
		t.Fatal(err)
	}
}

var t0 = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC) // a Monday

// knownTruth simulates kWh = 12 + 0.8·units + 0.5·cdd + ε, ε ~ N(0, 2²),
// base 18 °C, over hours hours from t0; pressure is a nearly constant
// driver (7 bar ± 0.02).
func knownTruth(hours int, seed uint64) []hourRow {
	rng := rand.New(rand.NewPCG(seed, 50006))
	rows := make([]hourRow, hours)
	for i := range rows {
		h := t0.Add(time.Duration(i) * time.Hour)
		day := 2 * math.Pi * float64(i%24) / 24
		temp := 20 + 10*math.Sin(day-math.Pi/2) + 5*math.Sin(2*math.Pi*float64(i)/(24*30)) + rng.NormFloat64()
		units := float64(rng.IntN(101))
		kwh := 12 + 0.8*units + 0.5*math.Max(0, temp-18) + 2*rng.NormFloat64()
		rows[i] = hourRow{hour: h, kwh: kwh, units: units, temp: temp, pressure: 7 + 0.02*rng.NormFloat64()}
	}
	return rows
}

// request inserts a training request with plain SQL and returns its id.
func (b *bundle) request(t testing.TB, machineID string, drivers []string, start, end time.Time) string {
	t.Helper()
	var id string
	err := b.pool.QueryRow(context.Background(), `
		INSERT INTO baseline_train_requests (machine_id, drivers, training_start, training_end)
		VALUES ($1, $2, $3, $4) RETURNING id::text`, machineID, drivers, start, end).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// wait waits (up to a minute) for the request to finish.
func (b *bundle) wait(t testing.TB, id string) store.TrainRequestRow {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := b.st.WaitTrainRequest(ctx, id)
	if err != nil {
		t.Fatalf("request %s: %v (last seen %s)", id, err, r.Status)
	}
	return r
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
