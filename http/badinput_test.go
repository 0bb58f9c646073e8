package http

import (
	nethttp "net/http"
	"strings"
	"testing"

	"github.com/uptrace/bunrouter"
)

// testRoutes registers two routes that exist only in tests, to reach the
// body and enum helpers that no GET route of this package uses yet: a JSON
// echo (POST) and a horizon parameter like the forecast routes'.
func testRoutes(s *Server) {
	s.register(Route{Method: "POST", Path: "/api/v1/test/echo", Handler: func(w nethttp.ResponseWriter, req bunrouter.Request) error {
		var body struct {
			MachineID string `json:"machine_id"`
			Hours     int    `json:"hours"`
		}
		if err := decodeJSON(w, req.Request, &body); err != nil {
			return err
		}
		writeJSON(w, nethttp.StatusOK, body)
		return nil
	}})
	s.register(Route{Method: "GET", Path: "/api/v1/test/horizon", Handler: func(w nethttp.ResponseWriter, req bunrouter.Request) error {
		h, err := queryOf(req).enum("horizon", []string{"1h", "24h", "7d"}, "", true)
		if err != nil {
			return err
		}
		writeJSON(w, nethttp.StatusOK, map[string]string{"horizon": h})
		return nil
	}})
	s.register(Route{Method: "GET", Path: "/api/v1/test/panic", Handler: func(nethttp.ResponseWriter, bunrouter.Request) error {
		panic("secret internal state 0xdeadbeef")
	}})
}

