package http

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// checkInvalid fails unless err is a 400 *Error whose message is one line of
// text for a person: not empty, valid UTF-8, no line break.
func checkInvalid(t *testing.T, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not an *Error", err)
	}
	if e.Code != CodeInvalid {
		t.Fatalf("error code %q for bad query input, want %q", e.Code, CodeInvalid)
	}
	if e.Message == "" || !utf8.ValidString(e.Message) || strings.ContainsAny(e.Message, "\n\r") {
		t.Fatalf("message %q is not a one-line sentence", e.Message)
	}
}

// FuzzQueryParams feeds arbitrary query strings to the parsers every route
// uses (window, UUID, limit, offset, horizon enum, boolean): none panics,
// every rejection is a 400 with a sentence, an accepted window has
// start < end within its span, an accepted UUID is canonical lower case, an
// accepted limit lies in [1, max].
func FuzzQueryParams(f *testing.F) {
	for _, q := range []string{
		"start=2026-01-01&end=2026-01-02&machine_id=3f2b8c1e-9d4a-4e6b-8f0a-1c2d3e4f5a6b&limit=10&horizon=24h",
		"start=2026-01-31T08:00:00Z&end=2026-01-31T09:00:00%2B01:00",
		"start=2026-01-02&end=2026-01-01",
		"start=2026-01-01&end=2026-01-01",
		"start=2026-01-01&end=2027-06-01",
		"start=0000-01-01&end=9999-12-31T23:59:59.999999999Z",
		"start=2026-01-31T08:00:00 01:00&end=x",
		"machine_id=3F2B8C1E-9D4A-4E6B-8F0A-1C2D3E4F5A6B&limit=0&offset=-1",
		"machine_id=%ZZ&limit=99999999999999999999&horizon=1y&active=maybe",
		"limit=+5&offset=007&active=TRUE&horizon=7d",
		"machine_id=" + strings.Repeat("é", 70),
		"",
	} {
		f.Add(q)
	}
	const maxSpan = MaxKPIWindow  // a route's span limit
	const maxLimit = MaxAnomalies // a route's limit bound
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return // the router would not get this far either
		}
		p := params{q: q}

		start, end, err := p.window(maxSpan)
		if err != nil {
			checkInvalid(t, err)
		} else if !start.Before(end) || end.Sub(start) > maxSpan || start.Location() != time.UTC || end.Location() != time.UTC {
			t.Fatalf("accepted window [%v, %v) from %q", start, end, raw)
		}

		if id, err := p.uuid("machine_id"); err != nil {
			checkInvalid(t, err)
		} else if id != strings.ToLower(q.Get("machine_id")) || len(id) != 36 || !uuidPattern.MatchString(id) {
			t.Fatalf("accepted UUID %q from %q", id, q.Get("machine_id"))
		}
		if id, err := p.optionalUUID("machine_id"); err != nil {
			checkInvalid(t, err)
		} else if id == "" && q.Get("machine_id") != "" {
			t.Fatalf("optional UUID %q dropped", q.Get("machine_id"))
		}

		if n, err := p.limit(50, maxLimit); err != nil {
			checkInvalid(t, err)
		} else if n < 1 || n > maxLimit {
			t.Fatalf("accepted limit %d from %q", n, q.Get("limit"))
		}
		if n, err := p.offset(); err != nil {
			checkInvalid(t, err)
		} else if n < 0 || n > 1_000_000 {
			t.Fatalf("accepted offset %d from %q", n, q.Get("offset"))
		}

		if h, err := p.enum("horizon", forecastHorizons, "24h", false); err != nil {
			checkInvalid(t, err)
		} else if horizonOf(resolutionOf(h)) != h {
			t.Fatalf("accepted horizon %q, which maps to resolution %q and back to %q", h, resolutionOf(h), horizonOf(resolutionOf(h)))
		}
		if _, err := p.boolean("active"); err != nil {
			checkInvalid(t, err)
		}
	})
}
