package http

import (
	"strings"
	"testing"
	"time"
)

func TestMachinesList(t *testing.T) {
	t.Parallel()
	f := setup(t)
	names := func(path string) []string {
		t.Helper()
		status, b := f.get(t, path)
		if status != 200 {
			t.Fatalf("%s: status %d: %v", path, status, b)
		}
		var out []string
		for _, m := range at(t, b, "machines").([]any) {
			out = append(out, m.(map[string]any)["name"].(string))
		}
		if int(num(t, b, "count")) != len(out) {
			t.Errorf("%s: count %v for %d machines", path, b["count"], len(out))
		}
		return out
	}
	eq := func(path string, want ...string) {
		t.Helper()
		got := names(path)
		if len(got) != len(want) {
			t.Fatalf("%s: %v, want %v", path, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: %v, want %v", path, got, want)
			}
		}
	}
	// Ordered by factory name, then machine name.
	eq("/api/v1/machines", "Motor B", "Compressor 1", "Pump 7")
	eq("/api/v1/machines?factory_id="+plantID, "Compressor 1", "Pump 7")
	eq("/api/v1/machines?type=pump", "Pump 7")
	eq("/api/v1/machines?active=false", "Pump 7")
	eq("/api/v1/machines?active=true&factory_id="+plantID, "Compressor 1")
	eq("/api/v1/machines?limit=1&offset=1", "Compressor 1")
	if got := names("/api/v1/machines?factory_id=" + unknownID); len(got) != 0 {
		t.Errorf("unknown factory lists %v", got)
	}

	_, b := f.get(t, "/api/v1/machines?type=compressor")
	m := at(t, b, "machines").([]any)[0].(map[string]any)
	near(t, "rated_power_kw", num(t, m, "rated_power_kw"), 55)
	near(t, "data_interval_seconds", num(t, m, "data_interval_seconds"), 60)
	if str(t, m, "factory_timezone") != "UTC" || m["is_active"] != true {
		t.Errorf("machine %v", m)
	}
}

// TestMachineDetail: current status from machine_status and the history the
// 000005 trigger appends from two observations.
func TestMachineDetail(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := t.Context()
	t1 := time.Date(2026, 1, 5, 6, 0, 0, 0, time.UTC)
	t2 := t1.Add(90 * time.Minute)
	upsert := `INSERT INTO machine_status (machine_id, is_running, current_mode, current_power_kw, last_updated)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (machine_id) DO UPDATE SET is_running = excluded.is_running, current_mode = excluded.current_mode,
		current_power_kw = excluded.current_power_kw, last_updated = excluded.last_updated`
	if _, err := f.pool.Exec(ctx, upsert, m1ID, false, "idle", 0.0, t1); err != nil {
		t.Fatal(err)
	}
	if _, err := f.pool.Exec(ctx, upsert, m1ID, true, "running", 42.5, t2); err != nil {
		t.Fatal(err)
	}
	status, b := f.get(t, "/api/v1/machines/"+m1ID)
	if status != 200 {
		t.Fatalf("status %d: %v", status, b)
	}
	if str(t, b, "name") != "Compressor 1" || str(t, b, "factory_name") != "Plant A" {
		t.Errorf("machine %v", b)
	}
	if str(t, b, "current_status.current_mode") != "running" || at(t, b, "current_status.is_running") != true {
		t.Errorf("current status %v", b["current_status"])
	}
	near(t, "current_power_kw", num(t, b, "current_status.current_power_kw"), 42.5)
	if str(t, b, "current_status.last_updated") != "2026-01-05T07:30:00Z" {
		t.Errorf("last_updated %v", at(t, b, "current_status.last_updated"))
	}
	if at(t, b, "status_history_available") != true {
		t.Fatal("status history not available although migration 000005 creates it")
	}
	hist := at(t, b, "status_history").([]any)
	if len(hist) != 2 {
		t.Fatalf("history %v, want 2 periods", hist)
	}
	newest, oldest := hist[0].(map[string]any), hist[1].(map[string]any)
	if newest["mode"] != "running" || newest["valid_from"] != "2026-01-05T07:30:00Z" || newest["valid_to"] != nil {
		t.Errorf("newest period %v", newest)
	}
	if oldest["mode"] != "idle" || oldest["valid_from"] != "2026-01-05T06:00:00Z" || oldest["valid_to"] != "2026-01-05T07:30:00Z" {
		t.Errorf("oldest period %v", oldest)
	}
	status, b = f.get(t, "/api/v1/machines/"+m1ID+"?limit=1")
	if status != 200 || len(at(t, b, "status_history").([]any)) != 1 {
		t.Errorf("limit=1: %d %v", status, b)
	}

	// A machine that never reported: null status, empty history (not null).
	status, b = f.get(t, "/api/v1/machines/"+m2ID)
	if status != 200 || b["current_status"] != nil {
		t.Fatalf("m2: %d %v", status, b)
	}
	if h, ok := b["status_history"].([]any); !ok || len(h) != 0 {
		t.Errorf("m2 history %#v, want []", b["status_history"])
	}
	if b["rated_power_kw"] != nil {
		t.Errorf("m2 rated power %v, want null (not recorded)", b["rated_power_kw"])
	}

	status, b = f.get(t, "/api/v1/machines/"+unknownID)
	msg := wantError(t, "unknown machine", status, b, 404, CodeNotFound)
	if !strings.Contains(msg, unknownID) {
		t.Errorf("message %q does not name the id", msg)
	}
}
