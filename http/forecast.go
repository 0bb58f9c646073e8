package http

import (
	"context"
	"errors"
	"math"
	nethttp "net/http"
	"time"

	"github.com/uptrace/bunrouter"

	"github.com/enms/enms-analytics/analytics"
	"github.com/enms/enms-analytics/store"
)

func init() { routeSets = append(routeSets, (*Server).forecastRoutes) }

// forecastHorizons maps the horizon parameter to the stored resolution.
var forecastHorizons = []string{"1h", "24h", "7d"}

func resolutionOf(horizon string) string {
	switch horizon {
	case "1h":
		return store.Resolution15Min
	case "7d":
		return store.Resolution1Day
	}
	return store.Resolution1Hour
}

func horizonOf(resolution string) string {
	switch resolution {
	case store.Resolution15Min:
		return "1h"
	case store.Resolution1Day:
		return "7d"
	}
	return "24h"
}

// peakHistory is how far back the default peak threshold looks.
const peakHistory = 90 * 24 * time.Hour

var pHorizon = Param{Name: "horizon", In: "query",
	Description: "1h (four 15-minute buckets), 24h (24 hourly buckets) or 7d (7 daily buckets, factory-local days)",
	Schema:      map[string]any{"type": "string", "enum": stringsAny(forecastHorizons), "default": "24h"}}

func (s *Server) forecastRoutes() []Route {
	return []Route{
		{Method: "GET", Path: "/api/v1/forecast/demand", Tag: "Forecast", Summary: "Demand forecast",
			Description: "The machine's latest forecast at the horizon, issued when its last hour closed: per bucket the " +
				"predicted energy (kWh) and average power (kW) with 80 % and 95 % prediction intervals from the model's " +
				"own backtest errors at that horizon. origin is the data time it was made from (the end of the last " +
				"closed hour). An empty forecast means none has been issued yet (too little history).",
			Params: []Param{pMachineID, pHorizon}, Response: demandResponse{}, Handler: s.forecastDemand},
		{Method: "GET", Path: "/api/v1/forecast/peak", Tag: "Forecast", Summary: "Coming peak",
			Description: "When, in the next 24 hours of the latest hourly forecast, the machine's predicted average " +
				"demand is highest, and how high, with its intervals.",
			Params: []Param{pMachineID}, Response: peakResponse{}, Handler: s.forecastPeak},
		{Method: "POST", Path: "/api/v1/forecast/optimal-schedule", Tag: "Forecast", Summary: "Cheapest windows for an extra load",
			Description: "The three cheapest windows of duration_hours between earliest_start and latest_end (starts at " +
				"earliest_start and every whole hour after it) to run load_kw, priced with the factory's time-of-use " +
				"tariffs in factory-local time, that keep predicted demand + load_kw at or under the peak threshold " +
				"in every hour they touch (peak_threshold_kw, default: the largest 15-minute demand of the last 90 days). " +
				"Give machine_id or factory_id (the sum of its machines' forecasts). Savings are against starting at " +
				"earliest_start. Windows beyond the latest 24-hour forecast cannot be checked and are not offered; " +
				"409 when no forecast has been issued.",
			Body: scheduleRequest{}, Response: scheduleResponse{}, Handler: s.forecastSchedule},
		{Method: "GET", Path: "/api/v1/forecast/accuracy", Tag: "Forecast", Summary: "Forecast accuracy",
			Description: "How the machine's forecasts did against the actuals, per horizon step: MAPE (%, over actuals " +
				"> 0), bias (mean predicted − actual, kWh; positive = over-forecast), MAE and the share of actuals " +
				"inside the 80 % and 95 % intervals, over the targets of the `days` days before the latest " +
				"scored one (data time).",
			Params: []Param{pMachineID, {Name: "horizon", In: "query", Description: "only this horizon (1h, 24h or 7d); default all",
				Schema: map[string]any{"type": "string", "enum": stringsAny(forecastHorizons)}},
				{Name: "days", In: "query", Description: "targets of the last this many days (1–365)",
					Schema: map[string]any{"type": "integer", "minimum": 1, "maximum": 365, "default": 30}}},
			Response: accuracyResponse{}, Handler: s.forecastAccuracy},
	}
}

