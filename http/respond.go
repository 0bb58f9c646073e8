package http

import (
	"encoding/json"
	nethttp "net/http"
)

// writeJSON writes v as the response body. Numbers are JSON numbers and
// times RFC 3339 (encoding/json's defaults for float64 and time.Time).
func writeJSON(w nethttp.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
