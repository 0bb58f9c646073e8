package triggers_test

import (
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/enms/enms-analytics/triggers"
)

// checkSentence fails unless err reads as one line of text for a person:
// not empty, valid UTF-8, no line break.
func checkSentence(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	if msg == "" || !utf8.ValidString(msg) || strings.ContainsAny(msg, "\n\r") {
		t.Fatalf("error %q is not a one-line sentence", msg)
	}
}

// FuzzStatusChangeInvariants complements FuzzParseStatusChange (in
// triggers_test.go, the round trip): whatever is accepted has known modes and an
// all-or-nothing old state; whatever is rejected gets a sentence.
func FuzzStatusChangeInvariants(f *testing.F) {
	for _, s := range []string{
		`{"old_mode": "running", "new_mode": "maintenance", "old_running": true, "new_running": false, "at": "2026-01-05T02:30:00+01:00"}`,
		`{"old_mode": null, "new_mode": "idle", "old_running": null, "new_running": false, "at": "2026-01-05T00:00:00Z"}`,
		`{"new_mode": "fault", "new_running": false, "at": "2026-01-05T00:00:00.123456Z"}`,
		`{"old_mode": "running", "new_mode": "idle", "new_running": false, "at": "2026-01-05T00:00:00Z"}`,
		`{"new_mode": "RUNNING", "new_running": true, "at": "2026-01-05T00:00:00Z"}`,
		`{"new_mode": "running", "new_running": true, "at": 17}`,
		`{"new_mode": "running", "new_running": "yes", "at": "2026-01-05T00:00:00Z"}`,
		`{"new_mode": "running", "new_running": true}`,
		`[]`, `null`, ``, `{`, `"x"`, `{"at": null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		sc, err := triggers.ParseStatusChange(payload)
		if err != nil {
			checkSentence(t, err)
			return
		}
		if !slices.Contains(triggers.Modes, sc.NewMode) {
			t.Fatalf("accepted new_mode %q, which is not a mode", sc.NewMode)
		}
		if (sc.OldMode == nil) != (sc.OldRunning == nil) {
			t.Fatalf("accepted a change with only one of old_mode and old_running: %+v", sc)
		}
		if sc.OldMode != nil && !slices.Contains(triggers.Modes, *sc.OldMode) {
			t.Fatalf("accepted old_mode %q, which is not a mode", *sc.OldMode)
		}
	})
}

// FuzzParseNotifications: a notification payload is accepted only as a
// canonical UUID, returned in lower case (so a re-parse is the identity), and
// every parser of a UUID payload agrees; anything else is a sentence.
func FuzzParseNotifications(f *testing.F) {
	for _, s := range []string{
		"3f2b8c1e-9d4a-4e6b-8f0a-1c2d3e4f5a6b",
		"3F2B8C1E-9D4A-4E6B-8F0A-1C2D3E4F5A6B",
		"3f2b8c1e9d4a4e6b8f0a1c2d3e4f5a6b",
		"{3f2b8c1e-9d4a-4e6b-8f0a-1c2d3e4f5a6b}",
		"3f2b8c1e-9d4a-4e6b-8f0a-1c2d3e4f5a6b\n",
		"", "null", strings.Repeat("é", 80),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		m, errM := triggers.ParseMachineNotification(payload)
		r, errR := triggers.ParseRequestNotification(payload)
		a, errA := triggers.ParseAnomalyNotification(payload)
		id, errU := triggers.ParseUUID(payload)
		if (errM == nil) != (errU == nil) || (errR == nil) != (errU == nil) || (errA == nil) != (errU == nil) {
			t.Fatalf("parsers disagree on %q: machine %v, request %v, anomaly %v, uuid %v", payload, errM, errR, errA, errU)
		}
		if errU != nil {
			for _, err := range []error{errM, errR, errA, errU} {
				checkSentence(t, err)
			}
			return
		}
		if id != strings.ToLower(payload) || len(id) != 36 || m.MachineID != id || r.RequestID != id || a.AnomalyID != id {
			t.Fatalf("%q accepted as %q / %q / %q / %q", payload, id, m.MachineID, r.RequestID, a.AnomalyID)
		}
		if again, err := triggers.ParseUUID(id); err != nil || again != id {
			t.Fatalf("re-parsing %q gave %q, %v", id, again, err)
		}
	})
}

// FuzzEventValidate: an outbox row of any kind, machine, bucket and payload
// is either valid — a known kind, a UUID machine, an hour-aligned bucket for
// hour events, a parsable payload for status changes — or rejected with a
// sentence.
func FuzzEventValidate(f *testing.F) {
	const m = "3f2b8c1e-9d4a-4e6b-8f0a-1c2d3e4f5a6b"
	hour := time.Date(2026, 1, 5, 3, 0, 0, 0, time.UTC).UnixNano()
	f.Add("hour_closed", m, hour, []byte(nil))
	f.Add("hour_revised", m, hour+int64(time.Minute), []byte(nil))
	f.Add("hour_closed", m, int64(0), []byte(nil))
	f.Add("status_changed", m, int64(0), []byte(`{"new_mode": "idle", "new_running": false, "at": "2026-01-05T00:00:00Z"}`))
	f.Add("status_changed", m, int64(0), []byte(`{}`))
	f.Add("hour_opened", "not-a-uuid", hour, []byte(nil))
	f.Fuzz(func(t *testing.T, kind, machine string, bucketNanos int64, payload []byte) {
		var bucket time.Time
		if bucketNanos != 0 {
			bucket = time.Unix(0, bucketNanos).UTC()
		}
		ev := triggers.Event{ID: 1, Kind: triggers.Kind(kind), MachineID: machine, Bucket: bucket, Payload: payload}
		err := ev.Validate()
		if err != nil {
			checkSentence(t, err)
			return
		}
		if _, err := triggers.ParseKind(kind); err != nil {
			t.Fatalf("event of kind %q validated", kind)
		}
		if _, err := triggers.ParseUUID(machine); err != nil {
			t.Fatalf("event of machine %q validated", machine)
		}
		switch ev.Kind {
		case triggers.KindHourClosed, triggers.KindHourRevised:
			if bucket.IsZero() || !bucket.Equal(bucket.Truncate(time.Hour)) {
				t.Fatalf("%s event with bucket %v validated", kind, bucket)
			}
		case triggers.KindStatusChanged:
			if _, err := ev.StatusChange(); err != nil {
				t.Fatalf("status_changed event validated, but its payload does not parse: %v", err)
			}
		}
	})
}
