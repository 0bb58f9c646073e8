// Package baseline is the energy-baseline service (ISO 50006): it assembles
// hourly features through store, fits them with analytics, and publishes
// versioned baselines through store; it trains what the request queue asks
// for, keeps a rolling model per machine refreshed as each hour closes (or
// stepped in memory through a run of closed hours, RollingRun, written
// once), and scores an hour against it.
package baseline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/enms/enms-analytics/analytics"
	"github.com/enms/enms-analytics/listener"
	"github.com/enms/enms-analytics/store"
)

// Config configures the Service. Store is required; zero numbers take the
// EnMS defaults noted per field.
type Config struct {
	Store *store.Store
	// Logger receives the rolling model's notes (rebuilds, publications).
	// Optional; nil discards.
	Logger *slog.Logger
	// MinSamples is BASELINE_MIN_SAMPLES (1000).
	MinSamples int
	// MinR2 is BASELINE_MIN_R2 (0.80).
	MinR2 float64
	// DegreeBaseC is DEGREE_BASE_C (18 °C). Zero is a valid base, so the
	// default applies only through DefaultConfig.
	DegreeBaseC float64
	// ModelStoragePath is MODEL_STORAGE_PATH; empty writes no model files.
	ModelStoragePath string
	// WindowDays is BASELINE_WINDOW_DAYS of the rolling model (90).
	WindowDays int
	// PublishInterval is BASELINE_PUBLISH_INTERVAL (168 h): how often (in
	// data time) a valid rolling model is published as a new version.
	PublishInterval time.Duration
}

// DefaultConfig returns the EnMS defaults for st.
func DefaultConfig(st *store.Store) Config {
	return Config{Store: st, MinSamples: 1000, MinR2: 0.80, DegreeBaseC: 18, WindowDays: 90,
		PublishInterval: 168 * time.Hour}
}

// Service trains, refreshes and applies baselines.
type Service struct {
	cfg Config
	st  *store.Store
	log *slog.Logger
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.MinSamples <= 0 {
		cfg.MinSamples = 1000
	}
	if cfg.MinR2 == 0 {
		cfg.MinR2 = 0.80
	}
	if cfg.WindowDays <= 0 {
		cfg.WindowDays = 90
	}
	if cfg.PublishInterval <= 0 {
		cfg.PublishInterval = 168 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, st: cfg.Store, log: cfg.Logger}
}

// Metadata is what a published baseline keeps in energy_baselines.metadata:
// the fit report (DESIGN §5), the design that turns raw drivers into
// columns, and the solved model with the covariance prediction intervals need.
type Metadata struct {
	Fit       analytics.FitReport `json:"fit"`
	Design    *analytics.Design   `json:"design"`
	Model     *analytics.Model    `json:"model"`
	RequestID string              `json:"request_id,omitempty"`
	Source    string              `json:"source"` // "train_request" or "rolling"
	Reasons   []string            `json:"reasons,omitempty"`
	Hours     int                 `json:"hours_with_energy"`
	Excluded  map[Exclusion]int   `json:"excluded_hours"`
}

// failure is a request that cannot train; its message is for a person.
type failure struct{ msg string }

func (f failure) Error() string { return f.msg }

func failf(format string, args ...any) error { return failure{fmt.Sprintf(format, args...)} }

// TrainHandler returns the listener's trainer for baseline_train_requests.
func (s *Service) TrainHandler() listener.TrainHandler { return s.Train }

// Train validates a request (machine, drivers, window), assembles the
// window's hours, fits them and publishes the result through tx (the
// listener's transaction that also records the request's outcome):
//   - valid → a new active version (the previous one deactivated), done;
//   - fitted but not valid → stored inactive, rejected, with the failed rules;
//   - not fittable → failed, with a sentence naming the cause.
//
// Only a database that cannot be reached is an error (the request is retried).
func (s *Service) Train(ctx context.Context, tx pgx.Tx, req store.TrainRequest) (listener.TrainResult, error) {
	fit, err := s.fitRequest(ctx, req)
	var f failure
	if errors.As(err, &f) {
		return listener.TrainResult{Status: store.TrainFailed, Error: f.msg}, nil
	}
	if err != nil {
		return listener.TrainResult{}, err
	}
	meta := fit.metadata("train_request")
	meta.RequestID = req.ID
	pub, err := s.publish(ctx, tx, fit, meta, "train_request:"+req.ID)
	if err != nil {
		return listener.TrainResult{}, err
	}
	if !fit.report.Validity.Valid {
		return listener.TrainResult{Status: store.TrainRejected, BaselineID: pub.ID,
			Error: "The model does not pass validity and was stored inactive: " + strings.Join(meta.Reasons, "; ") + "."}, nil
	}
	return listener.TrainResult{Status: store.TrainDone, BaselineID: pub.ID}, nil
}

