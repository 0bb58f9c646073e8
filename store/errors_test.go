package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
)

// TestUnavailableClassification: the errors that mean "the database cannot
// be reached" wrap ErrUnavailable (the API answers 503); query errors and
// cancellations do not (the API answers 4xx/500 or the client left).
func TestUnavailableClassification(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"closed pool", fmt.Errorf("acquire: %w", puddle.ErrClosedPool), true},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, true},
		{"admin shutdown 57P01", &pgconn.PgError{Code: "57P01"}, true},
		{"cannot connect now 57P03", &pgconn.PgError{Code: "57P03"}, true},
		{"connection failure 08006", &pgconn.PgError{Code: "08006"}, true},
		{"too many connections 53300", &pgconn.PgError{Code: "53300"}, true},
		{"syntax error 42601", &pgconn.PgError{Code: "42601"}, false},
		{"invalid parameter 22023", &pgconn.PgError{Code: "22023"}, false},
		{"deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), false},
		{"canceled", context.Canceled, false},
		{"plain", errors.New("scan: wrong type"), false},
	}
	for _, c := range cases {
		err := unavailable(c.err)
		if got := errors.Is(err, ErrUnavailable); got != c.want {
			t.Errorf("%s: unavailable = %v, want %v", c.name, got, c.want)
		}
		if !errors.Is(err, c.err) {
			t.Errorf("%s: the cause is lost", c.name)
		}
		if err.Error() != c.err.Error() {
			t.Errorf("%s: message changed to %q", c.name, err.Error())
		}
	}
	if unavailable(nil) != nil {
		t.Error("nil became an error")
	}
}
