package simulator

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TrainingDrivers are the six drivers that vary independently in the hours
// WriteTrainingHours writes.
var TrainingDrivers = []string{"production_count", "operating_hours", "pressure_bar", "material_moisture_pct", "hdd", "cdd"}

// WriteTrainingHours writes n hourly rollup rows from t0 for machine — a
// baseline with a known truth for benchmarks of training and of the rolling
// model, seeded so every run trains on the same data:
//
//	kWh = 10 + 0.8·units + 20·running share + 3·(pressure − 7) + 0.4·moisture
//	      + 0.3·hdd + 0.5·cdd + N(0, 2²)
//
// (hdd and cdd against 18 °C). The rows go straight into the rollup tables,
// bypassing the raw-reading triggers, so no hour events are emitted.
func WriteTrainingHours(ctx context.Context, pool *pgxpool.Pool, machine string, t0 time.Time, n int) error {
	rng := rand.New(rand.NewPCG(9, 2160))
	var energy, prod, env [][]any
	for i := range n {
		h := t0.Add(time.Duration(i) * time.Hour)
		temp := 15 + 10*math.Sin(2*math.Pi*float64(i%24)/24) + 3*rng.NormFloat64()
		units := float64(rng.IntN(101))
		share := 0.5 + 0.5*rng.Float64()
		press := 7 + 0.5*rng.NormFloat64()
		moist := 2 + rng.Float64()
		kwh := 10 + 0.8*units + 20*share + 3*(press-7) + 0.4*moist + 0.3*math.Max(0, 18-temp) +
			0.5*math.Max(0, temp-18) + 2*rng.NormFloat64()
		energy = append(energy, []any{h, machine, 60, 60 * kwh, kwh})
		prod = append(prod, []any{h, machine, 60, int64(units), 3600 * share, 3600 * (1 - share), "running", moist, 1})
		env = append(env, []any{h, machine, 1, temp, 1, press, 1})
	}
	for _, c := range []struct {
		table string
		cols  []string
		rows  [][]any
	}{
		{"energy_readings_1hour", []string{"bucket", "machine_id", "reading_count", "sum_power_kw", "total_energy_kwh"}, energy},
		{"production_data_1hour", []string{"bucket", "machine_id", "reading_count", "total_production_count",
			"running_seconds", "idle_seconds", "dominant_mode", "sum_material_moisture", "material_moisture_count"}, prod},
		{"environmental_data_1hour", []string{"bucket", "machine_id", "reading_count", "sum_outdoor_temp_c",
			"outdoor_temp_count", "sum_pressure_bar", "pressure_count"}, env},
	} {
		if _, err := pool.CopyFrom(ctx, pgx.Identifier{c.table}, c.cols, pgx.CopyFromRows(c.rows)); err != nil {
			return fmt.Errorf("write training hours into %s: %w", c.table, err)
		}
	}
	return nil
}