type forecastBucket struct {
	TargetBucket time.Time `json:"target_bucket"`
	Horizon      int       `json:"horizon"`
	PredictedKWh float64   `json:"predicted_kwh"`
	PredictedKW  float64   `json:"predicted_kw"`
	Lower80      float64   `json:"lower_80"` // kWh
	Upper80      float64   `json:"upper_80"`
	Lower95      float64   `json:"lower_95"`
	Upper95      float64   `json:"upper_95"`
	Lower80KW    float64   `json:"lower_80_kw"`
	Upper80KW    float64   `json:"upper_80_kw"`
	Lower95KW    float64   `json:"lower_95_kw"`
	Upper95KW    float64   `json:"upper_95_kw"`
	ActualKWh    *float64  `json:"actual_kwh"` // null until the bucket has closed
}

type demandResponse struct {
	MachineID   string           `json:"machine_id"`
	MachineName string           `json:"machine_name"`
	Horizon     string           `json:"horizon"`
	Resolution  string           `json:"resolution"`
	Origin      *time.Time       `json:"origin"` // null when no forecast was issued
	IssuedAt    *time.Time       `json:"issued_at"`
	Model       *string          `json:"model"`
	Forecast    []forecastBucket `json:"forecast"`
}

func bucketOf(r store.ForecastRow) forecastBucket {
	perKW := r.PredictedKW / r.PredictedKWh // 1 / bucket hours
	if r.PredictedKWh == 0 || math.IsNaN(perKW) || math.IsInf(perKW, 0) {
		perKW = 1 / bucketHours(r)
	}
	return forecastBucket{TargetBucket: r.TargetBucket, Horizon: r.Horizon,
		PredictedKWh: r.PredictedKWh, PredictedKW: r.PredictedKW,
		Lower80: r.Lower80, Upper80: r.Upper80, Lower95: r.Lower95, Upper95: r.Upper95,
		Lower80KW: r.Lower80 * perKW, Upper80KW: r.Upper80 * perKW,
		Lower95KW: r.Lower95 * perKW, Upper95KW: r.Upper95 * perKW, ActualKWh: r.ActualKWh}
}

func bucketHours(r store.ForecastRow) float64 {
	switch r.Resolution {
	case store.Resolution15Min:
		return 0.25
	case store.Resolution1Day:
		return 24
	}
	return 1
}

func (s *Server) forecastDemand(w nethttp.ResponseWriter, req bunrouter.Request) error {
	q := queryOf(req)
	id, err := q.uuid("machine_id")
	if err != nil {
		return err
	}
	horizon, err := q.enum("horizon", forecastHorizons, "24h", false)
	if err != nil {
		return err
	}
	m, err := s.cfg.Store.Machine(req.Context(), id)
	if err != nil {
		return machineNotFound(err, id)
	}
	rows, err := s.cfg.Store.LatestForecast(req.Context(), id, resolutionOf(horizon))
	if err != nil {
		return err
	}
	resp := demandResponse{MachineID: id, MachineName: m.Name, Horizon: horizon,
		Resolution: resolutionOf(horizon), Forecast: []forecastBucket{}}
	if len(rows) > 0 {
		resp.Origin, resp.IssuedAt, resp.Model = &rows[0].Origin, &rows[0].IssuedAt, &rows[0].Model
	}
	for _, r := range rows {
		resp.Forecast = append(resp.Forecast, bucketOf(r))
	}
	writeJSON(w, nethttp.StatusOK, resp)
	return nil
}

type peakResponse struct {
	MachineID   string     `json:"machine_id"`
	MachineName string     `json:"machine_name"`
	Origin      *time.Time `json:"origin"`    // null when no forecast was issued
	PeakTime    *time.Time `json:"peak_time"` // start of the hour with the highest predicted demand
	PeakKW      *float64   `json:"peak_kw"`
	PeakKWh     *float64   `json:"peak_kwh"`
	Lower80KW   *float64   `json:"lower_80_kw"`
	Upper80KW   *float64   `json:"upper_80_kw"`
	Upper95KW   *float64   `json:"upper_95_kw"`
	Model       *string    `json:"model"`
}

