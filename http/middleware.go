package http

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"log/slog"
	nethttp "net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

type ctxKey int

const infoKey ctxKey = 0

// requestInfo travels in the request context from the outer middleware to
// the route wrapper and back: the id, and the route pattern once matched.
type requestInfo struct {
	id    string
	route string
}

// RequestID returns the id of the request being served (X-Request-ID), or
// "" outside a request.
func RequestID(ctx context.Context) string {
	if info, ok := ctx.Value(infoKey).(*requestInfo); ok {
		return info.id
	}
	return ""
}

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// statusRecorder remembers the status and size a handler wrote.
type statusRecorder struct {
	nethttp.ResponseWriter
	status int
	bytes  int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = nethttp.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += n
	return n, err
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(nethttp.Flusher); ok {
		f.Flush()
	}
}

func (r *statusRecorder) Unwrap() nethttp.ResponseWriter { return r.ResponseWriter }

// outer is the middleware around the whole router: request id, CORS,
// panic recovery, access log and request metrics.
func (s *Server) outer(next nethttp.Handler) nethttp.Handler {
	return nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-ID")
		if !validRequestID.MatchString(id) {
			id = newRequestID()
		}
		info := &requestInfo{id: id}
		r = r.WithContext(context.WithValue(r.Context(), infoKey, info))
		w.Header().Set("X-Request-ID", id)
		rec := &statusRecorder{ResponseWriter: w}

		if s.cors(rec, r) {
			s.finish(rec, r, info, start)
			return
		}
		func() {
			defer func() {
				if v := recover(); v != nil {
					if v == nethttp.ErrAbortHandler {
						panic(v)
					}
					s.cfg.Logger.ErrorContext(r.Context(), "handler panicked",
						"request_id", id, "method", r.Method, "path", r.URL.Path, "panic", v)
					if rec.status == 0 {
						writeError(rec, r, &Error{Code: CodeInternal, Message: "an internal error occurred; it has been logged"})
					}
				}
			}()
			next.ServeHTTP(rec, r)
		}()
		s.finish(rec, r, info, start)
	})
}

func (s *Server) finish(rec *statusRecorder, r *nethttp.Request, info *requestInfo, start time.Time) {
	if rec.status == 0 {
		rec.status = nethttp.StatusOK
	}
	elapsed := time.Since(start)
	route := info.route
	if route == "" {
		route = "unmatched"
	}
	s.metrics.requests.WithLabelValues(r.Method, route, strconv.Itoa(rec.status)).Inc()
	s.metrics.duration.WithLabelValues(r.Method, route).Observe(elapsed.Seconds())
	level := slog.LevelInfo
	if rec.status >= 500 {
		level = slog.LevelError
	}
	s.cfg.Logger.Log(r.Context(), level, "http request",
		"request_id", info.id, "method", r.Method, "path", r.URL.Path, "route", route,
		"query", r.URL.RawQuery, "status", rec.status, "bytes", rec.bytes,
		"duration_ms", float64(elapsed.Microseconds())/1000, "remote_addr", r.RemoteAddr,
		"forwarded_for", r.Header.Get("X-Forwarded-For"),
		"user_agent", r.UserAgent())
}

// cors sets the CORS headers for an allowed origin and answers preflight
// requests; it reports whether it answered. With no CORS_ORIGINS it sets
// nothing (browsers then allow same-origin only). "*" allows any origin but
// never with credentials; listed origins are echoed with credentials allowed.
func (s *Server) cors(w nethttp.ResponseWriter, r *nethttp.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || len(s.cfg.CORSOrigins) == 0 {
		return false
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	switch {
	case slices.Contains(s.cfg.CORSOrigins, origin):
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
	case slices.Contains(s.cfg.CORSOrigins, "*"):
		h.Set("Access-Control-Allow-Origin", "*")
	default:
		return false
	}
	h.Set("Access-Control-Expose-Headers", "X-Request-ID")
	if r.Method == nethttp.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Request-ID")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(nethttp.StatusNoContent)
		return true
	}
	return false
}

// mutating reports whether method changes state and so needs the token.
func mutating(method string) bool {
	switch method {
	case nethttp.MethodPost, nethttp.MethodPut, nethttp.MethodDelete, nethttp.MethodPatch:
		return true
	}
	return false
}

// authorize checks the bearer token of a mutating request when API_TOKEN
// is set.
func (s *Server) authorize(r *nethttp.Request) *Error {
	if s.cfg.APIToken == "" || !mutating(r.Method) {
		return nil
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || got == "" {
		return Errorf(CodeUnauthorized, "this route changes data and needs the header `Authorization: Bearer <API_TOKEN>`")
	}
	if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(s.cfg.APIToken)) != 1 {
		return Errorf(CodeUnauthorized, "the bearer token is not valid")
	}
	return nil
}
