package main

import (
	"bytes"
	"context"
	"io"
	nethttp "net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enms/enms-analytics/internal/testdb"
)

// syncBuffer is an io.Writer for output written from several goroutines; it
// signals when the output first contains want.
type syncBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func newSyncBuffer(want string) *syncBuffer {
	return &syncBuffer{want: want, seen: make(chan struct{})}
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if strings.Contains(b.buf.String(), b.want) {
		b.once.Do(func() { close(b.seen) })
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestSimulateBackfillsAndResumes runs `simulate` twice over the same day:
// the second run finds the data and writes nothing.
func TestSimulateBackfillsAndResumes(t *testing.T) {
	t.Parallel()
	url := testdb.URL(t)
	env := func(k string) string {
		if k == "DATABASE_URL" {
			return url
		}
		return ""
	}
	args := []string{"simulate", "--seed-plant", "--days", "1", "--machines", "Conveyor-A, Hydraulic-Pump-1", "--step", "15m"}
	var out bytes.Buffer
	if err := run(context.Background(), args, env, &out, io.Discard); err != nil {
		t.Fatalf("simulate: %v\n%s", err, out.String())
	}
	pool := testdb.Pool(t, url)
	var readings, machines int
	if err := pool.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT machine_id) FROM energy_readings`).Scan(&readings, &machines); err != nil {
		t.Fatal(err)
	}
	// A day ending now at 15 min: 96 steps, or 95 when now is not on a
	// quarter hour (the first step starts at the next one), per machine.
	if machines != 2 || readings < 2*95 || readings > 2*96 {
		t.Errorf("%d readings of %d machines, want 190–192 of 2\n%s", readings, machines, out.String())
	}
	out.Reset()
	if err := run(context.Background(), args, env, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "nothing to do") {
		t.Errorf("second run: %q; want nothing to do", out.String())
	}
	err := run(context.Background(), []string{"simulate", "--days", "1", "--machines", "Boiler-9"}, env, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "Compressor-1") {
		t.Errorf("unknown machine: %v; want an error listing the known machines", err)
	}
}

// TestDevServesLiveDataAndStops runs `dev` on a test database with one day
// of quarter-hour history: it prints the URLs once /health answers, the
// API serves the demo plant, and cancelling stops everything with no error.
func TestDevServesLiveDataAndStops(t *testing.T) {
	t.Parallel()
	url := testdb.URL(t)
	env := map[string]string{"DATABASE_URL": url, "API_PORT": "0", "LOG_LEVEL": "error"}
	out := newSyncBuffer("Ctrl-C stops everything")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"dev", "--days", "1", "--history-step", "15m"}, func(k string) string { return env[k] }, out, io.Discard)
	}()
	select {
	case <-out.seen:
	case err := <-done:
		cancel()
		t.Fatalf("dev stopped before it was ready: %v\n%s", err, out.String())
	case <-time.After(90 * time.Second):
		cancel()
		t.Fatalf("dev not ready within 90 s:\n%s", out.String())
	}
	health := regexp.MustCompile(`http://localhost:\d+/health`).FindString(out.String())
	client := &nethttp.Client{Timeout: 60 * time.Second, Transport: &nethttp.Transport{}} // generous: the worker is busy with the fresh history
	defer client.CloseIdleConnections()
	for _, u := range []string{health, strings.Replace(health, "/health", "/api/v1/machines", 1)} {
		resp, err := client.Get(u)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %d %s", u, resp.StatusCode, body)
		}
		if strings.HasSuffix(u, "/machines") && !strings.Contains(string(body), "Injection-Molding-1") {
			t.Errorf("machines: %s", body)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("dev returned %v after cancel; want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("dev did not stop within 30 s of cancel")
	}
	pool := testdb.Pool(t, url)
	var machines, statuses int
	if err := pool.QueryRow(context.Background(), `SELECT (SELECT count(DISTINCT machine_id) FROM energy_readings), (SELECT count(*) FROM machine_status)`).Scan(&machines, &statuses); err != nil {
		t.Fatal(err)
	}
	if machines != 7 || statuses != 7 {
		t.Errorf("after dev: readings of %d machines, %d status rows; want 7 and 7", machines, statuses)
	}
}
