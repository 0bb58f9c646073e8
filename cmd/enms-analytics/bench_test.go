package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/enms/enms-analytics/internal/testdb"
)

// TestBenchReport runs every measurement of `bench` at a tiny size, with the
// worker in this process, on the test cluster, and checks the report: every
// published key is there with a finite, positive number, and the counts are
// the ones the sizes imply. It checks correctness, not speed.
func TestBenchReport(t *testing.T) {
	t.Parallel()
	admin := testdb.AdminURL(t)
	o := benchOptions{Quick: true, Machines: 2, Days: 1, Step: 15 * time.Minute, IngestBatches: 2,
		LatencyHours: 2, BurstMachines: 20, BurstHistoryDays: 1, TrainSamples: 1, TrainHours: 1200,
		APIRequests: 20, APIClients: 4, InProcess: true}
	getenv := func(k string) string {
		if k == "BENCH_DATABASE_URL" {
			return admin
		}
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	rep, err := runBench(ctx, Config{WorkerConcurrency: 2}, getenv, o, &progress)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, progress.String())
	}
	raw, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	positive := func(name string, v any) {
		t.Helper()
		f, ok := v.(float64)
		if !ok || math.IsNaN(f) || math.IsInf(f, 0) || f <= 0 {
			t.Errorf("%s = %v, want a finite positive number", name, v)
		}
	}
	for _, k := range []string{"ingest_rows_per_s_with_triggers", "ingest_rows_per_s_without_triggers", "ingest_ratio",
		"burst_1000_machines_s", "backfill_machine_hours_per_s", "worker_peak_rss_mb", "api_concurrency"} {
		positive(k, m[k])
	}
	for _, k := range []string{"hour_close_latency_ms", "burst_hour_close_latency_ms", "train_latency_ms", "api_latency_ms"} {
		d, ok := m[k].(map[string]any)
		if !ok {
			t.Errorf("%s = %v, want {p50, p99}", k, m[k])
			continue
		}
		positive(k+".p50", d["p50"])
		positive(k+".p99", d["p99"])
		if p50, p99 := d["p50"].(float64), d["p99"].(float64); p50 > p99 {
			t.Errorf("%s: p50 %v > p99 %v", k, p50, p99)
		}
	}
	mi, _ := m["machine"].(map[string]any)
	positive("machine.cores", mi["cores"])
	for _, k := range []string{"go_version", "postgres_version", "loadavg_start", "loadavg_end"} {
		if s, _ := mi[k].(string); s == "" {
			t.Errorf("machine.%s is empty", k)
		}
	}
	if notes, _ := m["notes"].([]any); len(notes) == 0 {
		t.Error("no notes: the report must say how it measured")
	}

	// Counts the sizes imply.
	if rep.IngestRows != 2*1000 {
		t.Errorf("ingest rows %d, want 2 batches × 1,000", rep.IngestRows)
	}
	// One day of history per machine closes every hour but the newest, still
	// open: 2 machines × 23 hours.
	if rep.Backfill.MachineHours != 2*23 {
		t.Errorf("backfill machine-hours %d, want 2 × 23 = 46", rep.Backfill.MachineHours)
	}
	if rep.Backfill.WorkerCPUS <= 0 {
		t.Errorf("worker CPU time during the backfill %v, want > 0", rep.Backfill.WorkerCPUS)
	}
	if rep.Backfill.EventsParked != 0 {
		t.Errorf("%d events parked: a handler failed", rep.Backfill.EventsParked)
	}
	if rep.HourCloseLatency.Samples != 2*2 {
		t.Errorf("hour-close samples %d, want 2 machines × 2 hours", rep.HourCloseLatency.Samples)
	}
	if rep.BurstHourCloseLatency.Samples != 20 {
		t.Errorf("burst latency over %d hours, want one per burst machine (20)", rep.BurstHourCloseLatency.Samples)
	}
	if rep.BurstMachines != 20 || rep.TrainLatency.Samples != 1 || rep.APILatency.Samples != 20 || rep.APINon200 != 0 {
		t.Errorf("burst %d machines, %d train samples, %d API samples with %d not 200; want 20, 1, 20, 0",
			rep.BurstMachines, rep.TrainLatency.Samples, rep.APILatency.Samples, rep.APINon200)
	}
	if rep.WorkerRSSSource == "" {
		t.Error("the report does not say whose RSS it measured")
	}
}

// TestBenchFlags: --quick picks the quick sizes, --machines/--days override
// them, and nonsense is refused with a sentence.
func TestBenchFlags(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	o, err := parseBenchFlags([]string{"--quick", "--machines", "3"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if q := defaultBenchOptions(true); !o.Quick || o.Machines != 3 || o.Days != q.Days {
		t.Errorf("--quick --machines 3 gave %+v", o)
	}
	if _, err := parseBenchFlags([]string{"--days", "-1"}, &stderr); err == nil {
		t.Error("--days -1 accepted")
	}
	if _, err := parseBenchFlags([]string{"extra"}, &stderr); err == nil {
		t.Error("a stray argument accepted")
	}
}
