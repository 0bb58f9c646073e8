package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	apihttp "github.com/enms/enms-analytics/http"
)

// pageCheck is what a loaded page must show: selector → how many nodes.
type pageCheck struct {
	path   string
	counts map[string]int
	texts  map[string]string // selector → text it must contain
}

// TestPagesLoad opens every page, directly and behind nginx's
// /api/analytics/ prefix, for a machine with 90 days of hourly data, an
// active baseline, an open anomaly episode and a forecast: no console
// error, warning or exception, no failed load, no request leaves the
// server (or the prefix), and each page draws its data. The time to
// body[data-ready] is logged per page (the 1 s target is reported, not
// asserted).
func TestPagesLoad(t *testing.T) {
	t.Parallel()
	b := setup(t)
	m, anomalyID := b.pagesMachine(t, "Plant A")

	checks := []pageCheck{
		{path: "", counts: map[string]int{"#machines-table tbody tr": 2, "#active-cards .card": 3},
			texts: map[string]string{"#peak": "90 kW", "[data-kpi=critical] .v": "1"}},
		{path: "baseline", counts: map[string]int{"#chart-fit svg path.points": 1, "#chart-fit svg line.diagonal": 1, "#chart-resid svg path.series": 1,
			"#chart-contrib svg rect.bar": 2, "#rules td.fail": 0, "#coefs tr[data-term=production_count]": 1,
			"#drivers input[type=checkbox]": 11},
			texts: map[string]string{"[data-kpi=valid] .v": "yes"}},
		{path: "anomaly", counts: map[string]int{"#anomalies tr[data-id='" + anomalyID + "']": 1,
			"#chart-timeline svg rect.shade": 1, "#chart-timeline svg path.series": 2},
			texts: map[string]string{"[data-kpi=critical] .v": "1"}},
		{path: "forecast", counts: map[string]int{"#chart-demand svg polygon.band": 2},
			texts: map[string]string{"[data-kpi=peak_kw] .v": "90"}},
		{path: "kpi", counts: map[string]int{"#machine-cards .card": 10, "#factory-cards .card": 5, "#factory-machines tbody tr[data-id]": 2},
			texts: map[string]string{"#factory-title": "Plant A", "[data-kpi=machines] .v": "2 / 2"}},
	}
	pg := newBrowser(t)
	// One untimed load first: a user's browser is already running and
	// connected; the first navigation of a fresh one pays for its start.
	pg.open(t, b.url+"/api/v1/ui/")
	for _, base := range []string{"/api/v1/ui/", "/api/analytics/ui/"} {
		for _, c := range checks {
			url := b.url + base + c.path + "?machine_id=" + m
			pg.reset()
			ms := pg.open(t, url)
			t.Logf("ready in %.0f ms: %s", ms, base+c.path)
			if ms > 1000 { // say where the time went
				t.Log(get(t, pg, "timings", chromedp.Evaluate[string](`performance.getEntriesByType('resource').map(e => e.name.replace(/^.*\/api\//, '') + ' at ' + Math.round(e.startTime) + ' ms took ' + Math.round(e.duration) + ' ms').join('\n')`)))
			}
			problems, requests := pg.logged()
			for _, p := range problems {
				t.Errorf("%s: %s", url, p)
			}
			for _, r := range requests {
				if !strings.HasPrefix(r, b.url+strings.TrimSuffix(base, "ui/")) && !strings.HasPrefix(r, "data:") && !strings.HasPrefix(r, "blob:") {
					t.Errorf("%s requested %s: outside the page's own prefix", url, r)
				}
			}
			if n := pg.count(t, "#error:not([hidden])"); n != 0 {
				t.Errorf("%s shows an error: %s", url, pg.text(t, "#error"))
			}
			for sel, want := range c.counts {
				if got := pg.count(t, sel); got != want {
					t.Errorf("%s: %d × %s, want %d", url, got, sel, want)
				}
			}
			for sel, want := range c.texts {
				if got := pg.text(t, sel); !strings.Contains(got, want) {
					t.Errorf("%s: %s reads %q, want it to contain %q", url, sel, got, want)
				}
			}
			if base == "/api/v1/ui/" {
				name := c.path
				if name == "" {
					name = "overview"
				}
				pg.screenshot(t, "page-"+name)
			}
		}
	}

	// The optimal schedule form posts what the API accepts: a 2-hour 50 kW
	// load in the forecast's 24 hours gets windows priced at the default
	// tariff.
	pg.open(t, b.url+"/api/v1/ui/forecast?machine_id="+m)
	pg.run(t, "schedule", 20*time.Second,
		chromedp.Click(chromedp.CSS("#schedule-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("#windows tbody tr")))
	if n := pg.count(t, "#error:not([hidden])"); n != 0 {
		t.Errorf("schedule: %s", pg.text(t, "#error"))
	}
	if n := pg.count(t, "#windows tbody tr"); n < 2 {
		t.Errorf("schedule: %d rows, want the windows and the earliest-start row", n)
	}
	pg.screenshot(t, "forecast-schedule")

	// Controls that reload part of a page: the 7-day horizon (none issued
	// here) and the anomaly filter for every machine.
	pg.reset()
	pg.run(t, "horizon 7d", 20*time.Second,
		chromedp.Evaluate[chromedp.Void](`(() => { const s = document.querySelector('#horizon'); s.value = '7d'; s.dispatchEvent(new Event('change')); })()`),
		chromedp.WaitVisible(chromedp.CSS("#fc-info")))
	pg.run(t, "no 7d forecast", 20*time.Second, chromedp.Poll[chromedp.Void](`document.querySelector('#chart-demand').textContent === 'No forecast yet.'`))
	pg.open(t, b.url+"/api/v1/ui/anomaly?machine_id="+m)
	pg.run(t, "every machine", 20*time.Second,
		chromedp.Click(chromedp.CSS("#f-all")),
		chromedp.Click(chromedp.CSS("#filters button[type=submit]")),
		chromedp.Poll[chromedp.Void](`document.querySelector('#chart-timeline').textContent.startsWith('Pick one machine')`),
		// the unresolved count is now the plant's (1: the one episode)
		chromedp.Poll[chromedp.Void](`document.querySelector('[data-kpi=total] .u')?.textContent === 'every machine'`))
	if got := pg.text(t, "[data-kpi=total] .v"); got != "1" {
		t.Errorf("anomaly filter every machine: %q unresolved, want 1", got)
	}
	problems, _ := pg.logged()
	for _, p := range problems {
		t.Errorf("after changing controls: %s", p)
	}

	// The picker's type filter: only the pump remains.
	pg.open(t, b.url+"/api/v1/ui/?machine_id="+m)
	pg.run(t, "filter by type", 10*time.Second,
		chromedp.Evaluate[chromedp.Void](`(() => { const s = document.querySelector('#pick-type'); s.value = 'pump'; s.dispatchEvent(new Event('change')); })()`))
	if got := pg.count(t, "#pick-machine option"); got != 1 {
		t.Errorf("type filter pump: %d machines offered, want 1", got)
	}
	if got := get(t, pg, "picked", chromedp.Evaluate[string](`document.querySelector('#pick-machine option').textContent`)); !strings.HasPrefix(got, "Pump 2") {
		t.Errorf("type filter pump offers %q", got)
	}
}

// TestTrainBaselineThroughUI trains through the workbench (POST
// baseline/train?async=true, polled) and checks that what the page shows is
// what the worker stored, that the request it queued has the drivers and
// window chosen, and that both exports download.
func TestTrainBaselineThroughUI(t *testing.T) {
	t.Parallel()
	b := setup(t)
	m := b.plant(t, "Plant T", map[string]string{"Press 7": "injection_molding"}).machines["Press 7"]
	end := time.Now().UTC().Truncate(time.Hour)
	// 1,200 hours (50 days) lie inside the 90-day preset; the default
	// minimum is 1,000 samples.
	b.insertHours(t, m, end, 1200, 2)

	pg := newBrowser(t)
	pg.open(t, b.url+"/api/v1/ui/baseline?machine_id="+m)
	if got := pg.text(t, "#model-select"); got != "no baseline yet" {
		t.Fatalf("model select before training: %q", got)
	}
	dir := t.TempDir()
	downloads := make(chan string, 4)
	err := chromedp.ListenBrowser(pg.ctx, func(ev any) {
		if e, ok := ev.(*browser.EventDownloadProgress); ok && e.State == browser.DownloadProgressStateCompleted {
			downloads <- e.GUID
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.CallBrowser(pg.ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: new(true)}); err != nil {
		t.Fatalf("allow downloads: %v", err)
	}

	pg.run(t, "train", 90*time.Second,
		chromedp.Click(chromedp.CSS("#train-btn")),
		chromedp.WaitReady(chromedp.CSS("#train-status[data-status]")))
	status := get(t, pg, "training status", chromedp.AttributeValue(chromedp.CSS("#train-status"), "data-status")).Value
	if status != "done" {
		t.Fatalf("training through the UI: %s (%s)", status, pg.text(t, "#train-status"))
	}
	pg.run(t, "results", 20*time.Second, chromedp.WaitVisible(chromedp.CSS("#chart-fit svg")))
	problems, _ := pg.logged()
	for _, p := range problems {
		t.Errorf("baseline page: %s", p)
	}
	pg.screenshot(t, "baseline-trained")

	// The request the UI queued carries the chosen drivers and window.
	ctx := context.Background()
	var drivers []string
	var reqBy string
	var window time.Duration
	var baselineID string
	err = b.pool.QueryRow(ctx, `SELECT drivers, requested_by, training_end - training_start, baseline_id::text
		FROM baseline_train_requests WHERE machine_id = $1`, m).Scan(&drivers, &reqBy, &window, &baselineID)
	if err != nil {
		t.Fatal(err)
	}
	if len(drivers) != 1 || drivers[0] != "production_count" || reqBy != "ui" || window != 90*24*time.Hour {
		t.Errorf("queued request: drivers %v, requested_by %q, window %v; want [production_count], ui, 2160h (the 90-day preset)", drivers, reqBy, window)
	}

	var raw []byte
	var active bool
	if err := b.pool.QueryRow(ctx, `SELECT metadata->'fit', is_active FROM energy_baselines WHERE id = $1`, baselineID).Scan(&raw, &active); err != nil {
		t.Fatal(err)
	}
	var fit struct {
		N            int     `json:"n"`
		RSquared     float64 `json:"r_squared"`
		AdjRSquared  float64 `json:"adj_r_squared"`
		CVRMSE       float64 `json:"cv_rmse"`
		NMBE         float64 `json:"nmbe"`
		Coefficients map[string]struct {
			Estimate float64 `json:"estimate"`
			StdError float64 `json:"std_error"`
			PValue   float64 `json:"p_value"`
		} `json:"coefficients"`
		Validity struct {
			Rules []struct {
				Name   string `json:"name"`
				Passed bool   `json:"passed"`
			} `json:"rules"`
		} `json:"validity"`
	}
	if err := json.Unmarshal(raw, &fit); err != nil {
		t.Fatal(err)
	}
	if !active || fit.N != 1200 {
		t.Errorf("stored baseline: active %v, n %d; want active, n 1200 (every inserted hour)", active, fit.N)
	}
	// The page rounds R² to 4 decimals, CV(RMSE) and NMBE (percentages) to
	// 2 and 3, coefficients to 4: the shown value is within half a unit of
	// the last digit of the stored one.
	num := func(sel string) float64 {
		s := strings.NewReplacer(",", "", "%", "", " ", "").Replace(pg.text(t, sel))
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("%s reads %q: not a number", sel, s)
		}
		return v
	}
	near := func(what string, got, want, tol float64) {
		if math.Abs(got-want) > tol {
			t.Errorf("%s: page shows %g, stored %g", what, got, want)
		}
	}
	near("R²", num("[data-kpi=r_squared] .v"), fit.RSquared, 5e-5)
	near("adjusted R²", num("[data-kpi=adj_r_squared] .v"), fit.AdjRSquared, 5e-5)
	near("CV(RMSE)", num("[data-kpi=cv_rmse] .v"), fit.CVRMSE, 5e-3)
	near("NMBE", num("[data-kpi=nmbe] .v"), fit.NMBE, 5e-4)
	c := fit.Coefficients["production_count"]
	near("production_count estimate", num("#coefs tr[data-term=production_count] td:nth-child(2)"), c.Estimate, 5e-5)
	near("production_count std error", num("#coefs tr[data-term=production_count] td:nth-child(3)"), c.StdError, 5e-5)
	// The data's slope is 0.8 kWh/unit; its standard error is about
	// σ/(√n·sd(units)) = 2/(√1200·29.2) ≈ 0.002, so 0.02 is 10 standard errors.
	near("production_count against the data's slope", c.Estimate, 0.8, 0.02)
	if got := pg.count(t, "#rules tbody tr"); got != len(fit.Validity.Rules) || got == 0 {
		t.Errorf("%d rule rows, stored %d rules", got, len(fit.Validity.Rules))
	}
	for _, r := range fit.Validity.Rules {
		want := map[bool]string{true: "pass", false: "fail"}[r.Passed]
		if got := pg.text(t, fmt.Sprintf("#rules tr[data-rule=%q] td:nth-child(4)", r.Name)); got != want {
			t.Errorf("rule %s: page says %q, stored %s", r.Name, got, want)
		}
	}

	// Exports: the CSV has one line per hour of the model's window, the JSON
	// is the stored model.
	download := func(button string) []byte {
		pg.run(t, "click "+button, 10*time.Second, chromedp.Click(chromedp.CSS(button)))
		select {
		case guid := <-downloads:
			data, err := os.ReadFile(filepath.Join(dir, guid))
			if err != nil {
				t.Fatal(err)
			}
			return data
		case <-time.After(15 * time.Second):
			t.Fatalf("%s: no download after 15 s", button)
		}
		return nil
	}
	csv := strings.Split(strings.TrimSpace(string(download("#export-csv"))), "\n")
	if csv[0] != "hour,actual_kwh,predicted_kwh,deviation_kwh,std_error_kwh,z,severity" || len(csv) != 1+fit.N {
		t.Errorf("CSV: header %q and %d rows, want %d rows (one per training hour)", csv[0], len(csv)-1, fit.N)
	}
	var model struct {
		ID       string `json:"id"`
		Metadata struct {
			Fit struct {
				N int `json:"n"`
			} `json:"fit"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(download("#export-json"), &model); err != nil {
		t.Fatalf("model JSON: %v", err)
	}
	if model.ID != baselineID || model.Metadata.Fit.N != fit.N {
		t.Errorf("model JSON: id %s n %d, want %s n %d", model.ID, model.Metadata.Fit.N, baselineID, fit.N)
	}
}

// TestResolveAnomalyThroughUI resolves an episode with a note in the
// anomaly viewer and finds it resolved, with that note, in the database.
// The API requires a token for changes: the one typed into the page's
// token field is sent.
func TestResolveAnomalyThroughUI(t *testing.T) {
	t.Parallel()
	const token = "e2e-token-7f3a"
	b := setup(t, func(c *apihttp.Config) { c.APIToken = token })
	m := b.plant(t, "Plant R", map[string]string{"Chiller 3": "hvac"}).machines["Chiller 3"]
	last := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	id := b.anomaly(t, m, last, 4, "warning")
	other := b.anomaly(t, m, last.Add(-48*time.Hour), 1, "critical")

	pg := newBrowser(t)
	pg.open(t, b.url+"/api/v1/ui/anomaly?machine_id="+m)
	row := fmt.Sprintf("#anomalies tr[data-id='%s']", id)
	const note = "Condenser fan belt replaced; load back to normal."
	pg.run(t, "resolve", 20*time.Second,
		chromedp.Click(chromedp.CSS(".token summary")),
		chromedp.SendKeys(chromedp.CSS("#api-token"), token),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#api-token').dispatchEvent(new Event('change'))`),
		chromedp.Click(chromedp.CSS(row+" button.resolve")),
		chromedp.WaitVisible(chromedp.CSS("#resolve-dialog[open] #resolve-note")),
		chromedp.SendKeys(chromedp.CSS("#resolve-note"), note),
		chromedp.Click(chromedp.CSS("#resolve-ok")),
		chromedp.WaitReady(chromedp.CSS(fmt.Sprintf("#anomalies[data-resolved='%s']", id))))
	problems, _ := pg.logged()
	for _, p := range problems {
		t.Errorf("anomaly page: %s", p)
	}
	if n := pg.count(t, row); n != 0 {
		t.Errorf("the resolved episode is still listed under “unresolved only”")
	}
	if got := pg.text(t, "[data-kpi=total] .v"); got != "1" {
		t.Errorf("unresolved count after resolving one of two: %q, want 1", got)
	}
	pg.screenshot(t, "anomaly-resolved")

	var resolved bool
	var notes *string
	var at *time.Time
	if err := b.pool.QueryRow(context.Background(), `SELECT is_resolved, resolution_notes, resolved_at FROM anomalies WHERE id = $1`, id).
		Scan(&resolved, &notes, &at); err != nil {
		t.Fatal(err)
	}
	if !resolved || notes == nil || *notes != note || at == nil {
		t.Errorf("in the database: resolved %v, notes %v, resolved_at %v; want true, %q, set", resolved, notes, at, note)
	}
	if err := b.pool.QueryRow(context.Background(), `SELECT is_resolved FROM anomalies WHERE id = $1`, other).Scan(&resolved); err != nil || resolved {
		t.Errorf("the other episode: resolved %v (%v); want still open", resolved, err)
	}
}
