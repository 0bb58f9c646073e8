package anomaly

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/enms/enms-analytics/baseline"
	"github.com/enms/enms-analytics/store"
)

// runTables are the results a run writes, each with the columns that are
// not results: wall-clock times and generated ids (baseline ids inside other
// columns are replaced by machine and version in dumpRun). The scoring
// generation counts transactions, which a run saves.
var runTables = []struct{ table, omit string }{
	{"anomaly_hours", "{scored_at}"},
	{"anomalies", "{id,created_at}"},
	{"anomaly_machine_state", "{generation,updated_at}"},
	{"baseline_rolling_state", "{updated_at}"},
	{"baseline_rolling_hours", "{}"},
	{"baseline_rolling_kept_out", "{}"},
	{"energy_baselines", "{created_at}"},
}

// dumpRun is the canonical text of runTables, rows in text order, with each
// baseline id written as its machine and version (ids are random).
func dumpRun(t *testing.T, b *bundle) map[string][]string {
	t.Helper()
	ctx := context.Background()
	rows, err := b.pool.Query(ctx, `SELECT id::text, format('baseline:%s:v%s', machine_id, model_version) FROM energy_baselines`)
	if err != nil {
		t.Fatal(err)
	}
	var pairs []string
	for rows.Next() {
		var id, name string
		if err := rows.Scan(&id, &name); err != nil {
			t.Fatal(err)
		}
		pairs = append(pairs, id, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	ids := strings.NewReplacer(pairs...)
	out := map[string][]string{}
	for _, rt := range runTables {
		rows, err := b.pool.Query(ctx, fmt.Sprintf(`SELECT (to_jsonb(t) - $1::text[])::text FROM %s t`,
			pgx.Identifier{rt.table}.Sanitize()), rt.omit)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for i := range lines {
			lines[i] = ids.Replace(lines[i])
		}
		slices.Sort(lines)
		out[rt.table] = lines
	}
	return out
}

// TestRunsEqualHourByHour: handling a machine's closed hours in runs
// (HoursClosed, what the worker does during a backfill) leaves exactly the
// records, episodes, rolling models and published baselines that handling
// them hour by hour leaves. The plant has incidents (anomalous hours kept
// out of the model), a maintenance window (suppressed hours), a gap of hours
// without energy inside a run and one at the end (the last run of each
// machine ends in hours without energy, which score nothing but step the
// model), and 40 days: the rolling model is built, re-chooses its
// drivers daily in its first week and is considered for publication every
// 168 h, each an hour a run must end before.
func TestRunsEqualHourByHour(t *testing.T) {
	t.Parallel()
	p := newPlant(2, 40, 11, true)
	gapFrom, gapTo := t0.Add(20*24*time.Hour+3*time.Hour), t0.Add(20*24*time.Hour+8*time.Hour)
	endGap := t0.Add(time.Duration(p.hours-3) * time.Hour) // the last 3 hours
	newBundle := func() (*bundle, *baseline.Service) {
		var bl *baseline.Service
		b := setup(t, p, func(c *Config) {
			bc := baseline.DefaultConfig(c.Store)
			// A 10-day window, so that hours leave it during the 40 days;
			// it holds at most 240 hours, so versions publish from 150.
			bc.WindowDays, bc.MinSamples = 10, 150
			bl = baseline.New(bc)
			c.Model = BaselinePredictor(bl)
		})
		ctx := context.Background()
		if _, err := b.pool.Exec(ctx, `DELETE FROM energy_readings_1hour WHERE bucket >= $1 AND bucket < $2`,
			gapFrom, gapTo); err != nil {
			t.Fatal(err)
		}
		if _, err := b.pool.Exec(ctx, `DELETE FROM energy_readings_1hour WHERE bucket >= $1`, endGap); err != nil {
			t.Fatal(err)
		}
		// An active baseline on the simulation's own drivers, so that the
		// rolling model takes its drivers and its versions pass validity
		// and publish (default drivers include insignificant ones here).
		train(t, b, bl, 1)
		return b, bl
	}
	hours := make([]time.Time, p.hours)
	for i := range hours {
		hours[i] = t0.Add(time.Duration(i) * time.Hour)
	}
	ctx := context.Background()

	// Day 20 a new version with the same drivers is trained (an energy
	// manager's request): the rolling model takes it as its source from the
	// next hour on, without a rebuild.
	halves := [][]time.Time{hours[:20*24], hours[20*24:]}

	byHour, blA := newBundle()
	for k, half := range halves {
		if k > 0 {
			train(t, byHour, blA, 2)
		}
		for _, id := range byHour.machines {
			for _, h := range half {
				if err := byHour.svc.hourClosed(ctx, blA.Refresh, id, h); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	want := dumpRun(t, byHour)

	inRuns, blB := newBundle()
	// Run sizes vary as the worker's do (a claim takes what is pending, up
	// to its limit); 128 is the worker's default limit.
	sizes := []int{1, 5, 37, 128, 2, 64, 128, 128}
	for h, half := range halves {
		if h > 0 {
			train(t, inRuns, blB, 2)
		}
		for _, id := range inRuns.machines {
			// The second half starts with a run of 128, so the new version
			// is met inside a run.
			for i, k := 0, 3*h; i < len(half); k++ {
				n := min(sizes[k%len(sizes)], len(half)-i)
				if err := inRuns.svc.HoursClosed(ctx, blB, id, half[i:i+n]); err != nil {
					t.Fatal(err)
				}
				i += n
			}
		}
	}
	// Hours a run must end before (a rebuild or publication due) go hour
	// by hour; the rest must have gone in runs, or this compares nothing.
	total := int64(len(hours) * len(inRuns.machines))
	if n := inRuns.svc.runHours.Load(); n < total*9/10 {
		t.Errorf("%d of %d hours were handled in runs; want at least 90%%", n, total)
	} else {
		t.Logf("%d of %d hours handled in runs", n, total)
	}
	got := dumpRun(t, inRuns)
	compareDumps(t, got, want)
	if len(want["energy_baselines"]) == 0 || len(want["anomalies"]) == 0 {
		t.Fatalf("the comparison must cover published baselines and episodes: %d baselines, %d episodes",
			len(want["energy_baselines"]), len(want["anomalies"]))
	}

	// A worker that dies after a run committed gets the run's events again,
	// one at a time: nothing changes.
	for _, id := range inRuns.machines {
		for _, h := range hours[len(hours)-30:] {
			if err := inRuns.svc.hourClosed(ctx, blB.Refresh, id, h); err != nil {
				t.Fatal(err)
			}
		}
		if err := inRuns.svc.HoursClosed(ctx, blB, id, hours[len(hours)-20:]); err != nil {
			t.Fatal(err)
		}
	}
	compareDumps(t, dumpRun(t, inRuns), want)
}

// train publishes a baseline of every machine on the simulation's drivers
// (production and cooling degree-hours), fitted on the first 14 days; n
// tells requests apart.
func train(t *testing.T, b *bundle, bl *baseline.Service, n int) {
	t.Helper()
	ctx := context.Background()
	from, to := t0, t0.Add(14*24*time.Hour)
	for i, id := range b.machines {
		err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
			res, err := bl.Train(ctx, tx, store.TrainRequest{ID: fmt.Sprintf("00000000-0000-4000-9%03d-%012d", n, i+1),
				MachineID: id, Drivers: []string{"production_count", "cdd"}, TrainingStart: &from, TrainingEnd: &to})
			if err == nil && res.Status != store.TrainDone {
				err = fmt.Errorf("training %s: %s", res.Status, res.Error)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func compareDumps(t *testing.T, got, want map[string][]string) {
	t.Helper()
	for _, rt := range runTables {
		g, w := got[rt.table], want[rt.table]
		if len(g) != len(w) {
			t.Errorf("%s: %d rows in runs, %d hour by hour", rt.table, len(g), len(w))
		}
		shown := 0
		for i := 0; i < min(len(g), len(w)) && shown < 3; i++ {
			if g[i] != w[i] {
				t.Errorf("%s row %d differs:\n runs:         %s\n hour by hour: %s", rt.table, i, g[i], w[i])
				shown++
			}
		}
	}
}