func (s *Server) forecastPeak(w nethttp.ResponseWriter, req bunrouter.Request) error {
	id, err := queryOf(req).uuid("machine_id")
	if err != nil {
		return err
	}
	m, err := s.cfg.Store.Machine(req.Context(), id)
	if err != nil {
		return machineNotFound(err, id)
	}
	rows, err := s.cfg.Store.LatestForecast(req.Context(), id, store.Resolution1Hour)
	if err != nil {
		return err
	}
	resp := peakResponse{MachineID: id, MachineName: m.Name}
	if len(rows) > 0 {
		best := rows[0]
		for _, r := range rows[1:] {
			if r.PredictedKW > best.PredictedKW {
				best = r
			}
		}
		b := bucketOf(best)
		resp.Origin, resp.Model = &best.Origin, &best.Model
		resp.PeakTime, resp.PeakKW, resp.PeakKWh = &b.TargetBucket, &b.PredictedKW, &b.PredictedKWh
		resp.Lower80KW, resp.Upper80KW, resp.Upper95KW = &b.Lower80KW, &b.Upper80KW, &b.Upper95KW
	}
	writeJSON(w, nethttp.StatusOK, resp)
	return nil
}

type scheduleRequest struct {
	MachineID       string   `json:"machine_id,omitempty"`
	FactoryID       string   `json:"factory_id,omitempty"`
	LoadKW          float64  `json:"load_kw"`
	DurationHours   float64  `json:"duration_hours"`
	EarliestStart   string   `json:"earliest_start"` // RFC 3339
	LatestEnd       string   `json:"latest_end"`     // RFC 3339
	PeakThresholdKW *float64 `json:"peak_threshold_kw,omitempty"`
}

type scheduleWindow struct {
	Start        time.Time `json:"start"`
	End          time.Time `json:"end"`
	Cost         float64   `json:"cost"`
	Savings      float64   `json:"savings"`        // baseline cost − this cost
	PeakDemandKW *float64  `json:"peak_demand_kw"` // predicted demand + load in the window's highest hour
	Feasible     bool      `json:"feasible"`
}

type scheduleResponse struct {
	MachineID           string           `json:"machine_id,omitempty"`
	FactoryID           string           `json:"factory_id"`
	LoadKW              float64          `json:"load_kw"`
	DurationHours       float64          `json:"duration_hours"`
	Currency            string           `json:"currency"`
	PeakThresholdKW     *float64         `json:"peak_threshold_kw"` // null: no cap
	PeakThresholdSource string           `json:"peak_threshold_source"`
	ForecastFrom        time.Time        `json:"forecast_from"`
	ForecastTo          time.Time        `json:"forecast_to"`
	Windows             []scheduleWindow `json:"windows"`
	Baseline            scheduleWindow   `json:"baseline"` // starting at earliest_start
	Candidates          int              `json:"candidates"`
	FeasibleCount       int              `json:"feasible_candidates"`
}

func (r scheduleRequest) validate() (start, end time.Time, dur time.Duration, err error) {
	switch {
	case r.MachineID == "" && r.FactoryID == "", r.MachineID != "" && r.FactoryID != "":
		return start, end, 0, invalidf("give exactly one of machine_id and factory_id")
	case !(r.LoadKW > 0) || r.LoadKW > 1e6:
		return start, end, 0, invalidf("load_kw must be a positive number of kW (up to 1,000,000), got %v", r.LoadKW)
	case !(r.DurationHours > 0) || r.DurationHours > 24 || math.Mod(r.DurationHours*4, 1) != 0:
		return start, end, 0, invalidf("duration_hours must be a multiple of 0.25 from 0.25 to 24 (the forecast covers 24 hours), got %v", r.DurationHours)
	case r.PeakThresholdKW != nil && !(*r.PeakThresholdKW > 0):
		return start, end, 0, invalidf("peak_threshold_kw must be positive when given")
	}
	if start, err = parseTime("earliest_start", r.EarliestStart); err != nil {
		return
	}
	if end, err = parseTime("latest_end", r.LatestEnd); err != nil {
		return
	}
	dur = time.Duration(r.DurationHours * float64(time.Hour))
	if end.Sub(start) < dur {
		return start, end, dur, invalidf("the window from earliest_start %s to latest_end %s is shorter than duration_hours %v",
			start.Format(time.RFC3339), end.Format(time.RFC3339), r.DurationHours)
	}
	if end.Sub(start) > 7*24*time.Hour {
		return start, end, dur, invalidf("latest_end may be at most 7 days after earliest_start")
	}
	return start, end, dur, nil
}

