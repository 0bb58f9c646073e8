package http

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	nethttp "net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bunrouter"
)

// The request-parsing helpers below give every handler the same checks and
// the same sentences for bad input. Each returns an *Error with CodeInvalid
// (or the code named in its comment).

// MaxBodyBytes is the largest request body a JSON route accepts.
const MaxBodyBytes = 1 << 20

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// parseUUID checks that value (of the parameter called name) is a UUID and
// returns it in lower case.
func parseUUID(name, value string) (string, error) {
	if value == "" {
		return "", invalidf("%s is required: a UUID such as 3f2b8c1e-9d4a-4e6b-8f0a-1c2d3e4f5a6b", name)
	}
	if !uuidPattern.MatchString(value) {
		return "", invalidf("%s %q is not a UUID; expected 32 hex digits in the form 8-4-4-4-12, such as 3f2b8c1e-9d4a-4e6b-8f0a-1c2d3e4f5a6b", name, clip(value))
	}
	return strings.ToLower(value), nil
}

// clip shortens a client's value before it is echoed in a message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// params reads the query string of one request.
type params struct {
	q url.Values
}

func queryOf(req bunrouter.Request) params { return params{q: req.URL.Query()} }

// uuid returns the required UUID query parameter name.
func (p params) uuid(name string) (string, error) { return parseUUID(name, p.q.Get(name)) }

// optionalUUID returns the UUID query parameter name, or "" when absent.
func (p params) optionalUUID(name string) (string, error) {
	if p.q.Get(name) == "" {
		return "", nil
	}
	return parseUUID(name, p.q.Get(name))
}

// pathUUID returns the route parameter name, checked to be a UUID.
func pathUUID(req bunrouter.Request, name string) (string, error) {
	return parseUUID(name, req.Param(name))
}

// parseTime accepts an RFC 3339 time (2026-01-31T08:00:00Z, with any
// offset) or a date (2026-01-31, meaning midnight UTC).
func parseTime(name, value string) (time.Time, error) {
	if value == "" {
		return time.Time{}, invalidf("%s is required: an RFC 3339 time such as 2026-01-31T08:00:00Z, or a date such as 2026-01-31", name)
	}
	if t, err := time.Parse(time.RFC3339Nano, value); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, value); err == nil {
		return t, nil
	}
	return time.Time{}, invalidf("%s %q is not a time; use RFC 3339 such as 2026-01-31T08:00:00Z (or +01:00 for an offset; in a URL write + as %%2B), or a date such as 2026-01-31", name, clip(value))
}

// window returns the required half-open window [start, end) from the query
// parameters start and end: start before end, spanning at most maxSpan.
func (p params) window(maxSpan time.Duration) (start, end time.Time, err error) {
	if start, err = parseTime("start", p.q.Get("start")); err != nil {
		return
	}
	if end, err = parseTime("end", p.q.Get("end")); err != nil {
		return
	}
	return start, end, checkWindow(start, end, maxSpan)
}

// checkWindow checks a half-open window [start, end), however its ends were
// given: start before end, spanning at most maxSpan.
func checkWindow(start, end time.Time, maxSpan time.Duration) error {
	if !start.Before(end) {
		return invalidf("start (%s) must be before end (%s); the window is [start, end)",
			start.Format(time.RFC3339), end.Format(time.RFC3339))
	}
	if end.Sub(start) > maxSpan {
		return invalidf("the window from %s to %s is longer than the %s this route allows; ask for a shorter one",
			start.Format(time.RFC3339), end.Format(time.RFC3339), spanText(maxSpan))
	}
	return nil
}

func spanText(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}

// limit returns the query parameter limit: def when absent, else a whole
// number from 1 to max.
func (p params) limit(def, max int) (int, error) { return p.whole("limit", def, 1, max) }

// offset returns the query parameter offset: 0 when absent, else a whole
// number from 0 to 1,000,000.
func (p params) offset() (int, error) { return p.whole("offset", 0, 0, 1_000_000) }

// whole returns the query parameter name: def when absent, else a whole
// number from lo to hi.
func (p params) whole(name string, def, lo, hi int) (int, error) {
	s := p.q.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, invalidf("%s %q is not valid; use a whole number from %d to %d", name, clip(s), lo, hi)
	}
	return n, nil
}

// enum returns the query parameter name, which must be one of allowed; def
// when absent ("" with required = true makes it required).
func (p params) enum(name string, allowed []string, def string, required bool) (string, error) {
	s := p.q.Get(name)
	if s == "" {
		if required {
			return "", invalidf("%s is required; use one of %s", name, strings.Join(allowed, ", "))
		}
		return def, nil
	}
	for _, a := range allowed {
		if s == a {
			return s, nil
		}
	}
	return "", invalidf("%s %q is not known; use one of %s", name, clip(s), strings.Join(allowed, ", "))
}

// boolean returns the query parameter name as true/false, or nil when absent.
func (p params) boolean(name string) (*bool, error) {
	s := p.q.Get(name)
	if s == "" {
		return nil, nil
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		return nil, invalidf("%s %q is not valid; use true or false", name, clip(s))
	}
	return &v, nil
}

// decodeJSON reads a JSON request body into dst: the content type must be
// application/json (415 otherwise), the body at most MaxBodyBytes (413),
// well-formed, without unknown fields, and one value.
func decodeJSON(w nethttp.ResponseWriter, r *nethttp.Request, dst any) error {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		if ct == "" {
			ct = "none"
		}
		return Errorf(CodeUnsupportedMedia, "the body must be JSON sent with Content-Type: application/json (got %s)", clip(ct))
	}
	dec := json.NewDecoder(nethttp.MaxBytesReader(w, r.Body, MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return invalidf("the body must hold exactly one JSON object")
	}
	if _, err := dec.Token(); err != nil && !errors.Is(err, io.EOF) {
		return jsonError(err)
	}
	return nil
}

func jsonError(err error) error {
	var tooBig *nethttp.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		return Errorf(CodeTooLarge, "the body is larger than the %d bytes this API accepts", MaxBodyBytes)
	case errors.Is(err, io.EOF):
		return invalidf("the body is empty; send a JSON object")
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return invalidf("the body is not valid JSON: %v", err)
	case errors.As(err, &typ):
		return invalidf("field %q must be a %s, not a JSON %s", typ.Field, typ.Type, typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return invalidf("the body has a %s; see the OpenAPI document for the fields this route takes", strings.TrimPrefix(err.Error(), "json: "))
	default:
		return invalidf("the body could not be read as JSON: %v", err)
	}
}
