package http

import (
	"errors"
	"fmt"
	nethttp "net/http"
	"strconv"
	"time"

	"github.com/uptrace/bunrouter"

	"github.com/enms/enms-analytics/store"
)

// The event routes make the worker's parked events (DESIGN §4: a failing
// event is parked with its error after its last attempt) visible through
// the API, and let an operator send one back to the worker.

func init() { routeSets = append(routeSets, (*Server).eventRoutes) }

// MaxParkedEvents is the largest limit of GET /events/parked.
const MaxParkedEvents = 1000

func (s *Server) eventRoutes() []Route {
	pEventID := Param{Name: "id", In: "path", Required: true, Description: "the event's id (analytics_events.id), a positive whole number",
		Schema: map[string]any{"type": "integer", "format": "int64", "minimum": 1}}
	return []Route{
		{Method: "GET", Path: "/api/v1/events/parked", Tag: "Events", Summary: "Parked events",
			Description: "Outbox events the worker gave up on after its last attempt, newest first, each with " +
				"the error of its last attempt. POST /api/v1/events/{id}/retry sends one back to the worker.",
			Params: []Param{pLimit(50, MaxParkedEvents)}, Response: parkedResponse{}, Handler: s.listParked},
		{Method: "POST", Path: "/api/v1/events/{id}/retry", Tag: "Events", Summary: "Retry a parked event",
			Description: "Un-parks the event so the worker retries it at once, with its attempts counted from zero; " +
				"last_error is kept until the retry succeeds or fails anew. 404 for an unknown id, 409 when the " +
				"event is not parked (done or still pending), or when an identical pending event for the same " +
				"machine-hour already waits.",
			Params: []Param{pEventID}, Response: retryResponse{}, Handler: s.retryParked},
	}
}

type parkedEvent struct {
	ID        int64  `json:"id"`
	Kind      string `json:"kind"`
	MachineID string `json:"machine_id"`
	// MachineName is null when the machine row no longer exists.
	MachineName *string    `json:"machine_name"`
	Bucket      *time.Time `json:"bucket"` // the hour of hour_closed / hour_revised; null for status_changed
	Attempts    int        `json:"attempts"`
	LastError   string     `json:"last_error"`
	CreatedAt   time.Time  `json:"created_at"`
	ParkedAt    time.Time  `json:"parked_at"`
}

type parkedResponse struct {
	Events []parkedEvent `json:"events"`
	Count  int           `json:"count"`
}

type retryResponse struct {
	ID      int64  `json:"id"`
	Status  string `json:"status"` // pending
	Message string `json:"message"`
}

func (s *Server) listParked(w nethttp.ResponseWriter, req bunrouter.Request) error {
	limit, err := queryOf(req).limit(50, MaxParkedEvents)
	if err != nil {
		return err
	}
	evs, err := s.cfg.Store.ParkedEvents(req.Context(), limit)
	if err != nil {
		return err
	}
	resp := parkedResponse{Events: make([]parkedEvent, len(evs)), Count: len(evs)}
	for i, e := range evs {
		p := parkedEvent{ID: e.ID, Kind: string(e.Kind), MachineID: e.MachineID, Attempts: e.Attempts,
			LastError: e.LastError, CreatedAt: e.CreatedAt.UTC(), ParkedAt: e.ParkedAt.UTC()}
		if e.MachineName != "" {
			name := e.MachineName
			p.MachineName = &name
		}
		if e.Bucket != nil {
			b := e.Bucket.UTC()
			p.Bucket = &b
		}
		resp.Events[i] = p
	}
	writeJSON(w, nethttp.StatusOK, resp)
	return nil
}

func (s *Server) retryParked(w nethttp.ResponseWriter, req bunrouter.Request) error {
	raw := req.Param("id")
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id < 1 {
		return invalidf("event id %q is not valid; use the event's id, a positive whole number such as 42, as listed by GET /api/v1/events/parked", clip(raw))
	}
	err = s.cfg.Store.RetryParkedEvent(req.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFoundf("there is no event %d; GET /api/v1/events/parked lists the parked ones", id)
	case errors.Is(err, store.ErrNotParked):
		return Errorf(CodeConflict, "event %d is not parked (it is done or still waiting for the worker), so there is nothing to retry", id)
	case errors.Is(err, store.ErrConflict):
		return Errorf(CodeConflict, "event %d cannot be retried: a pending event for the same machine and hour already waits for the worker and will do the same work", id)
	case err != nil:
		return err
	}
	writeJSON(w, nethttp.StatusOK, retryResponse{ID: id, Status: "pending",
		Message: fmt.Sprintf("event %d is pending again; the worker retries it now", id)})
	return nil
}
