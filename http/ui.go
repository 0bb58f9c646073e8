package http

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	nethttp "net/http"
	"path"
	"strings"

	"github.com/uptrace/bunrouter"

	"github.com/enms/enms-analytics/analytics"
)

// The UI: plain HTML pages, one style sheet and vanilla JS modules, embedded
// in the binary. Every URL a page uses is relative (static/app.js,
// ../baseline/models), so the pages work at /api/v1/ui/ and behind nginx's
// /api/analytics/ui/ alike. Each page sets body[data-ready] once its first
// data has been drawn (the end-to-end tests wait on it).

func init() { routeSets = append(routeSets, (*Server).uiRoutes) }

//go:embed ui
var uiFiles embed.FS

// uiPages are the UI's pages: the path below /api/v1/ui/, its title and the
// module that drives it.
var uiPages = []struct{ Path, Name, Title, Summary string }{
	{"", "overview", "Overview", "UI: overview of machines, active anomalies and the coming peaks"},
	{"baseline", "baseline", "Baseline workbench", "UI: train a baseline and inspect its fit, validity and charts"},
	{"anomaly", "anomaly", "Anomalies", "UI: anomaly episodes, resolve with a note, actual vs expected timeline"},
	{"forecast", "forecast", "Forecast", "UI: demand forecast with 80/95 % bands, the coming peak, optimal schedule"},
	{"kpi", "kpi", "KPIs", "UI: KPI cards per machine and per factory"},
}

var uiLayout = template.Must(template.ParseFS(uiFiles, "ui/layout.html"))

// renderUIPage renders one page of uiPages from the layout.
func renderUIPage(name, title string) []byte {
	var buf bytes.Buffer
	body, err := fs.ReadFile(uiFiles, "ui/"+name+".html")
	if err != nil {
		panic("ui page " + name + ": " + err.Error()) // embedded: a missing file is a build mistake
	}
	type navItem struct{ Href, Title string }
	var nav []navItem
	for _, p := range uiPages {
		href := p.Path
		if href == "" {
			href = "./"
		}
		nav = append(nav, navItem{href, p.Title})
	}
	err = uiLayout.Execute(&buf, map[string]any{
		"Page": name, "Title": title, "Nav": nav,
		"Body":    template.HTML(body), // our own embedded markup
		"Drivers": strings.Join(analytics.DriverNames, ","),
		"Charts":  name == "baseline" || name == "anomaly" || name == "forecast", // pages that import chart.js
	})
	if err != nil {
		panic("ui page " + name + ": " + err.Error())
	}
	return buf.Bytes()
}

func (s *Server) uiRoutes() []Route {
	var routes []Route
	for _, p := range uiPages {
		page := renderUIPage(p.Name, p.Title)
		routes = append(routes, Route{Method: "GET", Path: "/api/v1/ui/" + p.Path, Tag: "UI", Summary: p.Summary,
			Description: "HTML page of the analytics UI; it calls this API with relative URLs, so it also works behind a path prefix.",
			ContentType: "text/html", Handler: func(w nethttp.ResponseWriter, _ bunrouter.Request) error {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				w.Header().Set("Cache-Control", "no-cache")
				_, err := w.Write(page)
				return err
			}})
	}
	routes = append(routes, Route{Method: "GET", Path: "/api/v1/ui/static/{file}", Tag: "UI",
		Summary:     "UI assets (JavaScript modules, style sheet)",
		Description: "The UI's own scripts and styles, embedded in the binary; nothing is loaded from elsewhere.",
		Params: []Param{{Name: "file", In: "path", Required: true, Description: "file name, e.g. app.js",
			Schema: map[string]any{"type": "string"}}},
		ContentType: "text/javascript", Handler: serveUIStatic})
	return routes
}

var uiTypes = map[string]string{
	".js":  "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
	".svg": "image/svg+xml",
}

func serveUIStatic(w nethttp.ResponseWriter, req bunrouter.Request) error {
	name := req.Param("file")
	typ, ok := uiTypes[path.Ext(name)]
	var b []byte
	var err error
	if ok && fs.ValidPath(name) && !strings.Contains(name, "/") {
		b, err = fs.ReadFile(uiFiles, "ui/static/"+name)
	}
	if !ok || err != nil || b == nil {
		return notFoundf("there is no UI file %q", clip(name))
	}
	w.Header().Set("Content-Type", typ)
	w.Header().Set("Cache-Control", "no-cache")
	_, err = w.Write(b)
	return err
}
