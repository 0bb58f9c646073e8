package http

import (
	"encoding/base64"
	"errors"
	"fmt"
	nethttp "net/http"
	"strings"
	"time"

	"github.com/uptrace/bunrouter"

	"github.com/enms/enms-analytics/anomaly"
	"github.com/enms/enms-analytics/baseline"
	"github.com/enms/enms-analytics/store"
)

func init() { routeSets = append(routeSets, (*Server).anomalyRoutes) }

// MaxDetectWindow is the longest window POST /anomaly/detect re-scores.
const MaxDetectWindow = 92 * 24 * time.Hour

// MaxRecentWindow is the longest window GET /anomaly/recent lists.
const MaxRecentWindow = 400 * 24 * time.Hour

// MaxAnomalies is the largest limit /anomaly/recent accepts.
const MaxAnomalies = 1000

var severities = []string{"normal", "warning", "critical"}

// anomalies returns the detector /anomaly/detect re-scores with:
// Config.Anomaly, else one with default settings over the baseline's
// rolling model (built per request: cheap, and its caches only save reads).
func (s *Server) anomalies() (*anomaly.Service, error) {
	if s.cfg.Anomaly != nil {
		return s.cfg.Anomaly, nil
	}
	return anomaly.New(anomaly.Config{Store: s.cfg.Store,
		Model: anomaly.BaselinePredictor(baseline.New(baseline.DefaultConfig(s.cfg.Store)))})
}

func (s *Server) anomalyRoutes() []Route {
	pSeverity := Param{Name: "severity", In: "query", Description: "only episodes of this severity",
		Schema: map[string]any{"type": "string", "enum": stringsAny(severities)}}
	pOptMachine := Param{Name: "machine_id", In: "query", Description: "only this machine's episodes",
		Schema: map[string]any{"type": "string", "format": "uuid"}}
	return []Route{
		{Method: "POST", Path: "/api/v1/anomaly/detect", Tag: "Anomaly", Summary: "Re-score a window",
			Description: "Re-scores the machine's closed hours in [start, end) (at most 92 days) through the same code " +
				"path as the worker and returns the episodes overlapping the window. Idempotent: running it twice " +
				"creates no rows. An unknown machine is a 404.",
			Body: detectRequest{}, Response: detectResponse{}, Timeout: 120 * time.Second, Handler: s.anomalyDetect},
		{Method: "GET", Path: "/api/v1/anomaly/recent", Tag: "Anomaly", Summary: "Recent anomaly episodes",
			Description: "Episodes overlapping [start, end) (default: the last 24 hours), newest first. " +
				"Pass next_cursor as cursor for the next page.",
			Params: []Param{pOptMachine, pSeverity,
				{Name: "start", In: "query", Description: "window start (default end − 24 h)", Schema: map[string]any{"type": "string", "format": "date-time"}},
				{Name: "end", In: "query", Description: "window end, exclusive (default now)", Schema: map[string]any{"type": "string", "format": "date-time"}},
				pLimit(100, MaxAnomalies),
				{Name: "cursor", In: "query", Description: "next_cursor of the previous page", Schema: map[string]any{"type": "string"}}},
			Response: recentResponse{}, Handler: s.anomalyRecent},
		{Method: "GET", Path: "/api/v1/anomaly/active", Tag: "Anomaly", Summary: "Unresolved anomalies by severity",
			Params: []Param{pOptMachine}, Response: activeResponse{}, Handler: s.anomalyActive},
		{Method: "PUT", Path: "/api/v1/anomaly/{id}/resolve", Tag: "Anomaly", Summary: "Resolve an anomaly",
			Description: "Marks the anomaly resolved with notes. 404 for an unknown id, 409 when already resolved.",
			Params:      []Param{pID("anomaly")}, Body: resolveRequest{}, Response: store.Anomaly{}, Handler: s.anomalyResolve},
	}
}

type detectRequest struct {
	MachineID string `json:"machine_id"`
	Start     string `json:"start"`
	End       string `json:"end"`
}

