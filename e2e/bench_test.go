package e2e

import (
	"testing"
	"time"
)

// BenchmarkPageReady opens each UI page in a warm headless Chromium for a
// machine with 90 days of hourly data (2,160 hours), an active baseline
// trained on all of it, an open anomaly episode and a 24-hour forecast, and
// reports the page's own time to body[data-ready] (performance.now() after
// navigation start) as ms/ready. The target is under 1,000 ms.
//
//	go test ./e2e/ -run '^$' -bench PageReady -benchtime 5x
func BenchmarkPageReady(b *testing.B) {
	bd := setup(b)
	m := bd.plant(b, "Plant B", map[string]string{"Compressor 1": "compressor", "Pump 2": "pump"}).machines["Compressor 1"]
	end := time.Now().UTC().Truncate(time.Hour)
	bd.insertHours(b, m, end, 90*24, 1)
	if row := bd.train(b, m, []string{"production_count"}, end.Add(-90*24*time.Hour), end); row.Status != "done" {
		b.Fatalf("training on 90 days: %s %v", row.Status, row.Error)
	}
	bd.anomaly(b, m, end.Add(-time.Hour), 3, "critical")
	bd.forecast(b, m, end)
	pg := newBrowser(b)
	pg.open(b, bd.url+"/api/v1/ui/?machine_id="+m) // warm the browser
	for _, path := range []string{"", "baseline", "anomaly", "forecast", "kpi"} {
		name := path
		if name == "" {
			name = "overview"
		}
		b.Run(name, func(b *testing.B) {
			var total float64
			for b.Loop() {
				total += pg.open(b, bd.url+"/api/v1/ui/"+path+"?machine_id="+m)
			}
			b.ReportMetric(total/float64(b.N), "ms/ready")
		})
	}
}
