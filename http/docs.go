package http

import (
	"bytes"
	"encoding/json"
	"html/template"
	nethttp "net/http"
	"sort"
	"strings"

	"github.com/uptrace/bunrouter"
)

// The docs page is rendered on the server from the OpenAPI document: no
// script, no CDN, no absolute URL. Every link is relative to /api/v1/docs,
// so the page works offline and behind nginx's /api/analytics/ prefix.

type docOperation struct {
	Method      string
	Path        string
	Link        string // relative link for parameterless GETs under /api/v1; "" otherwise
	Summary     string
	Description string
	Params      []docParam
	Responses   []docResponse
}

type docParam struct {
	Name, In, Type, Description string
	Required                    bool
}

type docResponse struct {
	Status string
	Fields string
}

type docTag struct {
	Name       string
	Operations []docOperation
}

var docsTemplate = template.Must(template.New("docs").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} {{.Version}}</title>
<style>
body { font: 15px/1.5 system-ui, sans-serif; margin: 0 auto; max-width: 60rem; padding: 1rem 2rem; color: #1d2430; }
h1 { margin-bottom: 0; } .sub { color: #5a6473; margin-top: .2rem; }
h2 { border-bottom: 2px solid #d8dee8; padding-bottom: .2rem; margin-top: 2rem; }
section.op { border: 1px solid #d8dee8; border-radius: 6px; padding: .6rem 1rem; margin: .8rem 0; }
.method { display: inline-block; min-width: 4rem; font-weight: 700; font-family: ui-monospace, monospace; }
.GET { color: #1d6f42; } .POST { color: #8a5a00; } .PUT { color: #1f5fa8; } .DELETE { color: #a32020; }
code, .path { font-family: ui-monospace, monospace; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0; font-size: 14px; }
th, td { text-align: left; padding: .2rem .5rem; border-bottom: 1px solid #eef1f5; vertical-align: top; }
.fields { font-family: ui-monospace, monospace; font-size: 13px; color: #3b4452; }
nav a { margin-right: 1rem; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<p class="sub">version {{.Version}} · <a href="openapi.json">OpenAPI document (openapi.json)</a> · <a href="health">health</a></p>
<p>{{.Description}}</p>
<p>Errors are JSON <code>{"error": {"code", "message"}}</code>. Times are RFC 3339; windows are <code>[start, end)</code>.</p>
<nav>{{range .Tags}}<a href="#{{.Name}}">{{.Name}}</a>{{end}}</nav>
{{range .Tags}}
<h2 id="{{.Name}}">{{.Name}}</h2>
{{range .Operations}}
<section class="op">
<div><span class="method {{.Method}}">{{.Method}}</span> {{if .Link}}<a class="path" href="{{.Link}}">{{.Path}}</a>{{else}}<span class="path">{{.Path}}</span>{{end}} — {{.Summary}}</div>
{{if .Description}}<p>{{.Description}}</p>{{end}}
{{if .Params}}<table><tr><th>parameter</th><th>in</th><th>type</th><th>required</th><th>description</th></tr>
{{range .Params}}<tr><td><code>{{.Name}}</code></td><td>{{.In}}</td><td>{{.Type}}</td><td>{{if .Required}}yes{{else}}no{{end}}</td><td>{{.Description}}</td></tr>
{{end}}</table>{{end}}
{{range .Responses}}<p><b>{{.Status}}</b> <span class="fields">{{.Fields}}</span></p>{{end}}
</section>
{{end}}
{{end}}
</body>
</html>
`))

// renderDocs builds the page from the OpenAPI document doc.
func renderDocs(doc []byte) ([]byte, error) {
	var d struct {
		Info struct {
			Title, Version, Description string
		}
		Tags  []struct{ Name string }
		Paths map[string]map[string]struct {
			Summary, Description string
			Tags                 []string
			Parameters           []struct {
				Name, In, Description string
				Required              bool
				Schema                map[string]any
			}
			Responses map[string]struct {
				Content map[string]struct {
					Schema map[string]any
				}
			}
		}
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, err
	}
	byTag := map[string][]docOperation{}
	paths := make([]string, 0, len(d.Paths))
	for p := range d.Paths {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		for _, m := range []string{"get", "post", "put", "delete"} {
			op, ok := d.Paths[p][m]
			if !ok {
				continue
			}
			o := docOperation{Method: strings.ToUpper(m), Path: p, Summary: op.Summary, Description: op.Description}
			required := false
			for _, pr := range op.Parameters {
				typ, _ := pr.Schema["type"].(string)
				if f, ok := pr.Schema["format"].(string); ok {
					typ += " (" + f + ")"
				}
				o.Params = append(o.Params, docParam{Name: pr.Name, In: pr.In, Type: typ, Description: pr.Description, Required: pr.Required})
				required = required || pr.Required
			}
			if rel, ok := strings.CutPrefix(p, "/api/v1/"); ok && m == "get" && !required && !strings.Contains(p, "{") {
				o.Link = rel
			}
			codes := make([]string, 0, len(op.Responses))
			for c := range op.Responses {
				codes = append(codes, c)
			}
			sort.Strings(codes)
			for _, c := range codes {
				r := docResponse{Status: c}
				for ct, body := range op.Responses[c].Content {
					r.Fields = ct
					if props, ok := body.Schema["properties"].(map[string]any); ok {
						names := make([]string, 0, len(props))
						for n := range props {
							names = append(names, n)
						}
						sort.Strings(names)
						r.Fields += ": " + strings.Join(names, ", ")
					} else if ref, ok := body.Schema["$ref"].(string); ok {
						r.Fields += ": " + strings.TrimPrefix(ref, "#/components/schemas/")
					}
				}
				o.Responses = append(o.Responses, r)
			}
			tag := "Other"
			if len(op.Tags) > 0 {
				tag = op.Tags[0]
			}
			byTag[tag] = append(byTag[tag], o)
		}
	}
	page := struct {
		Title, Version, Description string
		Tags                        []docTag
	}{Title: d.Info.Title, Version: d.Info.Version, Description: d.Info.Description}
	for _, t := range d.Tags {
		page.Tags = append(page.Tags, docTag{Name: t.Name, Operations: byTag[t.Name]})
	}
	var buf bytes.Buffer
	if err := docsTemplate.Execute(&buf, page); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (s *Server) serveDocs(w nethttp.ResponseWriter, _ bunrouter.Request) error {
	page, err := renderDocs(s.openapi)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(nethttp.StatusOK)
	_, err = w.Write(page)
	return err
}
