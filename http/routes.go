package http

import (
	"context"
	nethttp "net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/uptrace/bunrouter"

	"github.com/enms/enms-analytics/store"
)

// Route is one endpoint: how it is served and how it is documented. The
// router and the OpenAPI document are both built from the route table.
type Route struct {
	Method string // GET, POST, PUT or DELETE
	// Path is the full path in OpenAPI form, e.g. /api/v1/machines/{id}.
	Path        string
	Tag         string // OpenAPI tag (section of the docs page)
	Summary     string
	Description string
	Params      []Param
	// Body is a zero value of the JSON request body's type; nil: no body.
	Body any
	// Response is a zero value of the 200 response's JSON type; nil with
	// ContentType set for a non-JSON response.
	Response any
	// ContentType of a non-JSON response (text/html, text/plain).
	ContentType string
	// Status is the success status; zero means 200.
	Status int
	// Timeout bounds the handler; zero: Config.DefaultTimeout.
	Timeout time.Duration
	Handler bunrouter.HandlerFunc
}

// Param documents a path or query parameter.
type Param struct {
	Name        string
	In          string // path or query
	Required    bool
	Description string
	Schema      map[string]any // OpenAPI schema
}

// routeSets are the route tables. core comes first; feature files append
// theirs in an init function.
var routeSets = []func(*Server) []Route{(*Server).coreRoutes}

// bunrouterPath turns /machines/{id} into bunrouter's /machines/:id.
func bunrouterPath(p string) string {
	var b strings.Builder
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "" {
			continue
		}
		b.WriteByte('/')
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			b.WriteString(":" + seg[1:len(seg)-1])
		} else {
			b.WriteString(seg)
		}
	}
	if strings.HasSuffix(p, "/") && b.Len() > 0 { // /api/v1/ui/ keeps its slash: relative URLs resolve under it
		b.WriteByte('/')
	}
	return b.String()
}

// register adds rt to the router behind the per-route wrapper: route label,
// token check for mutating methods, timeout, and the one error mapper.
func (s *Server) register(rt Route) {
	timeout := rt.Timeout
	if timeout <= 0 {
		timeout = s.cfg.DefaultTimeout
	}
	h := rt.Handler
	s.router.Handle(rt.Method, bunrouterPath(rt.Path), func(w nethttp.ResponseWriter, req bunrouter.Request) error {
		if info, ok := req.Context().Value(infoKey).(*requestInfo); ok {
			info.route = rt.Path
		}
		if e := s.authorize(req.Request); e != nil {
			writeError(w, req.Request, e)
			return nil
		}
		ctx, cancel := context.WithTimeout(req.Context(), timeout)
		defer cancel()
		if err := h(w, req.WithContext(ctx)); err != nil {
			e := errorOf(err)
			if e.Code == CodeInternal || e.Code == CodeUnavailable || e.Code == CodeTimeout {
				s.cfg.Logger.ErrorContext(ctx, "request failed", "request_id", RequestID(ctx),
					"route", rt.Path, "code", e.Code, "err", err)
			}
			writeError(w, req.Request, e)
		}
		return nil
	})
	s.routes = append(s.routes, rt)
}

// Common parameters.
var (
	pMachineID = Param{Name: "machine_id", In: "query", Required: true, Description: "the machine's UUID",
		Schema: map[string]any{"type": "string", "format": "uuid"}}
	pStart = Param{Name: "start", In: "query", Required: true,
		Description: "start of the window, inclusive: RFC 3339 (2026-01-31T08:00:00Z) or a date (2026-01-31, midnight UTC)",
		Schema:      map[string]any{"type": "string", "format": "date-time"}}
	pEnd = Param{Name: "end", In: "query", Required: true,
		Description: "end of the window, exclusive; after start",
		Schema:      map[string]any{"type": "string", "format": "date-time"}}
	pID = func(what string) Param {
		return Param{Name: "id", In: "path", Required: true, Description: "the " + what + "'s UUID",
			Schema: map[string]any{"type": "string", "format": "uuid"}}
	}
	pLimit = func(def, max int) Param {
		return Param{Name: "limit", In: "query", Description: "at most this many items",
			Schema: map[string]any{"type": "integer", "minimum": 1, "maximum": max, "default": def}}
	}
)

func kpiRoute(path, summary, description string, resp any, h bunrouter.HandlerFunc) Route {
	return Route{Method: "GET", Path: "/api/v1/kpi/" + path, Tag: "KPI", Summary: summary,
		Description: description + " Window [start, end), at most 400 days. An unknown machine is a 404.",
		Params:      []Param{pMachineID, pStart, pEnd}, Response: resp, Timeout: 15 * time.Second, Handler: h}
}

