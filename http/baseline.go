package http

import (
	"context"
	"errors"
	nethttp "net/http"
	"strings"
	"time"

	"github.com/uptrace/bunrouter"

	"github.com/enms/enms-analytics/analytics"
	"github.com/enms/enms-analytics/baseline"
	"github.com/enms/enms-analytics/store"
)

func init() { routeSets = append(routeSets, (*Server).baselineRoutes) }

// MaxBaselineWindow is the longest window the deviation route compares.
const MaxBaselineWindow = 400 * 24 * time.Hour

// MaxTrainWait is the longest POST /baseline/train waits for the worker.
const MaxTrainWait = 240 * time.Second

// baselines applies stored baselines. Only read paths run here (training
// happens in the worker), so the defaults of the service configuration do
// not matter: a stored baseline carries its own design.
func (s *Server) baselines() *baseline.Service {
	return baseline.New(baseline.DefaultConfig(s.cfg.Store))
}

func (s *Server) baselineRoutes() []Route {
	pBaselineID := Param{Name: "baseline_id", In: "query", Description: "a baseline's UUID; default: the machine's active baseline",
		Schema: map[string]any{"type": "string", "format": "uuid"}}
	return []Route{
		{Method: "POST", Path: "/api/v1/baseline/train", Tag: "Baseline", Summary: "Train an energy baseline",
			Description: "Queues a training request (the same row an SQL client inserts into baseline_train_requests) and " +
				"waits up to wait_seconds for the worker: the answer is the finished request (status done with baseline_id; " +
				"rejected: stored inactive, error lists the failed validity rules; failed: error says why). When the wait " +
				"ends first, or with async=true, the answer is 202 with the request to poll at " +
				"/api/v1/baseline/train-requests/{id}. Drivers: " + strings.Join(analytics.DriverNames, ", ") + ".",
			Params: []Param{
				{Name: "async", In: "query", Description: "answer 202 at once instead of waiting",
					Schema: map[string]any{"type": "boolean", "default": false}},
				{Name: "wait_seconds", In: "query", Description: "how long to wait for the result (1–240)",
					Schema: map[string]any{"type": "integer", "minimum": 1, "maximum": 240, "default": 60}},
			},
			Body: trainBody{}, Response: store.TrainRequestRow{}, Timeout: MaxTrainWait + 10*time.Second,
			Handler: s.baselineTrain},
		{Method: "GET", Path: "/api/v1/baseline/train-requests/{id}", Tag: "Baseline", Summary: "A training request",
			Description: "Status (pending, running, done, rejected, failed), error and baseline_id of a training request.",
			Params:      []Param{pID("training request")}, Response: store.TrainRequestRow{}, Handler: s.baselineTrainRequest},
		{Method: "GET", Path: "/api/v1/baseline/deviation", Tag: "Baseline", Summary: "Actual against baseline",
			Description: "Per usable hour of [start, end) (running, not in maintenance, fault or offline): actual, predicted " +
				"and deviation (kWh), its z in prediction standard errors and severity (≥ 2 warning, ≥ 3 critical), and the " +
				"CUSUM of deviations; totals; ISO 50006 improvement % = (Σ predicted − Σ actual)/Σ predicted × 100. " +
				"At most 400 days. 404 when the machine has no active baseline.",
			Params: []Param{pMachineID, pStart, pEnd, pBaselineID}, Response: deviationResponse{},
			Timeout: 30 * time.Second, Handler: s.baselineDeviation},
		{Method: "POST", Path: "/api/v1/baseline/predict", Tag: "Baseline", Summary: "Predict energy with a baseline",
			Description: "Expected kWh of one hour for the given driver values, with the prediction's standard error and " +
				"95 % interval. features holds raw drivers (production_count, outdoor_temp_c, operating_hours, pressure_bar, " +
				"material_moisture_pct); hdd, cdd and temp_segments come from outdoor_temp_c, time-of-week drivers from " +
				"timestamp. A missing driver is a 400 naming it; values outside the training range add a warning.",
			Body: predictBody{}, Response: baseline.Prediction{}, Handler: s.baselinePredict},
		{Method: "GET", Path: "/api/v1/baseline/models", Tag: "Baseline", Summary: "Baseline versions",
			Description: "Published baselines, newest version first per machine, without the fit report.",
			Params: []Param{
				{Name: "machine_id", In: "query", Description: "only this machine's baselines",
					Schema: map[string]any{"type": "string", "format": "uuid"}},
				{Name: "active", In: "query", Description: "only active baselines (true)",
					Schema: map[string]any{"type": "boolean"}},
				pLimit(100, 1000),
			},
			Response: modelsResponse{}, Handler: s.baselineModels},
		{Method: "GET", Path: "/api/v1/baseline/model/{id}", Tag: "Baseline", Summary: "One baseline with its fit report",
			Description: "The baseline row; metadata.fit is the full ISO 50006 / ASHRAE Guideline 14 report (n, p, R², " +
				"adjusted R², RMSE, CV(RMSE), NMBE, MAE, F and its p-value, lag-1 autocorrelation, coefficients with " +
				"standard errors, t and p, drivers with min/max/mean/sd/coverage, validity with each rule).",
			Params: []Param{pID("baseline")}, Response: store.Baseline{}, Handler: s.baselineModel},
	}
}

