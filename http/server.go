// Package http is the read API: bunrouter routes under /api/v1/, one
// error-to-status mapper, JSON encoding, the OpenAPI document and the docs
// page. It talks to the database only through store.
//
// Every route is one entry of a route table (Route): the router and the
// OpenAPI document are both built from it, so they cannot disagree. Feature
// files add their own table with an init function:
//
//	func init() { routeSets = append(routeSets, (*Server).baselineRoutes) }
package http

import (
	"log/slog"
	nethttp "net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bunrouter"

	"github.com/enms/enms-analytics/anomaly"
	"github.com/enms/enms-analytics/store"
)

// Config wires the API. Store and Logger are required; every other field
// may be left zero.
type Config struct {
	Store   *store.Store
	Logger  *slog.Logger
	Version string // reported by /health
	// Started is when the service started; zero means when New was called.
	Started time.Time

	// APIToken, when set, is required as `Authorization: Bearer <token>` on
	// every mutating route (POST, PUT, DELETE). Empty: no token needed.
	APIToken string
	// CORSOrigins are the origins allowed to call the API from a browser.
	// Empty (the default) sends no CORS headers. "*" allows any origin
	// without credentials; listed origins are allowed with credentials.
	CORSOrigins []string
	// Metrics is the registry /metrics serves and the API's request
	// metrics are registered on. Nil: a registry of the API's own.
	Metrics *prometheus.Registry
	// WorkerStatus, when set, reports the event worker for /health; nil
	// means no worker runs in this process.
	WorkerStatus func() WorkerStatus
	// DefaultTimeout bounds a route without its own timeout; zero: 10 s.
	DefaultTimeout time.Duration
	// Anomaly re-scores windows for POST /anomaly/detect; pass the worker's
	// service so both use one configuration. Nil: default settings over the
	// baseline's rolling model.
	Anomaly *anomaly.Service
}

// Server is the API's HTTP handler.
type Server struct {
	cfg     Config
	router  *bunrouter.Router
	handler nethttp.Handler
	routes  []Route
	metrics *metrics
	openapi []byte
}

// New builds the router with every route of every route set registered.
func New(cfg Config) *Server {
	if cfg.Started.IsZero() {
		cfg.Started = time.Now()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	if cfg.DefaultTimeout <= 0 {
		cfg.DefaultTimeout = 10 * time.Second
	}
	s := &Server{cfg: cfg, metrics: newMetrics(cfg.Metrics)}
	s.router = bunrouter.New(
		bunrouter.WithNotFoundHandler(s.notFound),
		bunrouter.WithMethodNotAllowedHandler(s.methodNotAllowed),
	)
	for _, set := range routeSets {
		for _, rt := range set(s) {
			s.register(rt)
		}
	}
	s.openapi = s.buildOpenAPI()
	s.handler = s.outer(s.router)
	return s
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w nethttp.ResponseWriter, r *nethttp.Request) {
	s.handler.ServeHTTP(w, r)
}

// Routes returns the registered routes, in registration order.
func (s *Server) Routes() []Route { return append([]Route(nil), s.routes...) }

func (s *Server) notFound(w nethttp.ResponseWriter, req bunrouter.Request) error {
	writeError(w, req.Request, notFoundf("there is no route %s %s; the routes are listed at /api/v1/docs", req.Method, clip(req.URL.Path)))
	return nil
}

func (s *Server) methodNotAllowed(w nethttp.ResponseWriter, req bunrouter.Request) error {
	writeError(w, req.Request, Errorf(CodeMethodNotAllowed, "%s is not allowed on %s; see /api/v1/docs", req.Method, clip(req.URL.Path)))
	return nil
}
