package http

import (
	"encoding/json"
	nethttp "net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bunrouter"
)

// The OpenAPI 3.0 document is built from the route table; response and
// body schemas are derived from the Go types the handlers encode, so the
// document describes what the API actually sends.

var (
	timeType = reflect.TypeOf(time.Time{})
	rawType  = reflect.TypeOf(json.RawMessage{})
)

// schemaOf returns the OpenAPI schema of t as encoding/json encodes it.
func schemaOf(t reflect.Type) map[string]any {
	nullable := false
	for t.Kind() == reflect.Pointer {
		t, nullable = t.Elem(), true
	}
	var s map[string]any
	switch {
	case t == timeType:
		s = map[string]any{"type": "string", "format": "date-time"}
	case t == rawType:
		s = map[string]any{"type": "object", "additionalProperties": true}
	default:
		switch t.Kind() {
		case reflect.Bool:
			s = map[string]any{"type": "boolean"}
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			s = map[string]any{"type": "integer"}
		case reflect.Float32, reflect.Float64:
			s = map[string]any{"type": "number"}
		case reflect.String:
			s = map[string]any{"type": "string"}
		case reflect.Slice, reflect.Array:
			s = map[string]any{"type": "array", "items": schemaOf(t.Elem())}
		case reflect.Map:
			s = map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem())}
		case reflect.Struct:
			props := map[string]any{}
			var required []string
			addFields(t, props, &required)
			sort.Strings(required)
			s = map[string]any{"type": "object", "properties": props}
			if len(required) > 0 {
				s["required"] = required
			}
		default:
			s = map[string]any{}
		}
	}
	if nullable {
		s["nullable"] = true
	}
	return s
}

// addFields adds the JSON fields of struct t (embedded structs inlined).
func addFields(t reflect.Type, props map[string]any, required *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				addFields(ft, props, required)
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		props[name] = schemaOf(f.Type)
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
			*required = append(*required, name)
		}
	}
}

// buildOpenAPI renders the document of every registered route.
func (s *Server) buildOpenAPI() []byte {
	paths := map[string]map[string]any{}
	var tags []string
	seenTag := map[string]bool{}
	errorResponse := map[string]any{
		"description": "an error: {\"error\": {\"code\", \"message\"}}",
		"content": map[string]any{"application/json": map[string]any{
			"schema": map[string]any{"$ref": "#/components/schemas/Error"}}},
	}
	for _, rt := range s.routes {
		if !seenTag[rt.Tag] {
			seenTag[rt.Tag] = true
			tags = append(tags, rt.Tag)
		}
		op := map[string]any{
			"summary":     rt.Summary,
			"operationId": operationID(rt),
			"tags":        []string{rt.Tag},
		}
		if rt.Description != "" {
			op["description"] = rt.Description
		}
		var params []any
		for _, p := range rt.Params {
			pm := map[string]any{"name": p.Name, "in": p.In, "required": p.Required || p.In == "path", "schema": p.Schema}
			if p.Description != "" {
				pm["description"] = p.Description
			}
			params = append(params, pm)
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if rt.Body != nil {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{
				"application/json": map[string]any{"schema": schemaOf(reflect.TypeOf(rt.Body))}}}
		}
		status := rt.Status
		if status == 0 {
			status = nethttp.StatusOK
		}
		ok := map[string]any{"description": nethttp.StatusText(status)}
		switch {
		case rt.Response != nil:
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": schemaOf(reflect.TypeOf(rt.Response))}}
		case rt.ContentType != "":
			ok["content"] = map[string]any{rt.ContentType: map[string]any{"schema": map[string]any{"type": "string"}}}
		}
		responses := map[string]any{strconv.Itoa(status): ok, "default": errorResponse}
		op["responses"] = responses
		if mutating(rt.Method) {
			op["security"] = []any{map[string]any{"bearer": []any{}}}
		}
		if paths[rt.Path] == nil {
			paths[rt.Path] = map[string]any{}
		}
		paths[rt.Path][strings.ToLower(rt.Method)] = op
	}
	tagList := make([]any, len(tags))
	for i, t := range tags {
		tagList[i] = map[string]any{"name": t}
	}
	doc := map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{
			"title":       "EnMS Analytics API",
			"version":     s.cfg.Version,
			"description": "Energy KPIs, baselines, anomalies and forecasts of the EnMS analytics worker. Behind nginx every /api/v1/ path is also at /api/analytics/.",
		},
		"servers": []any{map[string]any{"url": "/"}},
		"tags":    tagList,
		"paths":   paths,
		"components": map[string]any{
			"schemas": map[string]any{"Error": schemaOf(reflect.TypeOf(errorBody{}))},
			"securitySchemes": map[string]any{"bearer": map[string]any{
				"type": "http", "scheme": "bearer",
				"description": "API_TOKEN; required on mutating routes when the service sets it"}},
		},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		panic("openapi: " + err.Error()) // only maps and strings: cannot fail
	}
	return b
}

// operationID is the method and path as an identifier: get_api_v1_kpi_sec.
func operationID(rt Route) string {
	r := strings.NewReplacer("/", "_", "-", "_", "{", "", "}", "", ".", "_")
	return strings.ToLower(rt.Method) + r.Replace(rt.Path)
}

func (s *Server) serveOpenAPI(w nethttp.ResponseWriter, _ bunrouter.Request) error {
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write(s.openapi)
	return err
}
