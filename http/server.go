// Package http is the read API: bunrouter routes under /api/v1/, one
// error-to-status mapper, JSON encoding, the OpenAPI document and the UI
// assets. It talks to the database only through store.
package http

import (
	"context"
	"encoding/json"
	"log/slog"
	nethttp "net/http"
	"time"

	"github.com/uptrace/bunrouter"

	"github.com/enms/enms-analytics/store"
)

// Config wires the API. Store and Logger are required.
type Config struct {
	Store   *store.Store
	Logger  *slog.Logger
	Version string // reported by /health
	// Started is when the service started; zero means when New was called.
	Started time.Time
}

// Server is the API's HTTP handler.
type Server struct {
	cfg    Config
	router *bunrouter.Router
}

// New builds the router with every route registered.
func New(cfg Config) *Server {
	if cfg.Started.IsZero() {
		cfg.Started = time.Now()
	}
	s := &Server{cfg: cfg}
	s.router = bunrouter.New()
	s.router.GET("/health", s.health)
	s.router.WithGroup("/api/v1", func(g *bunrouter.Group) {
		g.GET("/health", s.health)
	})
	return s
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w nethttp.ResponseWriter, r *nethttp.Request) {
	s.router.ServeHTTP(w, r)
}

type healthResponse struct {
	Status        string    `json:"status"`
	Version       string    `json:"version"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	Time          time.Time `json:"time"`
	Database      dbHealth  `json:"database"`
}

type dbHealth struct {
	Status           string `json:"status"`
	ServerVersion    string `json:"server_version,omitempty"`
	MigrationVersion int64  `json:"migration_version"`
	MigrationDirty   bool   `json:"migration_dirty"`
	Error            string `json:"error,omitempty"`
}

func (s *Server) health(w nethttp.ResponseWriter, req bunrouter.Request) error {
	ctx, cancel := context.WithTimeout(req.Context(), 2*time.Second)
	defer cancel()
	resp := healthResponse{
		Status:        "healthy",
		Version:       s.cfg.Version,
		UptimeSeconds: time.Since(s.cfg.Started).Seconds(),
		Time:          time.Now().UTC(),
	}
	info, err := s.cfg.Store.Health(ctx)
	status := nethttp.StatusOK
	if err != nil {
		resp.Status = "unhealthy"
		resp.Database = dbHealth{Status: "unreachable", Error: "the database did not answer"}
		s.cfg.Logger.WarnContext(ctx, "health check: database unreachable", "err", err)
		status = nethttp.StatusServiceUnavailable
	} else {
		resp.Database = dbHealth{Status: "connected", ServerVersion: info.ServerVersion,
			MigrationVersion: info.MigrationVersion, MigrationDirty: info.MigrationDirty}
	}
	return writeJSON(w, status, resp)
}

func writeJSON(w nethttp.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}
