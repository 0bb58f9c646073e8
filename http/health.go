package http

import (
	"context"
	nethttp "net/http"
	"time"

	"github.com/uptrace/bunrouter"
)

// WorkerStatus is what the event worker reports to /health. cmd fills it
// from the listener through Config.WorkerStatus, so http does not import
// the listener.
type WorkerStatus struct {
	// Connected is true while the LISTEN connection is up.
	Connected bool `json:"connected"`
	// LastNotification is when the last notification arrived; nil if none yet.
	LastNotification *time.Time `json:"last_notification"`
	// Backlog is the number of events not yet processed.
	Backlog int64 `json:"backlog"`
	// OldestPendingAgeSeconds is the age of the oldest unprocessed event; 0 with no backlog.
	OldestPendingAgeSeconds float64 `json:"oldest_pending_age_seconds"`
	// Parked is the number of events the worker gave up on (listed, with
	// their errors, by /api/v1/events/parked). Not counted in Backlog.
	Parked int64 `json:"parked"`
	// ModelsLoaded is the number of rolling models held in memory.
	ModelsLoaded int `json:"models_loaded"`
}

type healthResponse struct {
	// Status is healthy, degraded (the worker's listener is disconnected)
	// or unhealthy (the database is unreachable; HTTP 503).
	Status        string       `json:"status"`
	Version       string       `json:"version"`
	UptimeSeconds float64      `json:"uptime_seconds"`
	Time          time.Time    `json:"time"`
	Database      dbHealth     `json:"database"`
	Worker        workerHealth `json:"worker"`
}

type dbHealth struct {
	Status           string `json:"status"` // connected or unreachable
	ServerVersion    string `json:"server_version,omitempty"`
	MigrationVersion int64  `json:"migration_version"`
	MigrationDirty   bool   `json:"migration_dirty"`
	Error            string `json:"error,omitempty"`
}

type workerHealth struct {
	// Status is running, listener_disconnected or not_running (the API
	// runs without a worker in this process).
	Status string `json:"status"`
	WorkerStatus
}

func (s *Server) health(w nethttp.ResponseWriter, req bunrouter.Request) error {
	ctx, cancel := context.WithTimeout(req.Context(), 2*time.Second)
	defer cancel()
	resp := healthResponse{
		Status:        "healthy",
		Version:       s.cfg.Version,
		UptimeSeconds: time.Since(s.cfg.Started).Seconds(),
		Time:          time.Now().UTC(),
		Worker:        workerHealth{Status: "not_running"},
	}
	if s.cfg.WorkerStatus != nil {
		ws := s.cfg.WorkerStatus()
		resp.Worker = workerHealth{Status: "running", WorkerStatus: ws}
		if ws.LastNotification != nil {
			t := ws.LastNotification.UTC()
			resp.Worker.LastNotification = &t
		}
		if !ws.Connected {
			resp.Worker.Status = "listener_disconnected"
			resp.Status = "degraded"
		}
	}
	status := nethttp.StatusOK
	info, err := s.cfg.Store.Health(ctx)
	if err != nil {
		resp.Status = "unhealthy"
		resp.Database = dbHealth{Status: "unreachable", Error: "the database did not answer"}
		s.cfg.Logger.WarnContext(ctx, "health check: database unreachable", "request_id", RequestID(ctx), "err", err)
		status = nethttp.StatusServiceUnavailable
	} else {
		resp.Database = dbHealth{Status: "connected", ServerVersion: info.ServerVersion,
			MigrationVersion: info.MigrationVersion, MigrationDirty: info.MigrationDirty}
	}
	writeJSON(w, status, resp)
	return nil
}