type trainBody struct {
	MachineID     string    `json:"machine_id"`
	Drivers       []string  `json:"drivers"`
	TrainingStart time.Time `json:"training_start"`
	TrainingEnd   time.Time `json:"training_end"`
	RequestedBy   string    `json:"requested_by,omitempty"`
}

func (s *Server) baselineTrain(w nethttp.ResponseWriter, req bunrouter.Request) error {
	q := queryOf(req)
	async, err := q.boolean("async")
	if err != nil {
		return err
	}
	waitSeconds, err := q.whole("wait_seconds", 60, 1, int(MaxTrainWait/time.Second))
	if err != nil {
		return err
	}
	wait := time.Duration(waitSeconds) * time.Second
	var body trainBody
	if err := decodeJSON(w, req.Request, &body); err != nil {
		return err
	}
	id, err := parseUUID("machine_id", body.MachineID)
	if err != nil {
		return err
	}
	if err := analytics.ValidateDrivers(body.Drivers); err != nil {
		return invalidf("%v", err)
	}
	if body.TrainingStart.IsZero() || body.TrainingEnd.IsZero() {
		return invalidf("training_start and training_end are required: RFC 3339 times such as 2026-01-01T00:00:00Z")
	}
	if !body.TrainingStart.Before(body.TrainingEnd) {
		return invalidf("training_start (%s) must be before training_end (%s)",
			body.TrainingStart.Format(time.RFC3339), body.TrainingEnd.Format(time.RFC3339))
	}
	ctx := req.Context()
	if _, err := s.cfg.Store.Machine(ctx, id); err != nil {
		return machineNotFound(err, id)
	}
	reqID, err := s.cfg.Store.InsertTrainRequest(ctx, store.NewTrainRequest{MachineID: id, Drivers: body.Drivers,
		TrainingStart: body.TrainingStart, TrainingEnd: body.TrainingEnd, RequestedBy: body.RequestedBy})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/baseline/train-requests/"+reqID)
	if async != nil && *async {
		row, err := s.cfg.Store.TrainRequest(ctx, reqID)
		if err != nil {
			return err
		}
		writeJSON(w, nethttp.StatusAccepted, row)
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	row, err := s.cfg.Store.WaitTrainRequest(wctx, reqID)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if !row.Status.Final() {
		// the wait ended first: the request keeps going; poll it
		if row, err = s.cfg.Store.TrainRequest(ctx, reqID); err != nil {
			return err
		}
		writeJSON(w, nethttp.StatusAccepted, row)
		return nil
	}
	writeJSON(w, nethttp.StatusOK, row)
	return nil
}

func (s *Server) baselineTrainRequest(w nethttp.ResponseWriter, req bunrouter.Request) error {
	id, err := pathUUID(req, "id")
	if err != nil {
		return err
	}
	row, err := s.cfg.Store.TrainRequest(req.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return notFoundf("there is no training request %s", id)
	}
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, row)
	return nil
}

type deviationResponse struct {
	MachineID          string                   `json:"machine_id"`
	BaselineID         string                   `json:"baseline_id"`
	ModelVersion       int                      `json:"model_version"`
	Start              time.Time                `json:"start"`
	End                time.Time                `json:"end"`
	Hours              []baseline.DeviationHour `json:"hours"`
	ExcludedHours      map[string]int           `json:"excluded_hours"`
	Totals             baseline.DeviationTotals `json:"totals"`
	ImprovementPercent *float64                 `json:"improvement_percent"`
	CUSUMKWh           float64                  `json:"cusum_kwh"`
}

