package http

import (
	"encoding/json"
	"math"
	"net/http/httptest"
	"testing"
)

// TestWriteJSONNaN: a value JSON cannot hold gives a whole 500 error body,
// not a 200 with half a document.
func TestWriteJSONNaN(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	writeJSON(rec, 200, map[string]float64{"value": math.NaN()})
	var body errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("body is not JSON: %v: %q", err, rec.Body.String())
	}
	if rec.Code != 500 || body.Error.Code != CodeInternal {
		t.Errorf("NaN: %d %+v", rec.Code, body)
	}
	rec = httptest.NewRecorder()
	writeJSON(rec, 201, map[string]float64{"value": 0})
	if rec.Code != 201 || rec.Body.String() != "{\"value\":0}\n" {
		t.Errorf("zero: %d %q, want 201 {\"value\":0}", rec.Code, rec.Body.String())
	}
}
