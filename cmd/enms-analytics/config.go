package main

import (
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config is the whole service configuration, read from the environment with
// the EnMS analytics service's variable names. Every field has a default;
// Vars lists them for the README and the compose-file test.
type Config struct {
	DatabaseURL      string // DATABASE_URL, else built from DATABASE_HOST/PORT/NAME/USER/PASSWORD; empty = embedded PostgreSQL
	DataDir          string // DATA_DIR: where the embedded cluster lives (./.data)
	APIPort          int    // API_PORT
	LogLevel         slog.Level
	MigrateOnStart   bool   // MIGRATE_ON_START
	ModelStoragePath string // MODEL_STORAGE_PATH
	APIToken         string // API_TOKEN: bearer token for mutating routes; empty = open
	APIDBMaxConns    int    // API_DB_MAX_CONNS: the API's own pool; 0 = 2 per CPU core, at least 4
	CORSOrigins      []string

	BaselineMinSamples      int
	BaselineMinR2           float64
	BaselineWindowDays      int
	BaselinePublishInterval time.Duration
	DegreeBaseC             float64

	AnomalyContamination   float64
	AnomalyMinHistoryHours int
	AnomalyWarningSigma    float64
	AnomalyCriticalSigma   float64

	HourCloseGrace         time.Duration
	EventRetention         time.Duration
	WorkerConcurrency      int
	WorkerMaxRun           int
	WorkerMaxAttempts      int
	WorkerLeaseDuration    time.Duration
	ListenerReconnectDelay time.Duration
	PollInterval           time.Duration
}

// Var documents one environment variable.
type Var struct {
	Name, Default, Help string
}

// Vars lists every environment variable the service reads, with its default.
var Vars = []Var{
	{"DATABASE_URL", "", "PostgreSQL URL; wins over DATABASE_HOST…"},
	{"DATABASE_HOST", "", "PostgreSQL host; with neither this nor DATABASE_URL an embedded cluster is started under DATA_DIR"},
	{"DATABASE_PORT", "5432", "PostgreSQL port"},
	{"DATABASE_NAME", "enms", "database name"},
	{"DATABASE_USER", "postgres", "database user"},
	{"DATABASE_PASSWORD", "", "database password"},
	{"DATA_DIR", ".data", "directory of the embedded PostgreSQL cluster (DATA_DIR/postgres)"},
	{"API_PORT", "8001", "HTTP port of the API"},
	{"LOG_LEVEL", "info", "debug, info, warn or error"},
	{"MIGRATE_ON_START", "true", "apply migrations when serve starts"},
	{"MODEL_STORAGE_PATH", "/app/models/saved", "where trained baselines are also written as JSON"},
	{"API_TOKEN", "", "when set, mutating routes require `Authorization: Bearer <token>`"},
	{"CORS_ORIGINS", "", "comma-separated origins allowed by CORS; empty = same-origin only"},
	{"API_DB_MAX_CONNS", "0", "database connections of the API's own pool (the worker has another); 0 = 2 per CPU core, at least 4"},
	{"BASELINE_MIN_SAMPLES", "1000", "validity rule: minimum training hours"},
	{"BASELINE_MIN_R2", "0.80", "validity rule: minimum R²"},
	{"BASELINE_WINDOW_DAYS", "90", "sliding window of the rolling model"},
	{"BASELINE_PUBLISH_INTERVAL", "168h", "how often a valid rolling model is published as a new baseline version"},
	{"DEGREE_BASE_C", "18", "base temperature of hdd/cdd degree-hours"},
	{"ANOMALY_CONTAMINATION", "0.0005", "target false-alarm rate per running hour"},
	{"ANOMALY_MIN_HISTORY_HOURS", "168", "normal hours the rolling model needs before scoring"},
	{"ANOMALY_WARNING_SIGMA", "2", "deviation (in prediction standard errors) of a warning"},
	{"ANOMALY_CRITICAL_SIGMA", "3", "deviation of a critical anomaly"},
	{"HOUR_CLOSE_GRACE", "10m", "an hour with no newer data closes this long after its end"},
	{"EVENT_RETENTION", "168h", "processed events are kept this long"},
	{"WORKER_CONCURRENCY", "4", "machines processed in parallel"},
	{"WORKER_MAX_ATTEMPTS", "5", "attempts before a failing event is parked"},
	{"WORKER_MAX_RUN", "128", "most consecutive closed hours of one machine handled in one pass (a backfill); 1 handles every hour alone"},
	{"WORKER_LEASE_DURATION", "30s", "how long claimed events stay leased without renewal: a crashed replica's events are taken over after this"},
	{"LISTENER_RECONNECT_DELAY", "2s", "delay before the listener reconnects"},
	{"POLL_INTERVAL", "5s", "polling fallback for missed notifications"},
}

// LoadConfig reads the configuration through getenv. Malformed values are an
// error naming the variable; unset ones take their default.
func LoadConfig(getenv func(string) string) (Config, error) {
	r := reader{getenv: getenv}
	c := Config{
		DataDir:                 r.str("DATA_DIR"),
		APIPort:                 r.int("API_PORT"),
		MigrateOnStart:          r.bool("MIGRATE_ON_START"),
		ModelStoragePath:        r.str("MODEL_STORAGE_PATH"),
		APIToken:                r.str("API_TOKEN"),
		APIDBMaxConns:           r.int("API_DB_MAX_CONNS"),
		CORSOrigins:             r.list("CORS_ORIGINS"),
		BaselineMinSamples:      r.int("BASELINE_MIN_SAMPLES"),
		BaselineMinR2:           r.float("BASELINE_MIN_R2"),
		BaselineWindowDays:      r.int("BASELINE_WINDOW_DAYS"),
		BaselinePublishInterval: r.duration("BASELINE_PUBLISH_INTERVAL"),
		DegreeBaseC:             r.float("DEGREE_BASE_C"),
		AnomalyContamination:    r.float("ANOMALY_CONTAMINATION"),
		AnomalyMinHistoryHours:  r.int("ANOMALY_MIN_HISTORY_HOURS"),
		AnomalyWarningSigma:     r.float("ANOMALY_WARNING_SIGMA"),
		AnomalyCriticalSigma:    r.float("ANOMALY_CRITICAL_SIGMA"),
		HourCloseGrace:          r.duration("HOUR_CLOSE_GRACE"),
		EventRetention:          r.duration("EVENT_RETENTION"),
		WorkerConcurrency:       r.int("WORKER_CONCURRENCY"),
		WorkerMaxAttempts:       r.int("WORKER_MAX_ATTEMPTS"),
		WorkerMaxRun:            r.int("WORKER_MAX_RUN"),
		WorkerLeaseDuration:     r.duration("WORKER_LEASE_DURATION"),
		ListenerReconnectDelay:  r.duration("LISTENER_RECONNECT_DELAY"),
		PollInterval:            r.duration("POLL_INTERVAL"),
	}
	if err := c.LogLevel.UnmarshalText([]byte(r.str("LOG_LEVEL"))); err != nil {
		r.fail("LOG_LEVEL", r.str("LOG_LEVEL"), "debug, info, warn or error")
	}
	c.DatabaseURL = r.databaseURL()
	if c.APIPort < 0 || c.APIPort > 65535 {
		r.fail("API_PORT", strconv.Itoa(c.APIPort), "a port between 0 and 65535")
	}
	if c.AnomalyContamination <= 0 || c.AnomalyContamination >= 1 {
		r.fail("ANOMALY_CONTAMINATION", r.str("ANOMALY_CONTAMINATION"), "a rate between 0 and 1 (exclusive)")
	}
	if c.APIDBMaxConns < 0 {
		r.fail("API_DB_MAX_CONNS", r.str("API_DB_MAX_CONNS"), "0 (2 per CPU core) or a number of connections")
	}
	if c.WorkerConcurrency < 1 {
		r.fail("WORKER_CONCURRENCY", r.str("WORKER_CONCURRENCY"), "at least 1")
	}
	if c.WorkerMaxAttempts < 1 {
		r.fail("WORKER_MAX_ATTEMPTS", r.str("WORKER_MAX_ATTEMPTS"), "at least 1")
	}
	if c.WorkerMaxRun < 1 {
		r.fail("WORKER_MAX_RUN", r.str("WORKER_MAX_RUN"), "at least 1")
	}
	if r.err != nil {
		return Config{}, r.err
	}
	return c, nil
}

type reader struct {
	getenv func(string) string
	err    error
}

func (r *reader) str(name string) string {
	if v := strings.TrimSpace(r.getenv(name)); v != "" {
		return v
	}
	for _, v := range Vars {
		if v.Name == name {
			return v.Default
		}
	}
	panic("config: undeclared variable " + name)
}

func (r *reader) fail(name, value, want string) {
	if r.err == nil {
		r.err = fmt.Errorf("configuration: %s=%q is not valid; want %s", name, value, want)
	}
}

func (r *reader) int(name string) int {
	s := r.str(name)
	v, err := strconv.Atoi(s)
	if err != nil {
		r.fail(name, s, "a whole number")
	}
	return v
}

func (r *reader) float(name string) float64 {
	s := r.str(name)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v != v {
		r.fail(name, s, "a number")
	}
	return v
}

func (r *reader) bool(name string) bool {
	s := r.str(name)
	v, err := strconv.ParseBool(s)
	if err != nil {
		r.fail(name, s, "true or false")
	}
	return v
}

func (r *reader) duration(name string) time.Duration {
	s := r.str(name)
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		r.fail(name, s, "a duration such as 10m, 2s or 168h")
	}
	return v
}

func (r *reader) list(name string) []string {
	var out []string
	for _, p := range strings.Split(r.str(name), ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// databaseURL is DATABASE_URL, else a URL from DATABASE_HOST and friends,
// else empty (meaning: start the embedded cluster).
func (r *reader) databaseURL() string {
	if u := strings.TrimSpace(r.getenv("DATABASE_URL")); u != "" {
		return u
	}
	host := strings.TrimSpace(r.getenv("DATABASE_HOST"))
	if host == "" {
		return ""
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(r.str("DATABASE_USER"), r.str("DATABASE_PASSWORD")),
		Host:     host + ":" + r.str("DATABASE_PORT"),
		Path:     "/" + r.str("DATABASE_NAME"),
		RawQuery: "sslmode=prefer",
	}
	if r.str("DATABASE_PASSWORD") == "" {
		u.User = url.User(r.str("DATABASE_USER"))
	}
	return u.String()
}
