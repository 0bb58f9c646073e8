package http

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	nethttp "net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/enms/enms-analytics/internal/testdb"
	"github.com/enms/enms-analytics/store"
)

// benchPlant writes 20 machines × 90 days of hourly rollups (43,200 energy
// and 43,200 production rows) ending at benchEnd.
const (
	benchMachines = 20
	benchDays     = 90
)

var benchEnd = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func benchPlant(b *testing.B) (*Server, []string) {
	b.Helper()
	ctx := context.Background()
	pcfg, err := pgxpool.ParseConfig(testdb.URL(b))
	if err != nil {
		b.Fatal(err)
	}
	// ENMS_BENCH_PLAN_CACHE_MODE (auto, force_generic_plan, force_custom_plan)
	// measures the effect of PostgreSQL's plan cache on the KPI functions.
	if mode := os.Getenv("ENMS_BENCH_PLAN_CACHE_MODE"); mode != "" {
		pcfg.ConnConfig.RuntimeParams["plan_cache_mode"] = mode
	}
	// ENMS_BENCH_POOL_MAX_CONNS sizes the pool (default: pgxpool's, max(4, CPUs)).
	if n, err := strconv.Atoi(os.Getenv("ENMS_BENCH_POOL_MAX_CONNS")); err == nil && n > 0 {
		pcfg.MaxConns = int32(n)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	if _, err := pool.Exec(ctx, `INSERT INTO factories (id, name) VALUES ($1, 'Bench Plant')`, plantID); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO energy_tariffs (factory_id, name, rate_per_kwh, currency, is_time_of_use, start_hour, end_hour, applicable_days)
		VALUES ($1, 'peak', 0.25, 'EUR', true, 8, 20, '{1,2,3,4,5}'), ($1, 'base', 0.12, 'EUR', false, NULL, NULL, NULL)`, plantID); err != nil {
		b.Fatal(err)
	}
	var ids []string
	for i := range benchMachines {
		id := fmt.Sprintf("bbbbbbbb-0000-4000-8000-%012d", i)
		ids = append(ids, id)
		if _, err := pool.Exec(ctx, `INSERT INTO machines (id, factory_id, name, type) VALUES ($1, $2, $3, 'compressor')`,
			id, plantID, fmt.Sprintf("Machine %02d", i)); err != nil {
			b.Fatal(err)
		}
	}
	start := benchEnd.AddDate(0, 0, -benchDays)
	if _, err := pool.Exec(ctx, `
		INSERT INTO energy_readings_1hour (bucket, machine_id, reading_count, sum_power_kw, min_power_kw, max_power_kw,
		                                   total_energy_kwh, peak_demand_kw, peak_demand_at)
		SELECT h, m.id, 60, 60 * p, p * 0.8, p * 1.3, p, p * 1.2, h + interval '15 minutes'
		FROM machines m, generate_series($1::timestamptz, $2::timestamptz - interval '1 hour', interval '1 hour') h,
		     LATERAL (SELECT 20 + 10 * sin(extract(epoch FROM h) / 3600 / 24 * 2 * pi()) + random() * 5 AS p) x
		WHERE m.factory_id = $3`, start, benchEnd, plantID); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `
		INSERT INTO production_data_1hour (bucket, machine_id, reading_count, total_production_count, running_seconds)
		SELECT h, m.id, 60, 100 + (random() * 20)::int, 3600
		FROM machines m, generate_series($1::timestamptz, $2::timestamptz - interval '1 hour', interval '1 hour') h
		WHERE m.factory_id = $3`, start, benchEnd, plantID); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}
	return New(Config{Store: store.New(pool), Logger: slog.New(slog.DiscardHandler)}), ids
}

// BenchmarkKPIAllConcurrent: 64 clients on 64 connections call /kpi/all for
// random machines and hour-aligned windows of the given length inside the
// 90 days. Reports p50/p99 latency (ms) and the number of non-200 answers.
//
//	go test ./http -run '^$' -bench KPIAllConcurrent -benchtime 2000x
func BenchmarkKPIAllConcurrent(b *testing.B) {
	srv, ids := benchPlant(b)
	ts := httptest.NewServer(srv)
	defer ts.Close()
	// The data is there: a day of a machine drawing 20 ± 10 kW (+0–5) holds
	// well over 100 kWh.
	resp, err := nethttp.Get(ts.URL + kpiPath("all", ids[0], benchEnd.AddDate(0, 0, -1), benchEnd))
	if err != nil {
		b.Fatal(err)
	}
	var k allKPIsResponse
	err = json.NewDecoder(resp.Body).Decode(&k)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || k.Totals.TotalEnergyKWh < 100 {
		b.Fatalf("/kpi/all over the last day: %d, %v kWh, %v", resp.StatusCode, k.Totals.TotalEnergyKWh, err)
	}
	for _, span := range benchSpans() {
		b.Run(fmt.Sprintf("window=%dd", span/(24*time.Hour)), func(b *testing.B) {
			loadRun(b, func(rng *rand.Rand) string {
				maxStart := benchDays*24 - int(span/time.Hour)
				start := benchEnd.AddDate(0, 0, -benchDays).Add(time.Duration(rng.IntN(maxStart+1)) * time.Hour)
				return ts.URL + kpiPath("all", ids[rng.IntN(len(ids))], start, start.Add(span))
			})
		})
	}
}

// BenchmarkAnomalyRecentConcurrent: 64 clients call /anomaly/recent over
// 20 machines × 90 days holding one episode per machine every 36 hours
// (1,200 episodes): 7-day windows, half for one machine, half for all.
//
//	go test ./http -run '^$' -bench AnomalyRecentConcurrent -benchtime 2000x
func BenchmarkAnomalyRecentConcurrent(b *testing.B) {
	srv, ids := benchPlant(b)
	if _, err := srv.cfg.Store.Pool().Exec(context.Background(), `
		INSERT INTO anomalies (machine_id, detected_at, anomaly_type, severity, metric_name, metric_value,
		                       expected_value, deviation_percent, deviation_std_dev, detection_method,
		                       confidence_score, last_hour, hour_count)
		SELECT m.id, h, 'energy_spike', CASE WHEN random() < 0.3 THEN 'critical' ELSE 'warning' END::alert_level,
		       'total_energy_kwh', 40, 25, 60, 3.1, 'rolling_regression', 0.97, h + interval '2 hours', 3
		FROM machines m, generate_series($1::timestamptz, $2::timestamptz - interval '3 hours', interval '36 hours') h`,
		benchEnd.AddDate(0, 0, -benchDays), benchEnd); err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	// The data is there: a week holds 7·24/36 ≈ 4.7 episodes per machine.
	resp, err := nethttp.Get(ts.URL + "/api/v1/anomaly/recent?start=" + benchEnd.AddDate(0, 0, -7).Format(time.RFC3339) +
		"&end=" + benchEnd.Format(time.RFC3339))
	if err != nil {
		b.Fatal(err)
	}
	var page struct{ Count int }
	err = json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || page.Count < 4*benchMachines {
		b.Fatalf("/anomaly/recent over the last week: %d, %d episodes, %v", resp.StatusCode, page.Count, err)
	}
	loadRun(b, func(rng *rand.Rand) string {
		start := benchEnd.AddDate(0, 0, -benchDays).Add(time.Duration(rng.IntN((benchDays-7)*24+1)) * time.Hour)
		q := "start=" + start.Format(time.RFC3339) + "&end=" + start.AddDate(0, 0, 7).Format(time.RFC3339)
		if rng.IntN(2) == 0 {
			q += "&machine_id=" + ids[rng.IntN(len(ids))]
		}
		return ts.URL + "/api/v1/anomaly/recent?" + q
	})
}

// loadRun sends b.N GET requests to the URLs next returns from 64 clients
// (ENMS_BENCH_CLIENTS overrides) on as many connections, and reports p50
// and p99 latency in ms and the count of answers that were not 200
// (after one untimed warm-up request per client).
func loadRun(b *testing.B, next func(*rand.Rand) string) {
	clients := 64
	if c := benchClients(); c > 0 {
		clients = c
	}
	transport := &nethttp.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer transport.CloseIdleConnections()
	client := &nethttp.Client{Transport: transport, Timeout: 30 * time.Second}
	latencies := make([]time.Duration, b.N)
	var issued, errs atomic.Int64
	var wg sync.WaitGroup
	// Each client first sends one untimed request, all at once, so that
	// neither the 64 TCP connections nor the database connections they
	// make the pool open are in the figures: with 2,000 samples those 64
	// cold requests would be 3 % of them, above the p99.
	var warm sync.WaitGroup
	rngs := make([]*rand.Rand, clients)
	for w := range clients {
		rngs[w] = rand.New(rand.NewPCG(uint64(w), 7))
		warm.Add(1)
		go func() {
			defer warm.Done()
			resp, err := client.Get(next(rngs[w]))
			if err != nil {
				b.Errorf("warm-up request: %v", err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
	}
	warm.Wait()
	b.ResetTimer()
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rngs[w]
			for {
				i := issued.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				url := next(rng)
				t0 := time.Now()
				resp, err := client.Get(url)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				latencies[i] = time.Since(t0)
				if err != nil || resp.StatusCode != 200 {
					errs.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
	b.ReportMetric(float64(errs.Load()), "errors")
	if n := errs.Load(); n > 0 {
		// their latencies are in the percentiles above, so the figures are not the route's
		b.Errorf("%d of %d requests failed or were not 200", n, b.N)
	}
}

// benchClients and benchSpans let a run narrow the benchmark:
// ENMS_BENCH_CLIENTS=1 measures the service time without queueing,
// ENMS_BENCH_DAYS=1,7 picks the window lengths (default 1, 7 and 30 days).
func benchClients() int {
	n, _ := strconv.Atoi(os.Getenv("ENMS_BENCH_CLIENTS"))
	return n
}

func benchSpans() []time.Duration {
	days := os.Getenv("ENMS_BENCH_DAYS")
	if days == "" {
		days = "1,7,30"
	}
	var out []time.Duration
	for _, d := range strings.Split(days, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(d)); err == nil && n > 0 && n <= benchDays {
			out = append(out, time.Duration(n)*24*time.Hour)
		}
	}
	return out
}