// fitted is a fit with everything needed to publish it.
type fitted struct {
	machineID  string
	start, end time.Time
	asm        *Assembly
	model      *analytics.Model
	report     analytics.FitReport
}

func (f *fitted) metadata(source string) Metadata {
	return Metadata{Fit: f.report, Design: f.asm.Design, Model: f.model, Source: source,
		Reasons: f.report.Validity.Reasons(), Hours: f.asm.Hours, Excluded: f.asm.Excluded}
}

// fitRequest does everything but publishing; a failure is a request that
// cannot succeed, any other error a database problem.
func (s *Service) fitRequest(ctx context.Context, req store.TrainRequest) (*fitted, error) {
	if req.MachineID == "" {
		return nil, failf("The request names no machine (machine_id is empty).")
	}
	m, err := s.st.Machine(ctx, req.MachineID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, failf("Machine %s does not exist.", req.MachineID)
	}
	if err != nil {
		return nil, err
	}
	if err := analytics.ValidateDrivers(req.Drivers); err != nil {
		return nil, failf("Invalid drivers: %v.", err)
	}
	if req.TrainingStart == nil || req.TrainingEnd == nil {
		return nil, failf("The training window needs both training_start and training_end.")
	}
	start, end := *req.TrainingStart, *req.TrainingEnd
	if !start.Before(end) {
		return nil, failf("The training window is reversed or empty: training_start %s is not before training_end %s.",
			start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339))
	}
	design, err := analytics.NewDesign(req.Drivers, analytics.DesignOptions{
		DegreeBaseC: s.cfg.DegreeBaseC, Location: loadLocation(m.FactoryTimezone)})
	if err != nil {
		return nil, failf("Invalid drivers: %v.", err)
	}
	hours, err := s.st.FeatureHours(ctx, req.MachineID, start, end)
	if err != nil {
		return nil, err
	}
	return s.fitHours(req.MachineID, start, end, design, hours)
}

// fitHours assembles and fits; every error is a failure.
func (s *Service) fitHours(machineID string, start, end time.Time, design *analytics.Design, hours []store.FeatureHour) (*fitted, error) {
	window := fmt.Sprintf("between %s and %s", start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339))
	if len(hours) == 0 {
		return nil, failf("Machine %s has no energy data %s.", machineID, window)
	}
	asm, err := assemble(design, hours)
	var cov *CoverageError
	if errors.As(err, &cov) {
		return nil, failf("%s.", capitalise(cov.Error()))
	}
	if err != nil {
		return nil, failf("%v", err)
	}
	if len(asm.X) == 0 {
		return nil, failf("None of the %d hours with energy data %s can be used: %s.", len(hours), window, describeExcluded(asm.Excluded))
	}
	model, err := asm.stats().Fit()
	var rank *analytics.RankError
	switch {
	case errors.As(err, &rank):
		return nil, failf("The drivers cannot be fitted on this window: %s.", rankMessage(asm.Design, rank))
	case errors.Is(err, analytics.ErrTooFewSamples):
		return nil, failf("Too few usable hours %s: %v.", window, strings.TrimPrefix(err.Error(), "too few samples: "))
	case err != nil:
		return nil, failf("The fit failed: %v.", err)
	}
	rep := analytics.Report(model, analytics.ReportInput{X: asm.X, Y: asm.Y, Groups: groups(asm.Design, asm.Coverage),
		MinR2: s.cfg.MinR2, MinSamples: s.cfg.MinSamples})
	return &fitted{machineID: machineID, start: start, end: end, asm: asm, model: model, report: rep}, nil
}

// rankMessage names the drivers behind a rank deficiency (columns of a
// categorical driver are shown as such, e.g. hour_of_day=3).
func rankMessage(d *analytics.Design, e *analytics.RankError) string {
	var parts []string
	var order []string
	byDriver := map[string][]string{}
	for _, c := range e.Constant {
		drv := driverOfColumn(d, c)
		if _, seen := byDriver[drv]; !seen {
			order = append(order, drv)
		}
		byDriver[drv] = append(byDriver[drv], c)
	}
	for _, drv := range order {
		if cols := byDriver[drv]; len(cols) > 1 || cols[0] != drv {
			parts = append(parts, fmt.Sprintf("driver %s has no variation in %s (that level or segment never occurs in the window)",
				drv, strings.Join(cols, ", ")))
		} else {
			parts = append(parts, fmt.Sprintf("driver %s is constant in the window", drv))
		}
	}
	for _, c := range e.Drivers()[len(e.Constant):] {
		parts = append(parts, fmt.Sprintf("driver %s is a linear combination of %s", c, strings.Join(e.Collinear[c], ", ")))
	}
	return strings.Join(parts, "; ")
}

