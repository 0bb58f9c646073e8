// Package workertest runs a listener.Worker for the length of a test or
// benchmark: started, waited for until it listens, stopped (and its Run
// error reported) at cleanup. Test-only. It takes the worker as an
// interface and does not import listener, so the listener package's own
// tests use it too.
package workertest

import (
	"context"
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
