// Package workertest runs a listener.Worker for the length of a test or
// benchmark: started, waited for until it listens, stopped (and its Run
// error reported) at cleanup. Test-only. It takes the worker as an
// interface and does not import listener, so the listener package's own
// tests use it too.
package workertest

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// readyTimeout bounds the wait for the worker to listen; a healthy start
// needs milliseconds.
const readyTimeout = 60 * time.Second

// Worker is what Start needs of a *listener.Worker.
type Worker interface {
	Run(ctx context.Context) error
	Ready() <-chan struct{}
}

// Start runs w until the test ends and returns once it listens. The
// returned stop ends it earlier; calling it more than once is safe.
func Start(tb testing.TB, w Worker) (stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				tb.Errorf("worker: %v", err)
			}
		})
	}
	tb.Cleanup(stop)
	select {
	case <-w.Ready():
	case err := <-done:
		done <- err // for stop
		tb.Fatalf("worker stopped before it was ready: %v", err)
	case <-time.After(readyTimeout):
		tb.Fatalf("worker not ready after %s", readyTimeout)
	}
	return stop
}

// Logger returns a logger that writes warnings and errors to the test's
// log, so that a worker's retries, failed claims and parked events show in
// a failing test's output instead of vanishing.
func Logger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
