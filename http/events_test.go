package http

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/enms/enms-analytics/triggers"
)

// outbox is the analytics_events fixture of the event-route tests, written
// with SQL as the worker leaves such rows.
type outbox struct {
	parkedHour   int64 // hour_closed of m1 at window0, parked 2 minutes ago, still leased by worker-a
	parkedStatus int64 // status_changed of m3, no bucket, parked 1 minute ago (the newest parked)
	done         int64 // hour_closed of m1 at window0+1h, done
	pending      int64 // status_changed of m1, waiting for the worker
}

const (
	parkedHourError   = "compressor model not found"
	parkedStatusError = "status change payload has no time (at)"
)

func seedOutbox(t *testing.T, pool *pgxpool.Pool) outbox {
	t.Helper()
	ctx := context.Background()
	insert := func(q string, args ...any) int64 {
		t.Helper()
		var id int64
		if err := pool.QueryRow(ctx, q, args...).Scan(&id); err != nil {
			t.Fatalf("seed outbox: %v\n%s", err, q)
		}
		return id
	}
	var o outbox
	o.parkedHour = insert(`INSERT INTO analytics_events (kind, machine_id, bucket, attempts, locked_until, locked_by,
	        run_after, parked_at, last_error)
	      VALUES ('hour_closed', $1, $2, 5, now() + interval '1 hour', 'worker-a',
	        now() + interval '1 hour', now() - interval '2 minutes', $3) RETURNING id`, m1ID, window0, parkedHourError)
	o.parkedStatus = insert(`INSERT INTO analytics_events (kind, machine_id, attempts, parked_at, last_error)
	      VALUES ('status_changed', $1, 5, now() - interval '1 minute', $2) RETURNING id`, m3ID, parkedStatusError)
	o.done = insert(`INSERT INTO analytics_events (kind, machine_id, bucket, attempts, done_at)
	      VALUES ('hour_closed', $1, $2, 1, now()) RETURNING id`, m1ID, window0.Add(time.Hour))
	o.pending = insert(`INSERT INTO analytics_events (kind, machine_id, attempts)
	      VALUES ('status_changed', $1, 0) RETURNING id`, m1ID)
	return o
}

// eventRow is the state of one analytics_events row as the retry leaves it.
type eventRow struct {
	parked, leased, dueLater bool
	attempts                 int
	lastError                string
}