func (s *Server) forecastSchedule(w nethttp.ResponseWriter, req bunrouter.Request) error {
	var body scheduleRequest
	if err := decodeJSON(w, req.Request, &body); err != nil {
		return err
	}
	start, end, dur, err := body.validate()
	if err != nil {
		return err
	}
	ctx := req.Context()
	resp := scheduleResponse{LoadKW: body.LoadKW, DurationHours: body.DurationHours, Windows: []scheduleWindow{}}
	var demand []analytics.DemandForecast
	if body.MachineID != "" {
		if resp.MachineID, err = parseUUID("machine_id", body.MachineID); err != nil {
			return err
		}
		m, err := s.cfg.Store.Machine(ctx, resp.MachineID)
		if err != nil {
			return machineNotFound(err, resp.MachineID)
		}
		resp.FactoryID = m.FactoryID
		rows, err := s.cfg.Store.LatestForecast(ctx, resp.MachineID, store.Resolution1Hour)
		if err != nil {
			return err
		}
		for _, r := range rows {
			demand = append(demand, analytics.DemandForecast{Start: r.TargetBucket, KW: r.PredictedKW})
		}
	} else {
		if resp.FactoryID, err = parseUUID("factory_id", body.FactoryID); err != nil {
			return err
		}
		points, _, err := s.cfg.Store.FactoryDemandForecast(ctx, resp.FactoryID)
		if err != nil {
			return err
		}
		for _, p := range points {
			demand = append(demand, analytics.DemandForecast{Start: p.Bucket, KW: p.KW})
		}
	}
	tz, tariffRows, err := s.cfg.Store.FactoryTariffs(ctx, resp.FactoryID)
	if errors.Is(err, store.ErrNotFound) {
		return notFoundf("there is no factory %s", resp.FactoryID)
	}
	if err != nil {
		return err
	}
	if len(demand) == 0 {
		return Errorf(CodeConflict, "no hourly forecast has been issued for this %s yet; forecasts are issued as hours close once there are a few weeks of history", subjectKind(body))
	}
	resp.ForecastFrom, resp.ForecastTo = demand[0].Start, demand[len(demand)-1].Start.Add(time.Hour)
	threshold, err := s.peakThreshold(ctx, body, resp, demand[0].Start)
	if err != nil {
		return err
	}
	resp.PeakThresholdKW, resp.PeakThresholdSource = finite(threshold.kw), threshold.source
	loc, err := time.LoadLocation(tz)
	if err != nil {
		loc = time.UTC
	}
	resp.Currency = "USD"
	tariffs := make([]analytics.Tariff, 0, len(tariffRows))
	for i, t := range tariffRows {
		if i == 0 {
			resp.Currency = t.Currency
		}
		tariffs = append(tariffs, tariffOf(t))
	}
	res, err := analytics.OptimalSchedule(analytics.ScheduleRequest{
		LoadKW: body.LoadKW, Duration: dur, EarliestStart: start, LatestEnd: end,
		PeakThresholdKW: threshold.kw, Location: loc, Tariffs: tariffs, Demand: demand, Top: 3,
	})
	if err != nil {
		return invalidf("%s", err.Error())
	}
	for _, w := range res.Windows {
		resp.Windows = append(resp.Windows, windowOf(w))
	}
	resp.Baseline = windowOf(res.Baseline)
	resp.Candidates, resp.FeasibleCount = res.Candidates, res.Feasible
	writeJSON(w, nethttp.StatusOK, resp)
	return nil
}

func subjectKind(r scheduleRequest) string {
	if r.MachineID != "" {
		return "machine"
	}
	return "factory's machines"
}

type threshold struct {
	kw     float64
	source string
}