// TestBadInput: every kind of malformed request is a 4xx JSON error whose
// message names the problem; none is a 500.
func TestBadInput(t *testing.T) {
	t.Parallel()
	f := setup(t)
	testRoutes(f.srv)
	const w = "&start=2026-01-05T00:00:00Z&end=2026-01-06T00:00:00Z"
	big := `{"machine_id": "` + strings.Repeat("x", MaxBodyBytes) + `"}`
	cases := []struct {
		name, method, path, ctype, body string
		status                          int
		code                            string
		mentions                        string // the message must contain this
	}{
		{"malformed machine_id", "GET", "/api/v1/kpi/sec?machine_id=not-a-uuid" + w, "", "", 400, CodeInvalid, "not a UUID"},
		{"missing machine_id", "GET", "/api/v1/kpi/all?start=2026-01-05&end=2026-01-06", "", "", 400, CodeInvalid, "machine_id is required"},
		{"malformed path id", "GET", "/api/v1/machines/123", "", "", 400, CodeInvalid, "not a UUID"},
		{"malformed factory id", "GET", "/api/v1/kpi/factory/xyz?start=2026-01-05&end=2026-01-06", "", "", 400, CodeInvalid, "not a UUID"},
		{"malformed factory filter", "GET", "/api/v1/machines?factory_id=plant-a", "", "", 400, CodeInvalid, "factory_id"},
		{"reversed window", "GET", "/api/v1/kpi/all?machine_id=" + m1ID + "&start=2026-01-06&end=2026-01-05", "", "", 400, CodeInvalid, "must be before end"},
		{"empty window", "GET", "/api/v1/kpi/sec?machine_id=" + m1ID + "&start=2026-01-05&end=2026-01-05", "", "", 400, CodeInvalid, "must be before end"},
		{"unparsable start", "GET", "/api/v1/kpi/all?machine_id=" + m1ID + "&start=yesterday&end=2026-01-05", "", "", 400, CodeInvalid, "not a time"},
		{"unparsable end", "GET", "/api/v1/kpi/peak-demand?machine_id=" + m1ID + "&start=2026-01-05&end=2026-13-45", "", "", 400, CodeInvalid, "end"},
		{"missing end", "GET", "/api/v1/kpi/carbon?machine_id=" + m1ID + "&start=2026-01-05", "", "", 400, CodeInvalid, "end is required"},
		{"window too long", "GET", "/api/v1/kpi/load-factor?machine_id=" + m1ID + "&start=2020-01-01&end=2026-01-01", "", "", 400, CodeInvalid, "400 days"},
		{"unknown machine", "GET", "/api/v1/kpi/energy-cost?machine_id=" + unknownID + w, "", "", 404, CodeNotFound, unknownID},
		{"unknown machine daily", "GET", "/api/v1/kpi/daily?machine_id=" + unknownID + w, "", "", 404, CodeNotFound, unknownID},
		{"unknown horizon", "GET", "/api/v1/test/horizon?horizon=3w", "", "", 400, CodeInvalid, "1h, 24h, 7d"},
		// The same checks on the routes of the feature files.
		{"unknown horizon (forecast)", "GET", "/api/v1/forecast/demand?machine_id=" + m1ID + "&horizon=3w", "", "", 400, CodeInvalid, "1h, 24h, 7d"},
		{"malformed machine_id (forecast)", "GET", "/api/v1/forecast/peak?machine_id=m1", "", "", 400, CodeInvalid, "not a UUID"},
		{"wrong content type (schedule)", "POST", "/api/v1/forecast/optimal-schedule", "text/csv", "a,b", 415, CodeUnsupportedMedia, "application/json"},
		{"oversized body (train)", "POST", "/api/v1/baseline/train", "application/json", big, 413, CodeTooLarge, "larger than"},
		{"malformed id (train request)", "GET", "/api/v1/baseline/train-requests/17x", "", "", 400, CodeInvalid, "not a UUID"},
		{"unknown machine type", "GET", "/api/v1/machines?type=robot", "", "", 400, CodeInvalid, "compressor"},
		{"bad boolean", "GET", "/api/v1/machines?active=maybe", "", "", 400, CodeInvalid, "true or false"},
		{"negative limit", "GET", "/api/v1/machines?limit=-5", "", "", 400, CodeInvalid, "from 1 to 1000"},
		{"zero limit", "GET", "/api/v1/machines?limit=0", "", "", 400, CodeInvalid, "from 1 to 1000"},
		{"huge limit", "GET", "/api/v1/machines?limit=99999999999999999999", "", "", 400, CodeInvalid, "from 1 to 1000"},
		{"negative offset", "GET", "/api/v1/machines?offset=-1", "", "", 400, CodeInvalid, "offset"},
		{"huge history limit", "GET", "/api/v1/machines/" + m1ID + "?limit=5000", "", "", 400, CodeInvalid, "limit"},
		{"wrong content type", "POST", "/api/v1/test/echo", "text/plain", `{"hours": 1}`, 415, CodeUnsupportedMedia, "application/json"},
		{"no content type", "POST", "/api/v1/test/echo", "", `{"hours": 1}`, 415, CodeUnsupportedMedia, "application/json"},
		{"oversized body", "POST", "/api/v1/test/echo", "application/json", big, 413, CodeTooLarge, "larger than"},
		{"malformed JSON", "POST", "/api/v1/test/echo", "application/json", `{"hours": `, 400, CodeInvalid, "not valid JSON"},
		{"wrong JSON type", "POST", "/api/v1/test/echo", "application/json", `{"hours": "two"}`, 400, CodeInvalid, "hours"},
		{"unknown field", "POST", "/api/v1/test/echo", "application/json", `{"hourz": 2}`, 400, CodeInvalid, "hourz"},
		{"empty body", "POST", "/api/v1/test/echo", "application/json", ``, 400, CodeInvalid, "empty"},
		{"two objects", "POST", "/api/v1/test/echo", "application/json", `{} {}`, 400, CodeInvalid, "exactly one"},
		{"non-numeric event id", "POST", "/api/v1/events/abc/retry", "", "", 400, CodeInvalid, "positive whole number"},
		{"negative event id", "POST", "/api/v1/events/-1/retry", "", "", 400, CodeInvalid, "positive whole number"},
		{"zero event id", "POST", "/api/v1/events/0/retry", "", "", 400, CodeInvalid, "positive whole number"},
		{"event id past int64", "POST", "/api/v1/events/9223372036854775808/retry", "", "", 400, CodeInvalid, "positive whole number"},
		{"huge parked limit", "GET", "/api/v1/events/parked?limit=1001", "", "", 400, CodeInvalid, "from 1 to 1000"},
		{"unknown route", "GET", "/api/v1/nothing-here", "", "", 404, CodeNotFound, "no route"},
		{"wrong method", "DELETE", "/api/v1/machines", "", "", 405, CodeMethodNotAllowed, "not allowed"},
	}
	for _, c := range cases {
		status, b := f.do(t, c.method, c.path, c.ctype, strings.NewReader(c.body), nil)
		msg := wantError(t, c.name, status, b, c.status, c.code)
		if !strings.Contains(msg, c.mentions) {
			t.Errorf("%s: message %q does not mention %q", c.name, msg, c.mentions)
		}
	}
	// The echo route works with a good body, so the cases above fail for
	// the reason they name.
	status, b := f.do(t, "POST", "/api/v1/test/echo", "application/json; charset=utf-8", strings.NewReader(`{"hours": 2}`), nil)
	if status != 200 || num(t, b, "hours") != 2 {
		t.Errorf("good body: %d %v", status, b)
	}
}