func describeExcluded(ex map[Exclusion]int) string {
	var parts []string
	if n := ex[ExclAbnormal]; n > 0 {
		parts = append(parts, fmt.Sprintf("%d in maintenance, fault or offline", n))
	}
	if n := ex[ExclNotRunning]; n > 0 {
		parts = append(parts, fmt.Sprintf("%d with the machine not running", n))
	}
	if n := ex[ExclMissing]; n > 0 {
		parts = append(parts, fmt.Sprintf("%d missing a driver", n))
	}
	if len(parts) == 0 {
		return "no hour qualified"
	}
	return strings.Join(parts, ", ")
}

func capitalise(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// publish writes the fit as the machine's next version through tx (a new
// transaction when tx is nil) and the model file.
func (s *Service) publish(ctx context.Context, tx pgx.Tx, f *fitted, meta Metadata, trainedBy string) (store.Published, error) {
	metaJSON, err := json.Marshal(meta)
	if err != nil {
		return store.Published{}, fmt.Errorf("encode baseline metadata: %w", err)
	}
	coef := map[string]float64{}
	for j, c := range f.model.Columns {
		coef[c] = f.model.Coef[j]
	}
	nb := store.NewBaseline{
		MachineID: f.machineID, ModelName: "energy_baseline", ModelType: "linear_regression",
		TrainingStart: f.start, TrainingEnd: f.end, Samples: f.model.N, Coefficients: coef,
		Intercept: f.model.Intercept, FeatureNames: f.model.Columns, RSquared: float64(f.report.RSquared),
		RMSE: float64(f.report.RMSE), MAE: float64(f.report.MAE), Activate: f.report.Validity.Valid,
		TrainedBy: trainedBy, Metadata: metaJSON,
	}
	write := func(pub store.Published) error { return s.writeModelFile(f, pub, nb, meta) }
	if tx == nil {
		return s.st.PublishBaseline(ctx, nb, write)
	}
	pub, err := store.PublishBaselineTx(ctx, tx, nb)
	if err != nil {
		return pub, err
	}
	return pub, write(pub)
}

// modelFile is the JSON written to MODEL_STORAGE_PATH/baseline_{machine}_v{n}.json.
type modelFile struct {
	ID            string             `json:"id"`
	MachineID     string             `json:"machine_id"`
	ModelVersion  int                `json:"model_version"`
	ModelType     string             `json:"model_type"`
	IsActive      bool               `json:"is_active"`
	TrainingStart time.Time          `json:"training_start_date"`
	TrainingEnd   time.Time          `json:"training_end_date"`
	Drivers       []string           `json:"drivers"`
	Intercept     float64            `json:"intercept"`
	Coefficients  map[string]float64 `json:"coefficients"`
	Metadata      Metadata           `json:"metadata"`
}

func (s *Service) writeModelFile(f *fitted, pub store.Published, nb store.NewBaseline, meta Metadata) error {
	if s.cfg.ModelStoragePath == "" {
		return nil
	}
	b, err := json.MarshalIndent(modelFile{ID: pub.ID, MachineID: f.machineID, ModelVersion: pub.Version,
		ModelType: nb.ModelType, IsActive: nb.Activate, TrainingStart: f.start, TrainingEnd: f.end,
		Drivers: f.asm.Design.Drivers, Intercept: nb.Intercept, Coefficients: nb.Coefficients, Metadata: meta}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode model file: %w", err)
	}
	if err := os.MkdirAll(s.cfg.ModelStoragePath, 0o755); err != nil {
		return fmt.Errorf("create MODEL_STORAGE_PATH: %w", err)
	}
	path := ModelFilePath(s.cfg.ModelStoragePath, f.machineID, pub.Version)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write model file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write model file: %w", err)
	}
	return nil
}

// ModelFilePath is where version v of machine's baseline is written.
func ModelFilePath(dir, machineID string, v int) string {
	return filepath.Join(dir, fmt.Sprintf("baseline_%s_v%d.json", machineID, v))
}