// baselineErr maps the baseline service's errors: bad input is a 400, a
// machine or baseline that does not exist a 404 naming it.
func baselineErr(what string, err error) error {
	var in *baseline.InputError
	switch {
	case errors.As(err, &in):
		return invalidf("%s", in.Msg)
	case errors.Is(err, baseline.ErrNotApplicable):
		return Errorf(CodeConflict, "%v", err)
	case errors.Is(err, store.ErrNotFound):
		return notFoundf("%s", what)
	}
	return err
}

func (s *Server) baselineDeviation(w nethttp.ResponseWriter, req bunrouter.Request) error {
	q := queryOf(req)
	id, err := q.uuid("machine_id")
	if err != nil {
		return err
	}
	start, end, err := q.window(MaxBaselineWindow)
	if err != nil {
		return err
	}
	bid, err := q.optionalUUID("baseline_id")
	if err != nil {
		return err
	}
	if _, err := s.cfg.Store.Machine(req.Context(), id); err != nil {
		return machineNotFound(err, id)
	}
	d, err := s.baselines().Deviation(req.Context(), id, bid, start, end)
	if err != nil {
		what := "machine " + id + " has no active baseline; train one with POST /api/v1/baseline/train"
		if bid != "" {
			what = "there is no baseline " + bid
		}
		return baselineErr(what, err)
	}
	resp := deviationResponse{MachineID: d.MachineID, BaselineID: d.BaselineID, ModelVersion: d.ModelVersion,
		Start: start, End: end, Hours: d.Hours, ExcludedHours: map[string]int{}, Totals: d.Totals,
		ImprovementPercent: d.ImprovementPercent, CUSUMKWh: d.CUSUMKWh}
	for k, v := range d.Excluded {
		resp.ExcludedHours[string(k)] = v
	}
	writeJSON(w, nethttp.StatusOK, resp)
	return nil
}

type predictBody struct {
	MachineID  string             `json:"machine_id,omitempty"`
	BaselineID string             `json:"baseline_id,omitempty"`
	Features   map[string]float64 `json:"features"`
	Timestamp  *time.Time         `json:"timestamp,omitempty"`
}

func (s *Server) baselinePredict(w nethttp.ResponseWriter, req bunrouter.Request) error {
	var body predictBody
	if err := decodeJSON(w, req.Request, &body); err != nil {
		return err
	}
	var mid, bid string
	var err error
	if body.MachineID == "" && body.BaselineID == "" {
		return invalidf("give machine_id (its active baseline is used) or baseline_id")
	}
	if body.MachineID != "" {
		if mid, err = parseUUID("machine_id", body.MachineID); err != nil {
			return err
		}
	}
	if body.BaselineID != "" {
		if bid, err = parseUUID("baseline_id", body.BaselineID); err != nil {
			return err
		}
	}
	p, err := s.baselines().Predict(req.Context(), mid, bid, body.Features, body.Timestamp)
	if err != nil {
		what := "machine " + mid + " has no active baseline"
		if bid != "" {
			what = "there is no baseline " + bid
		}
		return baselineErr(what, err)
	}
	writeJSON(w, nethttp.StatusOK, p)
	return nil
}

type modelsResponse struct {
	Models []store.Baseline `json:"models"`
	Count  int              `json:"count"`
}

func (s *Server) baselineModels(w nethttp.ResponseWriter, req bunrouter.Request) error {
	q := queryOf(req)
	mid, err := q.optionalUUID("machine_id")
	if err != nil {
		return err
	}
	active, err := q.boolean("active")
	if err != nil {
		return err
	}
	limit, err := q.limit(100, 1000)
	if err != nil {
		return err
	}
	list, err := s.cfg.Store.ListBaselines(req.Context(), store.BaselineFilter{MachineID: mid,
		ActiveOnly: active != nil && *active, Limit: limit})
	if err != nil {
		return err
	}
	if list == nil {
		list = []store.Baseline{}
	}
	writeJSON(w, nethttp.StatusOK, modelsResponse{Models: list, Count: len(list)})
	return nil
}

func (s *Server) baselineModel(w nethttp.ResponseWriter, req bunrouter.Request) error {
	id, err := pathUUID(req, "id")
	if err != nil {
		return err
	}
	b, err := s.cfg.Store.Baseline(req.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return notFoundf("there is no baseline %s", id)
	}
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, b)
	return nil
}