// peakThreshold is the request's threshold, else the largest 15-minute
// demand of the machine (or the factory's machines together) in the 90
// days before the forecast, else no cap.
func (s *Server) peakThreshold(ctx context.Context, body scheduleRequest, resp scheduleResponse, origin time.Time) (threshold, error) {
	if body.PeakThresholdKW != nil {
		return threshold{*body.PeakThresholdKW, "request"}, nil
	}
	factory := ""
	if resp.MachineID == "" {
		factory = resp.FactoryID
	}
	kw, ok, err := s.cfg.Store.MaxPeakDemand15(ctx, resp.MachineID, factory, origin.Add(-peakHistory))
	if err != nil {
		return threshold{}, err
	}
	if !ok {
		return threshold{math.Inf(1), "none: no 15-minute readings in the last 90 days"}, nil
	}
	return threshold{kw, "max_observed_15min_demand_90d"}, nil
}

func tariffOf(t store.TariffRow) analytics.Tariff {
	out := analytics.Tariff{Rate: t.RatePerKWh, TimeOfUse: t.TimeOfUse, Days: t.Days}
	if t.StartHour != nil && t.EndHour != nil {
		out.StartHour, out.EndHour = *t.StartHour, *t.EndHour
	}
	if t.ValidFrom != nil {
		out.ValidFrom = *t.ValidFrom
	}
	if t.ValidTo != nil {
		out.ValidTo = *t.ValidTo
	}
	return out
}

func windowOf(w analytics.ScheduleWindow) scheduleWindow {
	return scheduleWindow{Start: w.Start.UTC(), End: w.End.UTC(), Cost: w.Cost, Savings: w.Savings,
		PeakDemandKW: finite(w.PeakDemandKW), Feasible: w.Feasible}
}

// finite returns &v, or nil for NaN and infinities (which JSON cannot hold).
func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

type accuracyRow struct {
	Horizon     string    `json:"horizon"` // 1h, 24h or 7d
	Resolution  string    `json:"resolution"`
	Step        int       `json:"step"` // buckets ahead, 1 = the first bucket after the origin
	N           int       `json:"n"`
	MAPE        *float64  `json:"mape"` // %, null when no actual was > 0
	BiasKWh     float64   `json:"bias_kwh"`
	MAEKWh      float64   `json:"mae_kwh"`
	Coverage80  float64   `json:"coverage_80"`
	Coverage95  float64   `json:"coverage_95"`
	FirstTarget time.Time `json:"first_target"`
	LastTarget  time.Time `json:"last_target"`
}

type accuracyResponse struct {
	MachineID string        `json:"machine_id"`
	Since     *time.Time    `json:"since"` // null when nothing has been scored yet
	Accuracy  []accuracyRow `json:"accuracy"`
}

func (s *Server) forecastAccuracy(w nethttp.ResponseWriter, req bunrouter.Request) error {
	q := queryOf(req)
	id, err := q.uuid("machine_id")
	if err != nil {
		return err
	}
	horizon, err := q.enum("horizon", forecastHorizons, "", false)
	if err != nil {
		return err
	}
	days, err := q.whole("days", 30, 1, 365)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Store.Machine(req.Context(), id); err != nil {
		return machineNotFound(err, id)
	}
	resp := accuracyResponse{MachineID: id, Accuracy: []accuracyRow{}}
	// The window is in data time: the days before the latest scored target.
	latest, ok, err := s.cfg.Store.LatestScoredTarget(req.Context(), id)
	if err != nil {
		return err
	}
	if !ok {
		writeJSON(w, nethttp.StatusOK, resp)
		return nil
	}
	since := latest.Add(-time.Duration(days) * 24 * time.Hour)
	resp.Since = &since
	acc, err := s.cfg.Store.ForecastAccuracies(req.Context(), id, since)
	if err != nil {
		return err
	}
	for _, a := range acc {
		if horizon != "" && horizonOf(a.Resolution) != horizon {
			continue
		}
		resp.Accuracy = append(resp.Accuracy, accuracyRow{Horizon: horizonOf(a.Resolution), Resolution: a.Resolution,
			Step: a.Horizon, N: a.N, MAPE: a.MAPE, BiasKWh: a.BiasKWh, MAEKWh: a.MAEKWh,
			Coverage80: a.Coverage80, Coverage95: a.Coverage95, FirstTarget: a.FirstTarget, LastTarget: a.LastTarget})
	}
	writeJSON(w, nethttp.StatusOK, resp)
	return nil
}