func readEvent(t *testing.T, pool *pgxpool.Pool, id int64) eventRow {
	t.Helper()
	var r eventRow
	err := pool.QueryRow(context.Background(), `
		SELECT parked_at IS NOT NULL, locked_until IS NOT NULL OR locked_by IS NOT NULL, run_after > now(),
		       attempts, coalesce(last_error, '')
		  FROM analytics_events WHERE id = $1`, id).Scan(&r.parked, &r.leased, &r.dueLater, &r.attempts, &r.lastError)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func retryPath(id int64) string { return "/api/v1/events/" + strconv.FormatInt(id, 10) + "/retry" }

// TestParkedEventsList: the list holds exactly the parked events, newest
// first, with their errors, machine names and buckets; limit bounds it.
func TestParkedEventsList(t *testing.T) {
	t.Parallel()
	f := setup(t)
	o := seedOutbox(t, f.pool)

	status, b := f.get(t, "/api/v1/events/parked")
	if status != 200 {
		t.Fatalf("status %d: %v", status, b)
	}
	evs, ok := b["events"].([]any)
	if !ok || len(evs) != 2 || num(t, b, "count") != 2 {
		t.Fatalf("want the 2 parked events of 4 (one done and one pending are not parked), got %v", b)
	}
	newest, older := evs[0].(map[string]any), evs[1].(map[string]any)
	// parkedStatus was parked 1 minute ago, parkedHour 2 minutes ago.
	if num(t, newest, "id") != float64(o.parkedStatus) || num(t, older, "id") != float64(o.parkedHour) {
		t.Fatalf("order: ids %v, %v; want %d (newest) then %d", newest["id"], older["id"], o.parkedStatus, o.parkedHour)
	}
	for _, c := range []struct {
		ev                        map[string]any
		kind, machine, name, errS string
	}{
		{older, "hour_closed", m1ID, "Compressor 1", parkedHourError},
		{newest, "status_changed", m3ID, "Motor B", parkedStatusError},
	} {
		if str(t, c.ev, "kind") != c.kind || str(t, c.ev, "machine_id") != c.machine ||
			str(t, c.ev, "machine_name") != c.name || str(t, c.ev, "last_error") != c.errS {
			t.Errorf("parked event %v, want kind %s, machine %s (%s), last_error %q", c.ev, c.kind, c.machine, c.name, c.errS)
		}
		if num(t, c.ev, "attempts") != 5 {
			t.Errorf("attempts %v, want the 5 of the fixture", c.ev["attempts"])
		}
		created, err1 := time.Parse(time.RFC3339Nano, str(t, c.ev, "created_at"))
		parked, err2 := time.Parse(time.RFC3339Nano, str(t, c.ev, "parked_at"))
		if err1 != nil || err2 != nil || !parked.Before(created) {
			// The fixture parks each event 1–2 minutes before it was created.
			t.Errorf("created_at %v, parked_at %v: want RFC 3339 times, parked before created", c.ev["created_at"], c.ev["parked_at"])
		}
	}
	if str(t, older, "bucket") != window0.Format(time.RFC3339) {
		t.Errorf("bucket %v, want the hour %s", older["bucket"], window0.Format(time.RFC3339))
	}
	if v, ok := newest["bucket"]; !ok || v != nil {
		t.Errorf("a status_changed event has bucket %#v, want null", v)
	}

	// limit=1 keeps only the newest.
	status, b = f.get(t, "/api/v1/events/parked?limit=1")
	if status != 200 || num(t, b, "count") != 1 || num(t, b["events"].([]any)[0].(map[string]any), "id") != float64(o.parkedStatus) {
		t.Errorf("limit=1: %d %v, want only event %d", status, b, o.parkedStatus)
	}
	// The largest limit is accepted; one more is not.
	if status, b = f.get(t, "/api/v1/events/parked?limit=1000"); status != 200 || num(t, b, "count") != 2 {
		t.Errorf("limit=1000: %d %v", status, b)
	}
	status, b = f.get(t, "/api/v1/events/parked?limit=1001")
	wantError(t, "limit=1001", status, b, 400, CodeInvalid)

	// The response matches the OpenAPI document (bucket and machine_name
	// nullable, every field typed as sent).
	validate := responseValidator(t, f)
	resp, raw := getBody(t, f, "/api/v1/events/parked")
	if err := validate("/api/v1/events/parked", resp.StatusCode, resp.Header, raw); err != nil {
		t.Errorf("the parked list does not match the document: %v\n%s", err, raw)
	}
	// Negative control: an id as a string must fail, or the check above proves nothing.
	if err := validate("/api/v1/events/parked", resp.StatusCode, resp.Header, bytes.Replace(raw, []byte(`"id":`+strconv.FormatInt(o.parkedStatus, 10)),
		[]byte(`"id":"`+strconv.FormatInt(o.parkedStatus, 10)+`"`), 1)); err == nil {
		t.Error("a string id passed validation: the validator checks nothing")
	}
}

// TestRetryParkedEvent: a retry un-parks the event for an immediate retry,
// keeps its error, wakes the worker's channel, and is refused with 409 for
// events that are not parked and 404 for unknown ones.
func TestRetryParkedEvent(t *testing.T) {
	t.Parallel()
	f := setup(t)
	o := seedOutbox(t, f.pool)
	ctx := context.Background()

	// Listen as the worker does, before the retries.
	conn, err := f.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for _, ch := range triggers.ListenedChannels {
		if _, err := conn.Exec(ctx, `LISTEN `+string(ch)); err != nil {
			t.Fatal(err)
		}
	}
	notification := func(what string) (channel, payload string) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		n, err := conn.Conn().WaitForNotification(wctx)
		if err != nil {
			t.Fatalf("%s: no notification within 10 s: %v", what, err)
		}
		return n.Channel, n.Payload
	}

	before := readEvent(t, f.pool, o.parkedHour)
	if !before.parked || !before.leased || !before.dueLater || before.attempts != 5 {
		t.Fatalf("fixture: %+v, want parked, leased, run_after in the future, 5 attempts", before)
	}
	status, b := f.do(t, "POST", retryPath(o.parkedHour), "", nil, nil)
	if status != 200 || num(t, b, "id") != float64(o.parkedHour) || str(t, b, "status") != "pending" {
		t.Fatalf("retry: %d %v", status, b)
	}
	after := readEvent(t, f.pool, o.parkedHour)
	want := eventRow{parked: false, leased: false, dueLater: false, attempts: 0, lastError: parkedHourError}
	if after != want {
		t.Errorf("after retry the row is %+v, want %+v (un-parked, lease cleared, due now, attempts 0, error kept)", after, want)
	}
	if ch, p := notification("hour_closed retry"); ch != string(triggers.ChannelHourClosed) || p != m1ID {
		t.Errorf("notification %s %q, want %s %q", ch, p, triggers.ChannelHourClosed, m1ID)
	}
	// It left the parked list; the other parked event is still there.
	status, b = f.get(t, "/api/v1/events/parked")
	if status != 200 || num(t, b, "count") != 1 || num(t, b["events"].([]any)[0].(map[string]any), "id") != float64(o.parkedStatus) {
		t.Errorf("after retry the parked list is %d %v, want only event %d", status, b, o.parkedStatus)
	}

	// A status_changed event wakes the status channel.
	if status, b = f.do(t, "POST", retryPath(o.parkedStatus), "", nil, nil); status != 200 {
		t.Fatalf("retry status event: %d %v", status, b)
	}
	if ch, p := notification("status_changed retry"); ch != string(triggers.ChannelStatusChanged) || p != m3ID {
		t.Errorf("notification %s %q, want %s %q", ch, p, triggers.ChannelStatusChanged, m3ID)
	}

	// Not parked: done, pending, and the one just retried (pending now).
	for _, c := range []struct {
		what string
		id   int64
	}{{"done", o.done}, {"pending", o.pending}, {"retried twice", o.parkedHour}} {
		status, b := f.do(t, "POST", retryPath(c.id), "", nil, nil)
		wantError(t, c.what, status, b, 409, CodeConflict)
	}
	if r := readEvent(t, f.pool, o.done); r.attempts != 1 {
		t.Errorf("the refused retry changed the done event: attempts %d, want 1", r.attempts)
	}
	// Unknown: one past the largest id.
	status, b = f.do(t, "POST", retryPath(o.pending+1000), "", nil, nil)
	wantError(t, "unknown id", status, b, 404, CodeNotFound)
}