func (s *Server) coreRoutes() []Route {
	metricsHandler := bunrouter.HTTPHandler(promhttp.HandlerFor(s.cfg.Metrics, promhttp.HandlerOpts{}))
	return []Route{
		{Method: "GET", Path: "/health", Tag: "Service", Summary: "Health (for container health checks)",
			Description: "Same as /api/v1/health. 503 when the database is unreachable.",
			Response:    healthResponse{}, Timeout: 5 * time.Second, Handler: s.health},
		{Method: "GET", Path: "/api/v1/health", Tag: "Service", Summary: "Health",
			Description: "Database, event worker (listener, backlog, models loaded), version and uptime. " +
				"503 when the database is unreachable; status degraded when the worker's listener is disconnected.",
			Response: healthResponse{}, Timeout: 5 * time.Second, Handler: s.health},
		{Method: "GET", Path: "/metrics", Tag: "Service", Summary: "Prometheus metrics (Prometheus' default path)",
			Description: "The Prometheus text exposition of the service's registry. Same as /api/v1/metrics.",
			ContentType: "text/plain", Handler: metricsHandler},
		{Method: "GET", Path: "/api/v1/metrics", Tag: "Service", Summary: "Prometheus metrics",
			Description: "The Prometheus text exposition of the service's registry; under /api/v1/ so that a proxy " +
				"publishing only that prefix (nginx's /api/analytics/) reaches it.",
			ContentType: "text/plain", Handler: metricsHandler},
		{Method: "GET", Path: "/api/v1/openapi.json", Tag: "Service", Summary: "This API's OpenAPI 3.0 document",
			ContentType: "application/json", Handler: s.serveOpenAPI},
		{Method: "GET", Path: "/api/v1/docs", Tag: "Service", Summary: "API documentation page",
			Description: "HTML rendered from the OpenAPI document; works offline and behind a path prefix.",
			ContentType: "text/html", Handler: s.serveDocs},

		kpiRoute("sec", "Specific energy consumption", "kWh per unit produced (calculate_sec).", secResponse{}, s.kpiSEC),
		kpiRoute("peak-demand", "Peak demand", "The largest 15-minute average power and when it occurred (calculate_peak_demand).", peakDemandResponse{}, s.kpiPeakDemand),
		kpiRoute("load-factor", "Load factor", "Average power over peak power (calculate_load_factor).", loadFactorResponse{}, s.kpiLoadFactor),
		kpiRoute("energy-cost", "Energy cost", "Energy priced with the factory's tariffs, time-of-use in factory-local time (calculate_energy_cost).", energyCostResponse{}, s.kpiEnergyCost),
		kpiRoute("carbon", "Carbon intensity", "CO2 of the energy used, with the factory's grid-region factor (calculate_carbon_intensity).", carbonResponse{}, s.kpiCarbon),
		kpiRoute("all", "All KPIs", "Every KPI in one statement (calculate_all_kpis).", allKPIsResponse{}, s.kpiAll),
		{Method: "GET", Path: "/api/v1/kpi/factory/{id}", Tag: "KPI", Summary: "Factory summary",
			Description: "Machines, energy, cost, CO2 and average load factor of a factory over [start, end) (get_factory_summary).",
			Params:      []Param{pID("factory"), pStart, pEnd}, Response: factorySummaryResponse{},
			Timeout: 30 * time.Second, Handler: s.kpiFactory},
		{Method: "GET", Path: "/api/v1/kpi/daily", Tag: "KPI", Summary: "Daily KPI snapshots",
			Description: "One snapshot per factory-local day, written when the machine's day closes. " +
				"start and end select dates: start inclusive, end exclusive, at most 1000 days.",
			Params: []Param{pMachineID, pStart, pEnd, pLimit(MaxKPIDays, MaxKPIDays)}, Response: kpiDailyResponse{},
			Handler: s.kpiDaily},

		{Method: "GET", Path: "/api/v1/machines", Tag: "Machines", Summary: "List machines",
			Params: []Param{
				{Name: "factory_id", In: "query", Description: "only this factory's machines",
					Schema: map[string]any{"type": "string", "format": "uuid"}},
				{Name: "type", In: "query", Description: "only machines of this type",
					Schema: map[string]any{"type": "string", "enum": stringsAny(store.MachineTypes)}},
				{Name: "active", In: "query", Description: "only active (true) or inactive (false) machines",
					Schema: map[string]any{"type": "boolean"}},
				pLimit(MaxMachines, MaxMachines),
				{Name: "offset", In: "query", Description: "skip this many machines",
					Schema: map[string]any{"type": "integer", "minimum": 0, "default": 0}},
			},
			Response: machineListResponse{}, Handler: s.listMachines},
		{Method: "GET", Path: "/api/v1/machines/{id}", Tag: "Machines", Summary: "One machine with its status",
			Description: "The machine, its current status (machine_status) and its most recent status periods " +
				"(machine_status_history), newest first.",
			Params:   []Param{pID("machine"), pLimit(100, MaxStatusHistory)},
			Response: machineResponse{}, Handler: s.getMachine},
	}
}

func stringsAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
