package http

import (
	"context"
	"errors"
	"fmt"
	nethttp "net/http"

	"github.com/enms/enms-analytics/store"
)

// Error codes of the JSON error body {"error": {"code", "message"}}. Each
// maps to one HTTP status in statusOf.
const (
	CodeInvalid          = "invalid"            // 400: malformed input
	CodeUnauthorized     = "unauthorized"       // 401: missing or wrong bearer token
	CodeNotFound         = "not_found"          // 404: unknown id or route
	CodeMethodNotAllowed = "method_not_allowed" // 405
	CodeConflict         = "conflict"           // 409: clashes with the current state
	CodeTooLarge         = "too_large"          // 413: request body over the limit
	CodeUnsupportedMedia = "unsupported_media"  // 415: body is not application/json
	CodeInternal         = "internal"           // 500: a bug; the message is generic
	CodeUnavailable      = "unavailable"        // 503: the database is unreachable
	CodeTimeout          = "timeout"            // 503: the route's time limit passed
)

var statusOf = map[string]int{
	CodeInvalid:          nethttp.StatusBadRequest,
	CodeUnauthorized:     nethttp.StatusUnauthorized,
	CodeNotFound:         nethttp.StatusNotFound,
	CodeMethodNotAllowed: nethttp.StatusMethodNotAllowed,
	CodeConflict:         nethttp.StatusConflict,
	CodeTooLarge:         nethttp.StatusRequestEntityTooLarge,
	CodeUnsupportedMedia: nethttp.StatusUnsupportedMediaType,
	CodeInternal:         nethttp.StatusInternalServerError,
	CodeUnavailable:      nethttp.StatusServiceUnavailable,
	CodeTimeout:          nethttp.StatusServiceUnavailable,
}

// Error is an application error: a code from the list above and a sentence
// for the person who sent the request. Handlers return it (or any error;
// see errorOf) and the one mapper, writeError, turns it into a response.
type Error struct {
	Code    string
	Message string
	Err     error // the cause, logged, never sent
}

// Error returns the code, the message and the cause, for logs.
func (e *Error) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Message + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// invalidf is a 400 with a sentence saying what is wrong with the input.
func invalidf(format string, args ...any) *Error { return Errorf(CodeInvalid, format, args...) }

// notFoundf is a 404 naming what was not found.
func notFoundf(format string, args ...any) *Error { return Errorf(CodeNotFound, format, args...) }

// errorOf classifies any error a handler returns: an *Error as it is; store
// errors by their sentinel; a passed deadline as a timeout; anything else
// as internal, whose message is generic so internals never reach a client.
func errorOf(err error) *Error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, store.ErrUnavailable):
		return &Error{Code: CodeUnavailable, Message: "the database is unreachable; try again shortly", Err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Code: CodeTimeout, Message: "the request did not finish in time; try a shorter window", Err: err}
	case errors.Is(err, store.ErrNotFound):
		return &Error{Code: CodeNotFound, Message: "the requested item does not exist", Err: err}
	case errors.Is(err, store.ErrConflict):
		return &Error{Code: CodeConflict, Message: "the request conflicts with the current state", Err: err}
	default:
		return &Error{Code: CodeInternal, Message: "an internal error occurred; it has been logged", Err: err}
	}
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id,omitempty"`
}

// writeError is the one error mapper: it writes e as JSON with its status
// and returns the status.
func writeError(w nethttp.ResponseWriter, r *nethttp.Request, e *Error) int {
	status, ok := statusOf[e.Code]
	if !ok {
		status = nethttp.StatusInternalServerError
	}
	writeJSON(w, status, errorBody{Error: errorDetail{Code: e.Code, Message: e.Message, RequestID: RequestID(r.Context())}})
	return status
}
