package http

import (
	"bytes"
	"context"
	"io"
	nethttp "net/http"
	"net/url"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// TestOpenAPIValidAndTruthful: the document is valid OpenAPI 3.0, and real
// responses of the KPI, machine and health routes validate against the
// schemas it gives for them (so the docs describe what the API sends).
func TestOpenAPIValidAndTruthful(t *testing.T) {
	t.Parallel()
	f := setup(t)
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(f.srv.openapi)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the OpenAPI document is not valid: %v", err)
	}
	w := "start=" + window0.Format(time.RFC3339) + "&end=" + window0.Add(4*time.Hour).Format(time.RFC3339)
	paths := []string{
		"/health", "/api/v1/health",
		"/api/v1/kpi/sec?machine_id=" + m1ID + "&" + w,
		"/api/v1/kpi/peak-demand?machine_id=" + m1ID + "&" + w,
		"/api/v1/kpi/load-factor?machine_id=" + m2ID + "&" + w, // nulls where undefined
		"/api/v1/kpi/energy-cost?machine_id=" + m1ID + "&" + w,
		"/api/v1/kpi/carbon?machine_id=" + m1ID + "&" + w,
		"/api/v1/kpi/all?machine_id=" + m1ID + "&" + w,
		"/api/v1/kpi/all?machine_id=" + m2ID + "&" + w,
		"/api/v1/kpi/factory/" + plantID + "?" + w,
		"/api/v1/kpi/daily?machine_id=" + m1ID + "&start=2026-01-01&end=2026-02-01",
		"/api/v1/machines", "/api/v1/machines/" + m1ID,
		"/api/v1/kpi/sec?machine_id=bad&" + w, // the error schema
		"/api/v1/machines/" + unknownID,
	}
	validate := responseValidator(t, f)
	// Negative control: a numeric string where the document says number
	// must be caught, or the loop below proves nothing.
	jsonHeader := nethttp.Header{"Content-Type": {"application/json"}}
	tampered := []byte(`{"machine_id":"` + m1ID + `","machine_name":"x","machine_type":"compressor","start":"2026-01-05T00:00:00Z",` +
		`"end":"2026-01-05T04:00:00Z","value":0.25,"unit":"kWh/unit","sec_kwh_per_unit":0.25,"total_energy_kwh":"100",` +
		`"total_production_units":400,"time_period_hours":4}`)
	if err := validate(paths[2], 200, jsonHeader, tampered); err == nil {
		t.Fatal("a numeric string passed validation: the validator checks nothing")
	}
	checkSchemas(t, f, paths)
}

// responseValidator loads the server's OpenAPI document and returns a check
// of one response to GET path against the schema the document gives for it.
func responseValidator(t *testing.T, f *fixture) func(path string, status int, header nethttp.Header, body []byte) error {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(f.srv.openapi)
	if err != nil {
		t.Fatal(err)
	}
	doc.Servers = openapi3.Servers{{URL: f.ts.URL}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return func(path string, status int, header nethttp.Header, body []byte) error {
		u, _ := url.Parse(f.ts.URL + path)
		req := &nethttp.Request{Method: "GET", URL: u, Header: nethttp.Header{}}
		route, params, err := router.FindRoute(req)
		if err != nil {
			return err
		}
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		return openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
			RequestValidationInput: in, Status: status, Header: header, Body: io.NopCloser(bytes.NewReader(body))})
	}
}

// getBody sends GET path to the fixture's server and returns the response
// (its body read and closed) and the body.
func getBody(t *testing.T, f *fixture, path string) (*nethttp.Response, []byte) {
	t.Helper()
	resp, err := f.ts.Client().Get(f.ts.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, body
}

// checkSchemas validates the responses to GET paths against the server's
// OpenAPI document.
func checkSchemas(t *testing.T, f *fixture, paths []string) {
	t.Helper()
	validate := responseValidator(t, f)
	for _, p := range paths {
		resp, body := getBody(t, f, p)
		if err := validate(p, resp.StatusCode, resp.Header, body); err != nil {
			t.Errorf("%s: the %d response does not match the document: %v\n%s", p, resp.StatusCode, err, body)
		}
	}
}