// TestRetryParkedHourAlreadyPending: an hour_closed event cannot be
// un-parked while another hour_closed event of the same machine-hour is
// pending (the outbox holds at most one): 409, and the event stays parked.
func TestRetryParkedHourAlreadyPending(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	hour := window0.Add(2 * time.Hour)
	var parked int64
	if err := f.pool.QueryRow(ctx, `INSERT INTO analytics_events (kind, machine_id, bucket, attempts, parked_at, last_error)
		VALUES ('hour_closed', $1, $2, 5, now(), 'boom') RETURNING id`, m1ID, hour).Scan(&parked); err != nil {
		t.Fatal(err)
	}
	if _, err := f.pool.Exec(ctx, `INSERT INTO analytics_events (kind, machine_id, bucket) VALUES ('hour_closed', $1, $2)`, m1ID, hour); err != nil {
		t.Fatal(err)
	}
	status, b := f.do(t, "POST", retryPath(parked), "", nil, nil)
	msg := wantError(t, "duplicate hour", status, b, 409, CodeConflict)
	if !bytes.Contains([]byte(msg), []byte("same machine and hour")) {
		t.Errorf("message %q does not say why", msg)
	}
	if r := readEvent(t, f.pool, parked); !r.parked || r.attempts != 5 {
		t.Errorf("the refused retry changed the event: %+v", r)
	}
}

// TestRetryNeedsToken: with API_TOKEN set, a retry without the token (or
// with a wrong one) is a 401 and changes nothing; with it, the event is
// un-parked.
func TestRetryNeedsToken(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *Config) { c.APIToken = "s3cret-token" })
	o := seedOutbox(t, f.pool)
	for _, c := range []struct {
		what   string
		header map[string]string
	}{{"no token", nil}, {"wrong token", map[string]string{"Authorization": "Bearer guess"}}} {
		status, b := f.do(t, "POST", retryPath(o.parkedHour), "", nil, c.header)
		wantError(t, c.what, status, b, 401, CodeUnauthorized)
		if r := readEvent(t, f.pool, o.parkedHour); !r.parked || r.attempts != 5 {
			t.Errorf("%s: the refused retry changed the event: %+v", c.what, r)
		}
	}
	// The list is a GET: no token needed.
	if status, b := f.get(t, "/api/v1/events/parked"); status != 200 || num(t, b, "count") != 2 {
		t.Errorf("list without token: %d %v", status, b)
	}
	status, b := f.do(t, "POST", retryPath(o.parkedHour), "", nil, map[string]string{"Authorization": "Bearer s3cret-token"})
	if status != 200 {
		t.Fatalf("retry with the token: %d %v", status, b)
	}
	if r := readEvent(t, f.pool, o.parkedHour); r.parked || r.attempts != 0 {
		t.Errorf("retry with the token left the event %+v, want un-parked with 0 attempts", r)
	}
}

// TestMetricsUnderAPIPrefix: /api/v1/metrics serves the same registry as
// /metrics, so a proxy that publishes only /api/v1/ reaches it.
func TestMetricsUnderAPIPrefix(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.get(t, "/api/v1/machines")
	get := func(path string) string {
		t.Helper()
		resp, err := f.ts.Client().Get(f.ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, raw)
		}
		return string(raw)
	}
	const want = `enms_http_requests_total{method="GET",route="/api/v1/machines",status="200"} 1`
	for _, p := range []string{"/api/v1/metrics", "/metrics"} {
		if body := get(p); !bytes.Contains([]byte(body), []byte(want)) {
			t.Errorf("%s lacks %s", p, want)
		}
	}
}
