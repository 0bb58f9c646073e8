package e2e

import "testing"

// BenchmarkPageReady opens each UI page in a warm headless Chromium for a
// machine with 90 days of hourly data (2,160 hours), an active baseline
// trained on all of it, an open anomaly episode and a 24-hour forecast, and
// reports the page's own time to body[data-ready] (performance.now() after
// navigation start) as ms/ready. The target is under 1,000 ms.
//
//	go test ./e2e/ -run '^$' -bench PageReady -benchtime 5x
func BenchmarkPageReady(b *testing.B) {
	bd := setup(b)
	m, _ := bd.pagesMachine(b, "Plant B")
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
