// Package triggers is the database-event contract (DESIGN §3.3–3.4): the
// NOTIFY channel names, the kinds of events in the analytics_events outbox,
// and the payloads of both, with parsing that validates.
//
// Notifications are only wake-ups; their payloads are small keys (a machine
// id, a request id). The outbox rows are the truth: an Event is one row of
// analytics_events.
package triggers

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Channel is the name of a NOTIFY channel.
type Channel string

// The channels of DESIGN §3.4.
const (
	// ChannelHourClosed wakes the worker when hour_closed or hour_revised
	// events were written. Payload: the machine id.
	ChannelHourClosed Channel = "hourly_aggregate_closed"
	// ChannelStatusChanged wakes the worker when a status_changed event was
	// written. Payload: the machine id.
	ChannelStatusChanged Channel = "machine_status_changed"
	// ChannelTrainRequested is notified by the insert trigger of
	// baseline_train_requests. Payload: the request id.
	ChannelTrainRequested Channel = "baseline_train_requested"
	// ChannelTrainDone is notified by the worker when a training request
	// finished (done, rejected or failed). Payload: the request id.
	ChannelTrainDone Channel = "baseline_train_done"
	// ChannelAnomalyDetected is notified by the worker when it wrote an
	// anomaly. Payload: the anomalies row id.
	ChannelAnomalyDetected Channel = "anomaly_detected"
)

// ListenedChannels are the channels the worker LISTENs on.
var ListenedChannels = []Channel{ChannelHourClosed, ChannelStatusChanged, ChannelTrainRequested}

// Kind is the kind of an outbox event (analytics_events.kind).
type Kind string

// The event kinds.
const (
	// KindHourClosed: a machine-hour is complete (a reading of a later hour
	// committed, or the sweeper saw no newer data for HOUR_CLOSE_GRACE).
	// Event.Bucket is the hour.
	KindHourClosed Kind = "hour_closed"
	// KindHourRevised: late data changed an hour that had already closed.
	// Event.Bucket is the hour.
	KindHourRevised Kind = "hour_revised"
	// KindStatusChanged: the machine's running state or mode changed; the
	// payload is a StatusChange.
	KindStatusChanged Kind = "status_changed"
)

// Kinds lists every event kind.
var Kinds = []Kind{KindHourClosed, KindHourRevised, KindStatusChanged}

// ParseKind validates an event kind.
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("%q is not an event kind; the kinds are %s", s, joinKinds())
}

