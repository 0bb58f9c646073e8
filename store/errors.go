package store

import (
	"context"
	"errors"
	"net"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
)

// ErrNotFound is wrapped by every error that means "no such row": an unknown
// machine, factory, baseline or anomaly. Callers test it with errors.Is.
var ErrNotFound = errors.New("not found")

// ErrUnavailable is wrapped by every error that means the database could not
// be reached (connection refused, closed pool, connection lost, server
// shutting down). The API answers such errors with 503.
var ErrUnavailable = errors.New("database unavailable")

// ErrConflict is wrapped by every error that means the request clashes with
// the current state (a unique key already taken, a row in the wrong state).
var ErrConflict = errors.New("conflict")

// unavailable marks err with ErrUnavailable when it says the database could
// not be reached; other errors are returned unchanged.
func unavailable(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) {
		return err
	}
	if isUnreachable(err) {
		return unavailableError{err}
	}
	return err
}

// unavailableError keeps the driver's message and unwraps to both it and
// ErrUnavailable.
type unavailableError struct{ err error }

func (e unavailableError) Error() string   { return e.err.Error() }
func (e unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.err} }

func isUnreachable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) || errors.Is(err, puddle.ErrClosedPool) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08: connection exception; 57P01-57P03: the server is shutting
		// down or not yet accepting connections; 53300: too many connections.
		switch {
		case len(pgErr.Code) == 5 && pgErr.Code[:2] == "08",
			pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03",
			pgErr.Code == "53300":
			return true
		}
		return false
	}
	var netErr net.Error
	return errors.As(err, &netErr)
}
