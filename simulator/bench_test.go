package simulator

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/enms/enms-analytics/internal/testdb"
)

// benchDays is the backfilled period of BenchmarkBackfillDemoPlant: 60 days
// (the `make run` history), or SIM_BENCH_DAYS.
func benchDays(b *testing.B) int {
	if s := os.Getenv("SIM_BENCH_DAYS"); s != "" {
		d, err := strconv.Atoi(s)
		if err != nil || d < 1 {
			b.Fatalf("SIM_BENCH_DAYS=%q: want a positive number of days", s)
		}
		return d
	}
	return 60
}

// BenchmarkBackfillDemoPlant backfills the seven demo machines over 60 days
// at the default history step (one reading a minute) into a fresh database
// with every migration (rollup and hour-close triggers included) — what
// `make run` does on a fresh clone. Run with -benchtime=1x. Reports the
// wall time per 60 days, rows/s and machine-hours/s.
func BenchmarkBackfillDemoPlant(b *testing.B) {
	days := benchDays(b)
	step := DefaultHistoryStep
	if s := os.Getenv("SIM_BENCH_STEP"); s != "" {
		var err error
		if step, err = time.ParseDuration(s); err != nil {
			b.Fatal(err)
		}
	}
	writers, _ := strconv.Atoi(os.Getenv("SIM_BENCH_WRITERS"))
	g := newGen(b, 1, DefaultIncidentRate)
	to := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	from := to.Add(-time.Duration(days) * 24 * time.Hour)
	var rows int64
	var elapsed time.Duration
	for b.Loop() {
		b.StopTimer()
		pool := testdb.New(b)
		if err := SeedPlant(context.Background(), pool, DemoPlant); err != nil {
			b.Fatal(err)
		}
		ms, err := Machines(context.Background(), pool, DemoPlant.Names())
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		res, err := Backfill(context.Background(), pool, g, ms, BackfillOptions{From: from, To: to, Step: step, Writers: writers})
		if err != nil {
			b.Fatal(err)
		}
		rows += res.Rows
		elapsed += res.Elapsed
	}
	machineHours := float64(7*24*days) * float64(b.N)
	b.ReportMetric(elapsed.Seconds()/float64(b.N), "s/backfill")
	b.ReportMetric(float64(rows)/elapsed.Seconds(), "rows/s")
	b.ReportMetric(machineHours/elapsed.Seconds(), "machine-hours/s")
	b.ReportMetric(float64(rows)/float64(b.N), "rows/backfill")
}

// BenchmarkGenerateDemoPlantDay measures generation alone: one day of the
// seven demo machines at the default history step (every tick of the
// machines' own sampling intervals is simulated).
func BenchmarkGenerateDemoPlantDay(b *testing.B) {
	g := newGen(b, 1, DefaultIncidentRate)
	ms := DemoMachines()
	from := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	var batch Batch
	for b.Loop() {
		batch.Reset()
		for _, m := range ms {
			s, err := g.Stream(m, from, StepFor(m, DefaultHistoryStep))
			if err != nil {
				b.Fatal(err)
			}
			s.Next(from.Add(24*time.Hour), &batch)
		}
	}
	b.ReportMetric(float64(len(batch.Readings)), "readings/day")
}