func joinKinds() string {
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

// Event is one row of the analytics_events outbox, as handed to a handler.
type Event struct {
	ID        int64
	Kind      Kind
	MachineID string    // canonical lowercase UUID
	Bucket    time.Time // the hour, for hour_closed and hour_revised; zero otherwise
	Payload   json.RawMessage
	CreatedAt time.Time // when the trigger wrote the event (transaction time)
	Attempt   int       // 1 on the first try
}

// Validate checks that the event is well formed for its kind.
func (e Event) Validate() error {
	if _, err := ParseKind(string(e.Kind)); err != nil {
		return fmt.Errorf("event %d: %w", e.ID, err)
	}
	if _, err := ParseUUID(e.MachineID); err != nil {
		return fmt.Errorf("event %d: machine id: %w", e.ID, err)
	}
	switch e.Kind {
	case KindHourClosed, KindHourRevised:
		if e.Bucket.IsZero() {
			return fmt.Errorf("event %d: a %s event needs the hour it is about, and its bucket is empty", e.ID, e.Kind)
		}
		if !e.Bucket.Equal(e.Bucket.Truncate(time.Hour)) {
			return fmt.Errorf("event %d: bucket %s is not the start of an hour", e.ID, e.Bucket.UTC().Format(time.RFC3339Nano))
		}
	case KindStatusChanged:
		if _, err := ParseStatusChange(e.Payload); err != nil {
			return fmt.Errorf("event %d: %w", e.ID, err)
		}
	}
	return nil
}

// StatusChange parses the payload of a status_changed event.
func (e Event) StatusChange() (StatusChange, error) {
	if e.Kind != KindStatusChanged {
		return StatusChange{}, fmt.Errorf("event %d is a %s event, not a status_changed event", e.ID, e.Kind)
	}
	return ParseStatusChange(e.Payload)
}

// Mode is an operating_mode value.
type Mode string

// The operating modes (the EnMS operating_mode enum).
const (
	ModeIdle        Mode = "idle"
	ModeRunning     Mode = "running"
	ModeMaintenance Mode = "maintenance"
	ModeFault       Mode = "fault"
	ModeOffline     Mode = "offline"
)

// Modes lists every operating mode.
var Modes = []Mode{ModeIdle, ModeRunning, ModeMaintenance, ModeFault, ModeOffline}

// ParseMode validates an operating mode.
func ParseMode(s string) (Mode, error) {
	for _, m := range Modes {
		if string(m) == s {
			return m, nil
		}
	}
	return "", fmt.Errorf("%q is not an operating mode; the modes are idle, running, maintenance, fault and offline", s)
}

// StatusChange is the payload of a status_changed event: the machine's state
// before and after At. OldMode and OldRunning are nil when At precedes every
// known state of the machine (its first status).
type StatusChange struct {
	OldMode    *Mode     `json:"old_mode"`
	NewMode    Mode      `json:"new_mode"`
	OldRunning *bool     `json:"old_running"`
	NewRunning bool      `json:"new_running"`
	At         time.Time `json:"at"`
}

// ParseStatusChange parses and validates a status_changed payload.
func ParseStatusChange(payload []byte) (StatusChange, error) {
	var raw struct {
		OldMode    *string         `json:"old_mode"`
		NewMode    *string         `json:"new_mode"`
		OldRunning *bool           `json:"old_running"`
		NewRunning *bool           `json:"new_running"`
		At         json.RawMessage `json:"at"`
	}
	if err := json.Unmarshal(payload, &raw); err != nil {
		return StatusChange{}, fmt.Errorf("status change payload is not a JSON object with old_mode, new_mode, old_running, new_running and at: %w", err)
	}
	var sc StatusChange
	var err error
	if raw.NewMode == nil {
		return sc, errors.New("status change payload has no new_mode")
	}
	if sc.NewMode, err = ParseMode(*raw.NewMode); err != nil {
		return sc, fmt.Errorf("status change new_mode: %w", err)
	}
	if raw.OldMode != nil {
		m, err := ParseMode(*raw.OldMode)
		if err != nil {
			return sc, fmt.Errorf("status change old_mode: %w", err)
		}
		sc.OldMode = &m
	}
	if raw.NewRunning == nil {
		return sc, errors.New("status change payload has no new_running")
	}
	sc.NewRunning = *raw.NewRunning
	sc.OldRunning = raw.OldRunning
	if (sc.OldMode == nil) != (sc.OldRunning == nil) {
		return sc, errors.New("status change payload has only one of old_mode and old_running; both or neither are expected")
	}
	if len(raw.At) == 0 || string(raw.At) == "null" {
		return sc, errors.New("status change payload has no time (at)")
	}
	if err := json.Unmarshal(raw.At, &sc.At); err != nil {
		return sc, fmt.Errorf("status change time (at) %s is not an RFC 3339 timestamp", raw.At)
	}
	return sc, nil
}

// MachineNotification is the payload of hourly_aggregate_closed and
// machine_status_changed: the machine whose events were written.
type MachineNotification struct {
	MachineID string
}

// ParseMachineNotification parses the payload of hourly_aggregate_closed or
// machine_status_changed.
func ParseMachineNotification(payload string) (MachineNotification, error) {
	id, err := ParseUUID(payload)
	if err != nil {
		return MachineNotification{}, fmt.Errorf("machine notification: %w", err)
	}
	return MachineNotification{MachineID: id}, nil
}

// RequestNotification is the payload of baseline_train_requested and
// baseline_train_done: the training request's id.
type RequestNotification struct {
	RequestID string
}

// ParseRequestNotification parses the payload of baseline_train_requested or
// baseline_train_done.
func ParseRequestNotification(payload string) (RequestNotification, error) {
	id, err := ParseUUID(payload)
	if err != nil {
		return RequestNotification{}, fmt.Errorf("training request notification: %w", err)
	}
	return RequestNotification{RequestID: id}, nil
}

// AnomalyNotification is the payload of anomaly_detected: the anomalies row id.
type AnomalyNotification struct {
	AnomalyID string
}

// ParseAnomalyNotification parses the payload of anomaly_detected.
func ParseAnomalyNotification(payload string) (AnomalyNotification, error) {
	id, err := ParseUUID(payload)
	if err != nil {
		return AnomalyNotification{}, fmt.Errorf("anomaly notification: %w", err)
	}
	return AnomalyNotification{AnomalyID: id}, nil
}

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// ParseUUID validates a UUID in its canonical 8-4-4-4-12 hexadecimal form
// (as PostgreSQL prints uuid) and returns it in lower case.
func ParseUUID(s string) (string, error) {
	l := strings.ToLower(s)
	if !uuidPattern.MatchString(l) {
		if len(s) > 60 {
			s = s[:60] + "…"
		}
		return "", fmt.Errorf("%q is not a UUID (expected 8-4-4-4-12 hexadecimal digits)", s)
	}
	return l, nil
}
