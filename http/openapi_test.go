package http

import (
	"encoding/json"
	"io"
	"maps"
	nethttp "net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestOpenAPIDescribesEveryRoute: the set of (method, path) the router
// serves equals the set the OpenAPI document describes. Served is checked
// on the router itself: a request to each registered route must not reach
// the not-found or method-not-allowed handler.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	t.Parallel()
	f := setup(t)
	registered := map[string]bool{}
	for _, rt := range f.srv.Routes() {
		registered[rt.Method+" "+rt.Path] = true
		// Probe the router with the path's parameters filled in.
		probe := regexp.MustCompile(`\{[^}]+\}`).ReplaceAllString(rt.Path, unknownID)
		status, b := f.do(t, rt.Method, probe, "", nil, nil)
		if status == 405 || (status == 404 && b != nil && strings.Contains(str(t, b, "error.message"), "no route")) {
			t.Errorf("%s %s is in the route table but the router does not serve it (%d)", rt.Method, rt.Path, status)
		}
	}
	resp, err := f.ts.Client().Get(f.ts.URL + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0") {
		t.Errorf("openapi %q, want 3.0.x", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for p, ops := range doc.Paths {
		for m := range ops {
			documented[strings.ToUpper(m)+" "+p] = true
		}
	}
	reg, docd := slices.Sorted(maps.Keys(registered)), slices.Sorted(maps.Keys(documented))
	if !slices.Equal(reg, docd) {
		t.Errorf("registered routes and documented routes differ:\nregistered %v\ndocumented %v", reg, docd)
	}
	for _, want := range []string{"GET /api/v1/kpi/all", "GET /api/v1/kpi/factory/{id}", "GET /api/v1/machines/{id}",
		"GET /health", "GET /api/v1/health", "GET /metrics", "GET /api/v1/docs", "GET /api/v1/openapi.json", "GET /api/v1/kpi/daily"} {
		if !documented[want] {
			t.Errorf("%s is not documented", want)
		}
	}
	// A response schema comes from the handler's type: the KPI fields appear.
	var full map[string]any
	resp2, err := f.ts.Client().Get(f.ts.URL + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	raw, _ := io.ReadAll(resp2.Body)
	if err := json.Unmarshal(raw, &full); err != nil {
		t.Fatal(err)
	}
	props := at(t, full, "paths./api/v1/kpi/sec.get.responses.200.content.application/json.schema.properties").(map[string]any)
	for _, k := range []string{"value", "unit", "machine_id", "start", "end", "sec_kwh_per_unit", "total_energy_kwh"} {
		if _, ok := props[k]; !ok {
			t.Errorf("kpi/sec schema lacks %q", k)
		}
	}
}

// TestDocsPage: the page lists every documented path, uses only relative
// links, and loads nothing from elsewhere.
func TestDocsPage(t *testing.T) {
	t.Parallel()
	f := setup(t)
	resp, err := f.ts.Client().Get(f.ts.URL + "/api/v1/docs")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("docs: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, rt := range f.srv.Routes() {
		if !strings.Contains(string(page), rt.Path) {
			t.Errorf("docs page does not list %s", rt.Path)
		}
	}
	links := docLinks(string(page))
	if len(links) < 3 {
		t.Fatalf("docs page has %d links: %v", len(links), links)
	}
	for _, l := range links {
		if strings.HasPrefix(l, "/") || strings.Contains(l, "//") {
			t.Errorf("link %q is not relative: it would break behind the /api/analytics/ prefix", l)
		}
		if strings.HasPrefix(l, "#") {
			continue
		}
		r, err := f.ts.Client().Get(f.ts.URL + "/api/v1/" + l)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != nethttp.StatusOK {
			t.Errorf("link %q → %d", l, r.StatusCode)
		}
	}
	if strings.Contains(string(page), "<script") {
		t.Error("docs page has a script; it is meant to work without any")
	}
}

var linkPattern = regexp.MustCompile(`(?:href|src)="([^"]*)"`)

func docLinks(page string) []string {
	var out []string
	for _, m := range linkPattern.FindAllStringSubmatch(page, -1) {
		out = append(out, m[1])
	}
	return out
}
