package http

import (
	"encoding/json"
	nethttp "net/http"
)

// writeJSON writes v as the response body. Numbers are JSON numbers and
// times RFC 3339 (encoding/json's defaults for float64 and time.Time). A
// value JSON cannot hold (NaN, ±Inf) is a 500 with the generic message,
// never a half-written body.
func writeJSON(w nethttp.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = nethttp.StatusInternalServerError
		b, _ = json.Marshal(errorBody{Error: errorDetail{Code: CodeInternal, Message: "the response could not be encoded as JSON; this is a bug in the service"}})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