type detectResponse struct {
	MachineID string    `json:"machine_id"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	// HoursScored counts the hours re-scored, by status (normal, anomalous,
	// unscored, suppressed).
	HoursScored      int             `json:"hours_scored"`
	HoursByStatus    map[string]int  `json:"hours_by_status"`
	EpisodesNotified int             `json:"episodes_notified"`
	EpisodesRemoved  int64           `json:"episodes_removed"`
	TotalAnomalies   int             `json:"total_anomalies"`
	Anomalies        []store.Anomaly `json:"anomalies"`
}

func (s *Server) anomalyDetect(w nethttp.ResponseWriter, req bunrouter.Request) error {
	var body detectRequest
	if err := decodeJSON(w, req.Request, &body); err != nil {
		return err
	}
	id, err := parseUUID("machine_id", body.MachineID)
	if err != nil {
		return err
	}
	start, err := parseTime("start", body.Start)
	if err != nil {
		return err
	}
	end, err := parseTime("end", body.End)
	if err != nil {
		return err
	}
	if err := checkWindow(start, end, MaxDetectWindow); err != nil {
		return err
	}
	svc, err := s.anomalies()
	if err != nil {
		return err
	}
	eps, res, err := svc.Detect(req.Context(), id, start, end)
	if errors.Is(err, store.ErrNotFound) {
		return notFoundf("machine %s does not exist", id)
	}
	if err != nil {
		return err
	}
	resp := detectResponse{MachineID: id, Start: start, End: end, HoursScored: len(res.Hours),
		HoursByStatus:    map[string]int{anomaly.StatusNormal: 0, anomaly.StatusAnomalous: 0, anomaly.StatusUnscored: 0, anomaly.StatusSuppressed: 0},
		EpisodesNotified: len(res.Notified), EpisodesRemoved: res.Deleted, TotalAnomalies: len(eps), Anomalies: eps}
	for _, h := range res.Hours {
		resp.HoursByStatus[h.Status]++
	}
	writeJSON(w, nethttp.StatusOK, resp)
	return nil
}

type recentResponse struct {
	Start      time.Time       `json:"start"`
	End        time.Time       `json:"end"`
	Count      int             `json:"count"`
	Anomalies  []store.Anomaly `json:"anomalies"`
	NextCursor *string         `json:"next_cursor"` // null on the last page
}

func (s *Server) anomalyRecent(w nethttp.ResponseWriter, req bunrouter.Request) error {
	p := queryOf(req)
	var f store.AnomalyFilter
	var err error
	if f.MachineID, err = p.optionalUUID("machine_id"); err != nil {
		return err
	}
	if f.Severity, err = p.enum("severity", severities, "", false); err != nil {
		return err
	}
	f.End = time.Now().UTC()
	if v := p.q.Get("end"); v != "" {
		if f.End, err = parseTime("end", v); err != nil {
			return err
		}
	}
	f.Start = f.End.Add(-24 * time.Hour)
	if v := p.q.Get("start"); v != "" {
		if f.Start, err = parseTime("start", v); err != nil {
			return err
		}
	}
	if err := checkWindow(f.Start, f.End, MaxRecentWindow); err != nil {
		return err
	}
	if f.Limit, err = p.limit(100, MaxAnomalies); err != nil {
		return err
	}
	if c := p.q.Get("cursor"); c != "" {
		if f.After, err = decodeCursor(c); err != nil {
			return err
		}
	}
	list, err := s.cfg.Store.ListAnomalies(req.Context(), f)
	if err != nil {
		return err
	}
	resp := recentResponse{Start: f.Start, End: f.End, Count: len(list), Anomalies: list}
	if len(list) == f.Limit {
		c := encodeCursor(list[len(list)-1])
		resp.NextCursor = &c
	}
	writeJSON(w, nethttp.StatusOK, resp)
	return nil
}

// encodeCursor makes the opaque cursor after a: its detected_at and id.
func encodeCursor(a store.Anomaly) string {
	return base64.RawURLEncoding.EncodeToString([]byte(a.DetectedAt.UTC().Format(time.RFC3339Nano) + "|" + a.ID))
}

func decodeCursor(c string) (*store.AnomalyCursor, error) {
	bad := invalidf("cursor %q is not valid; pass next_cursor of the previous page unchanged", clip(c))
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return nil, bad
	}
	at, id, ok := strings.Cut(string(raw), "|")
	if !ok {
		return nil, bad
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil || !uuidPattern.MatchString(id) {
		return nil, bad
	}
	return &store.AnomalyCursor{DetectedAt: t, ID: id}, nil
}

type activeResponse struct {
	MachineID  *string        `json:"machine_id"` // null: every machine
	Total      int            `json:"total"`
	BySeverity map[string]int `json:"by_severity"`
}

func (s *Server) anomalyActive(w nethttp.ResponseWriter, req bunrouter.Request) error {
	id, err := queryOf(req).optionalUUID("machine_id")
	if err != nil {
		return err
	}
	counts, err := s.cfg.Store.ActiveAnomalyCounts(req.Context(), id)
	if err != nil {
		return err
	}
	resp := activeResponse{BySeverity: counts}
	if id != "" {
		resp.MachineID = &id
	}
	for _, n := range counts {
		resp.Total += n
	}
	writeJSON(w, nethttp.StatusOK, resp)
	return nil
}

type resolveRequest struct {
	ResolutionNotes string `json:"resolution_notes"`
}

func (s *Server) anomalyResolve(w nethttp.ResponseWriter, req bunrouter.Request) error {
	id, err := pathUUID(req, "id")
	if err != nil {
		return err
	}
	var body resolveRequest
	if err := decodeJSON(w, req.Request, &body); err != nil {
		return err
	}
	if strings.TrimSpace(body.ResolutionNotes) == "" {
		return invalidf("resolution_notes is required: say what was found and done")
	}
	a, err := s.cfg.Store.ResolveAnomaly(req.Context(), id, body.ResolutionNotes)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFoundf("anomaly %s does not exist", id)
	case errors.Is(err, store.ErrConflict):
		return Errorf(CodeConflict, "anomaly %s is already resolved (at %s)", id, a.ResolvedAt.UTC().Format(time.RFC3339))
	case err != nil:
		return fmt.Errorf("resolve anomaly: %w", err)
	}
	writeJSON(w, nethttp.StatusOK, a)
	return nil
}
