package triggers_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/enms/enms-analytics/triggers"
)

func TestParseStatusChange(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 5, 1, 30, 0, 0, time.UTC)
	sc, err := triggers.ParseStatusChange([]byte(`{"old_mode": "running", "new_mode": "maintenance", "old_running": true, "new_running": false, "at": "2026-01-05T02:30:00+01:00"}`))
	if err != nil {
		t.Fatal(err)
	}
	if sc.OldMode == nil || *sc.OldMode != triggers.ModeRunning || sc.NewMode != triggers.ModeMaintenance ||
		sc.OldRunning == nil || !*sc.OldRunning || sc.NewRunning || !sc.At.Equal(at) {
		t.Errorf("parsed %+v", sc)
	}
	first, err := triggers.ParseStatusChange([]byte(`{"old_mode": null, "new_mode": "idle", "old_running": null, "new_running": false, "at": "2026-01-05T01:30:00Z"}`))
	if err != nil || first.OldMode != nil || first.OldRunning != nil {
		t.Errorf("first status: %+v, %v; want no old state", first, err)
	}

	bad := map[string]string{
		`not json`: "not a JSON object",
		`{"new_running": true, "at": "2026-01-05T01:30:00Z"}`:                                                       "no new_mode",
		`{"new_mode": "asleep", "new_running": true, "at": "2026-01-05T01:30:00Z"}`:                                 `"asleep" is not an operating mode`,
		`{"new_mode": "idle", "at": "2026-01-05T01:30:00Z"}`:                                                        "no new_running",
		`{"new_mode": "idle", "new_running": false}`:                                                                "no time (at)",
		`{"new_mode": "idle", "new_running": false, "at": "yesterday"}`:                                             "not an RFC 3339 timestamp",
		`{"old_mode": "idle", "new_mode": "idle", "new_running": false, "at": "2026-01-05T01:30:00Z"}`:              "only one of old_mode and old_running",
		`{"old_mode": "broken", "old_running": true, "new_mode": "idle", "new_running": false, "at": "2026-01-05"}`: "old_mode",
	}
	for in, want := range bad {
		if _, err := triggers.ParseStatusChange([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseStatusChange(%s) error = %v, want it to say %q", in, err, want)
		}
	}
}

func TestParseNotifications(t *testing.T) {
	t.Parallel()
	const id = "3f2b8c1e-2f57-4e43-9a55-3f1c2d4e5f60"
	if n, err := triggers.ParseMachineNotification(strings.ToUpper(id)); err != nil || n.MachineID != id {
		t.Errorf("ParseMachineNotification = %+v, %v", n, err)
	}
	if n, err := triggers.ParseRequestNotification(id); err != nil || n.RequestID != id {
		t.Errorf("ParseRequestNotification = %+v, %v", n, err)
	}
	if n, err := triggers.ParseAnomalyNotification(id); err != nil || n.AnomalyID != id {
		t.Errorf("ParseAnomalyNotification = %+v, %v", n, err)
	}
	for _, bad := range []string{"", "42", id + "0", "{" + id + "}", strings.Replace(id, "-", "", 1), strings.Repeat("z", 100)} {
		if _, err := triggers.ParseMachineNotification(bad); err == nil || !strings.Contains(err.Error(), "is not a UUID") {
			t.Errorf("ParseMachineNotification(%q) error = %v, want a sentence saying it is not a UUID", bad, err)
		}
	}
}

func TestEventValidate(t *testing.T) {
	t.Parallel()
	const m = "3f2b8c1e-2f57-4e43-9a55-3f1c2d4e5f60"
	hour := time.Date(2026, 1, 5, 3, 0, 0, 0, time.UTC)
	good := []triggers.Event{
		{ID: 1, Kind: triggers.KindHourClosed, MachineID: m, Bucket: hour},
		{ID: 2, Kind: triggers.KindHourRevised, MachineID: m, Bucket: hour},
		{ID: 3, Kind: triggers.KindStatusChanged, MachineID: m, Payload: []byte(`{"new_mode": "fault", "new_running": false, "at": "2026-01-05T03:10:00Z"}`)},
	}
	for _, ev := range good {
		if err := ev.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", ev, err)
		}
	}
	bad := map[string]triggers.Event{
		"is not an event kind":        {ID: 4, Kind: "hour_opened", MachineID: m, Bucket: hour},
		"is not a UUID":               {ID: 5, Kind: triggers.KindHourClosed, MachineID: "m1", Bucket: hour},
		"its bucket is empty":         {ID: 6, Kind: triggers.KindHourClosed, MachineID: m},
		"is not the start of an hour": {ID: 7, Kind: triggers.KindHourRevised, MachineID: m, Bucket: hour.Add(time.Minute)},
		"no new_mode":                 {ID: 8, Kind: triggers.KindStatusChanged, MachineID: m, Payload: []byte(`{}`)},
	}
	for want, ev := range bad {
		if err := ev.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate(%+v) = %v, want it to say %q", ev, err, want)
		}
	}
	if _, err := good[0].StatusChange(); err == nil {
		t.Error("StatusChange of an hour_closed event succeeded")
	}
}

// FuzzParseStatusChange: the parser never panics, and whatever it accepts
// survives a round trip through JSON unchanged.
func FuzzParseStatusChange(f *testing.F) {
	f.Add([]byte(`{"old_mode": "running", "new_mode": "maintenance", "old_running": true, "new_running": false, "at": "2026-01-05T02:30:00+01:00"}`))
	f.Add([]byte(`{"old_mode": null, "new_mode": "idle", "old_running": null, "new_running": false, "at": "2026-01-05T01:30:00.123456Z"}`))
	f.Add([]byte(`{"new_mode": "fault"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		sc, err := triggers.ParseStatusChange(payload)
		if err != nil {
			return
		}
		b, err := json.Marshal(sc)
		if err != nil {
			t.Fatalf("marshal %+v: %v", sc, err)
		}
		again, err := triggers.ParseStatusChange(b)
		if err != nil {
			t.Fatalf("re-parse %s: %v", b, err)
		}
		if !again.At.Equal(sc.At) || again.NewMode != sc.NewMode || again.NewRunning != sc.NewRunning ||
			(again.OldMode == nil) != (sc.OldMode == nil) || (again.OldRunning == nil) != (sc.OldRunning == nil) {
			t.Fatalf("round trip changed %+v into %+v", sc, again)
		}
	})
}
