// Package anomaly is the anomaly-detection service (DESIGN §5, issue 5): as
// each machine-hour closes it scores the hour against the rolling energy
// model (before the model learns it) and against the machine's own recent
// process signals, groups anomalous hours into episodes, and writes them to
// anomalies through store, notifying anomaly_detected when an episode opens
// or escalates.
//
// Scoring is a deterministic replay: each hour's record (anomaly_hours)
// holds the detector state after it, so an hour can be re-scored from the
// state before it — late data (hour_revised) and POST /anomaly/detect go
// through the same code as a closing hour, and re-scoring never duplicates an
// episode (its key is machine, type and first hour). A run of a machine's
// closed hours (HoursClosed: a backfill's hundreds, or the one hour that
// closes live) is scored in one transaction while the rolling model steps
// through it in memory, leaving what scoring the hours one by one leaves.
//
// What decides what is described in analytics/anomaly.go: the false-alarm
// budget ANOMALY_CONTAMINATION is shared by seven detectors, each
// calibrated to its share.
package anomaly

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/enms/enms-analytics/analytics"
	"github.com/enms/enms-analytics/store"
)

// Prediction is the rolling model's expectation of an hour's energy,
// computed before the hour is added to the model.
type Prediction struct {
	// OK is false when the model cannot predict the hour (no model yet, a
	// driver missing, an hour the model does not cover such as one in which
	// the machine did not run); Reason says why in a few words.
	OK     bool
	Reason string
	// Expected is the predicted total_energy_kwh; StdErr the standard error
	// of a new observation at this hour (residual and parameter
	// uncertainty), so that a young model is not over-confident.
	Expected, StdErr float64
	// ModelHours is the number of normal hours the model has learned.
	ModelHours int
	// ModelVersion identifies the model state (e.g. its source baseline and
	// refresh count), recorded in the episode's metadata.
	ModelVersion string
}

// Predictor is the rolling energy model per machine, as anomaly scoring
// needs it.
type Predictor interface {
	// PredictHour predicts the machine's energy in the hour from the model as
	// it stands, without adding the hour.
	PredictHour(ctx context.Context, machineID string, hour time.Time) (Prediction, error)
}

// PredictorFunc adapts a function to Predictor.
type PredictorFunc func(ctx context.Context, machineID string, hour time.Time) (Prediction, error)

// PredictHour calls f.
func (f PredictorFunc) PredictHour(ctx context.Context, machineID string, hour time.Time) (Prediction, error) {
	return f(ctx, machineID, hour)
}

// Config configures the Service. Store and Model are required; zero values
// take the defaults noted per field.
type Config struct {
	Store *store.Store
	Model Predictor
	// Logger is optional; nil discards.
	Logger *slog.Logger

	// Contamination is ANOMALY_CONTAMINATION (0.0005 false episodes per
	// scored hour, over all detectors of a machine).
	Contamination float64
	// WarningSigma, CriticalSigma: ANOMALY_WARNING_SIGMA (2), _CRITICAL_SIGMA (3).
	WarningSigma, CriticalSigma float64
	// MinHistoryHours is ANOMALY_MIN_HISTORY_HOURS (168): below this many
	// hours in the rolling model an hour is recorded unscored.
	MinHistoryHours int
	// WarmupHours after a machine returns from maintenance, fault or
	// offline are not scored (2).
	WarmupHours int
	// QuietGapHours: an episode ends after this many hours without an
	// anomalous hour of its type; a later one opens a new episode (6).
	QuietGapHours int
	// WindowHours is how many recent learning hours (normal or unscored)
	// the robust statistics and the isolation forest use (720 = 30 days).
	WindowHours int
	// ForestRefreshHours: the forest is retrained after this many hours of
	// data time (168).
	ForestRefreshHours int
	// ForestTrees is the forest's size (100); ForestSeed its base seed (1).
	ForestTrees int
	ForestSeed  uint64
	// HourCloseGrace is HOUR_CLOSE_GRACE (10 min): /anomaly/detect scores
	// only closed hours — hours with later data, or that ended this long ago.
	HourCloseGrace time.Duration
	// MaxReplayHours bounds how far past the requested window a re-score
	// follows later hours until their verdicts agree with what is stored (720).
	MaxReplayHours int
}

func (c *Config) applyDefaults() error {
	if c.Store == nil || c.Model == nil {
		return errors.New("anomaly: Config.Store and Config.Model are required")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	d := analytics.DefaultAnomalyConfig()
	setF := func(p *float64, v float64) {
		if *p == 0 {
			*p = v
		}
	}
	setI := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	setF(&c.Contamination, d.Contamination)
	setF(&c.WarningSigma, d.WarningSigma)
	setF(&c.CriticalSigma, d.CriticalSigma)
	setI(&c.MinHistoryHours, 168)
	setI(&c.WarmupHours, 2)
	setI(&c.QuietGapHours, 6)
	setI(&c.WindowHours, 720)
	setI(&c.ForestRefreshHours, 168)
	setI(&c.ForestTrees, 100)
	setI(&c.MaxReplayHours, 720)
	if c.ForestSeed == 0 {
		c.ForestSeed = 1
	}
	if c.HourCloseGrace == 0 {
		c.HourCloseGrace = 10 * time.Minute
	}
	if c.MinHistoryHours < 0 || c.WarmupHours < 0 || c.QuietGapHours < 0 || c.WindowHours < analytics.MinRobustSamples {
		return fmt.Errorf("anomaly: negative hours, or a window under %d hours", analytics.MinRobustSamples)
	}
	// Hours become time.Duration: keep them far from overflowing it.
	const maxHours = 1 << 20 // 120 years
	for _, h := range []int{c.MinHistoryHours, c.WarmupHours, c.QuietGapHours, c.WindowHours, c.ForestRefreshHours, c.MaxReplayHours} {
		if h > maxHours {
			return fmt.Errorf("anomaly: %d hours is more than the %d this service accepts", h, maxHours)
		}
	}
	return nil
}

// Service scores closed hours and manages episodes.
type Service struct {
	cfg     Config
	cal     analytics.Calibration
	st      *store.Store
	model   Predictor
	log     *slog.Logger
	forests forestCache
	windows windowCache
	// runHours counts the hours HoursClosed handled in runs (the rest went
	// hour by hour).
	runHours atomic.Int64
}

// New returns a Service; a configuration that cannot be calibrated is an
// error naming the problem.
func New(cfg Config) (*Service, error) {
	if err := cfg.applyDefaults(); err != nil {
		return nil, err
	}
	ac := analytics.DefaultAnomalyConfig()
	ac.Contamination, ac.WarningSigma, ac.CriticalSigma = cfg.Contamination, cfg.WarningSigma, cfg.CriticalSigma
	ac.ContinueSigma = cfg.WarningSigma
	cal, err := analytics.Calibrate(ac)
	if err != nil {
		return nil, fmt.Errorf("anomaly: %w", err)
	}
	return &Service{cfg: cfg, cal: cal, st: cfg.Store, model: cfg.Model, log: cfg.Logger}, nil
}

// HourResult is how one hour was judged.
type HourResult struct {
	Hour   time.Time
	Status string // normal, anomalous, unscored or suppressed
	Reason string // for unscored and suppressed hours
	Types  []string
	// Learn says whether the rolling model may learn the hour: true for
	// normal and unscored hours, false for anomalous and suppressed ones.
	Learn bool
}

// Result is what a (re-)score did.
type Result struct {
	// Hours are the hours scored, in order: the requested ones and any later
	// hours re-scored until their verdicts agreed with what was stored.
	Hours []HourResult
	// Notified are the anomalies rows for which anomaly_detected was sent
	// (opened or escalated).
	Notified []string
	// Deleted counts episodes a re-score no longer found and removed.
	Deleted int64
}

// HourClosed scores a closed hour (idempotent: a repeated call finds the
// hour's record and replays it with the prediction stored there).
func (s *Service) HourClosed(ctx context.Context, machineID string, hour time.Time) (HourResult, Result, error) {
	hour = hour.UTC().Truncate(time.Hour)
	res, err := s.rescore(ctx, machineID, hour, hour.Add(time.Hour), func(time.Time) bool { return false }, false, nil)
	if err != nil {
		return HourResult{}, res, err
	}
	for _, h := range res.Hours {
		if h.Hour.Equal(hour) {
			return h, res, nil
		}
	}
	return HourResult{Hour: hour, Status: StatusUnscored, Reason: "no_energy"}, res, nil
}

// HourRevised re-scores an hour whose data changed after it closed: its
// prediction is asked again, and later hours are re-scored until their
// verdicts agree with what is stored. Result.Hours says which hours changed
// verdict, so the rolling model can be corrected.
func (s *Service) HourRevised(ctx context.Context, machineID string, hour time.Time) (Result, error) {
	hour = hour.UTC().Truncate(time.Hour)
	return s.rescore(ctx, machineID, hour, hour.Add(time.Hour), func(h time.Time) bool { return h.Equal(hour) }, false, nil)
}

// Detect re-scores the machine's closed hours in [start, end) through the
// same code path and returns the episodes overlapping the window. Running it
// twice changes nothing. An unknown machine wraps store.ErrNotFound.
func (s *Service) Detect(ctx context.Context, machineID string, start, end time.Time) ([]store.Anomaly, Result, error) {
	ok, err := s.st.MachineExists(ctx, machineID)
	if err != nil {
		return nil, Result{}, err
	}
	if !ok {
		return nil, Result{}, fmt.Errorf("machine %s: %w", machineID, store.ErrNotFound)
	}
	from := start.UTC().Truncate(time.Hour)
	res, err := s.rescore(ctx, machineID, from, end.UTC(), func(time.Time) bool { return false }, true, nil)
	if err != nil {
		return nil, res, err
	}
	eps, err := s.st.MachineEpisodes(ctx, machineID, start, end)
	return eps, res, err
}

// run is the state of one re-score.
type run struct {
	machineID string
	model     Predictor
	st        state
	window    []store.AnomalyHour // learning hours before the current hour, oldest first
	touched   map[store.EpisodeKey]*episode
	res       Result
}

// rescore scores the machine's hours in [from, to) from the state stored
// before from, then follows later stored hours until one comes out as it was
// stored (at most MaxReplayHours past to), and writes records and episodes
// in the same transaction.
//
// closedOnly restricts [from, to) to closed hours (Detect); events name an
// hour that has closed, whatever closed it.
//
// hooks, when set, make it a run of new hours (HoursClosed): it fails with
// errNotFresh, writing nothing, if any hour from from on is stored already,
// predicts with hooks.predict, asks hooks.before whether each hour belongs
// to the run (ending the run before the first that does not), and tells
// hooks.after each hour's result.
func (s *Service) rescore(ctx context.Context, machineID string, from, to time.Time, repredict func(time.Time) bool, closedOnly bool, hooks *runHooks) (Result, error) {
	var r *run
	var saved store.ScoringSaved
	var last time.Time
	reachedEnd := false
	warm := time.Duration(s.cfg.WarmupHours) * time.Hour
	err := s.st.AnomalyScoring(ctx, machineID, func(tx *store.AnomalyTx) error {
		r = &run{machineID: machineID, model: s.model, touched: map[store.EpisodeKey]*episode{}}
		if hooks != nil {
			r.model = hooks.predict
		}
		grace := time.Duration(-1)
		if closedOnly {
			grace = s.cfg.HourCloseGrace
		}
		rd, err := tx.Load(ctx, from, to, from.Add(-warm-time.Hour), grace, true)
		if err != nil {
			return err
		}
		if hooks != nil && (len(rd.Stored) > 0 || rd.Next != nil) {
			return errNotFresh
		}
		if rd.Previous != nil {
			if err := json.Unmarshal(rd.Previous.State, &r.st); err != nil {
				return fmt.Errorf("read detector state of %s: %w", rd.Previous.Hour.Format(time.RFC3339), err)
			}
		}
		for _, e := range r.st.Open {
			r.touched[e.key()] = e
		}
		if w, ok := s.windows.get(machineID, rd.Generation, rd.Previous); ok {
			r.window = w
		} else {
			learning, err := tx.LearningHours(ctx, from, s.cfg.WindowHours)
			if err != nil {
				return err
			}
			slices.Reverse(learning)
			r.window = learning
		}

		last = from.Add(-time.Hour)
		following, converged, stopped := false, false, false
		var pending []store.AnomalyHour
		for {
			byHour := make(map[time.Time]store.AnomalyHour, len(rd.Stored))
			for _, h := range rd.Stored {
				byHour[h.Hour] = h
			}
			for _, in := range rd.Inputs {
				old, had := byHour[in.Hour]
				if following && !had {
					// Not scored yet (its event is still to come, or it is
					// the open hour): its own event re-scores from there.
					stopped = true
					break
				}
				if hooks != nil {
					ok, err := hooks.before(in.Hour)
					if err != nil {
						return err
					}
					if !ok {
						break // the run ends here; rd.Next is nil in a run, so the end is reached
					}
				}
				rec, hr, err := s.scoreHour(ctx, tx, r, in, old, had, repredict(in.Hour), rd.Periods)
				if err != nil {
					return err
				}
				if following && had && sameVerdict(old, rec) {
					converged = true
					break
				}
				if !had || !sameRecord(old, rec) {
					pending = append(pending, rec)
				}
				r.res.Hours = append(r.res.Hours, hr)
				last = in.Hour
				if hooks != nil {
					if err := hooks.after(hr); err != nil {
						return err
					}
				}
			}
			if converged || stopped {
				break
			}
			if rd.Next == nil {
				reachedEnd = true
				break
			}
			if rd.Next.Sub(to) >= time.Duration(s.cfg.MaxReplayHours)*time.Hour {
				break
			}
			// A changed verdict or state changes what comes after it: follow
			// the later stored hours.
			if _, err := tx.Save(ctx, store.ScoringWrite{Hours: pending}); err != nil {
				return err
			}
			pending = nil
			following = true
			cf := *rd.Next
			// Later stored hours were closed when they were scored.
			if rd, err = tx.Load(ctx, cf, cf.Add(48*time.Hour), cf.Add(-warm-time.Hour), -1, false); err != nil {
				return err
			}
		}
		w := store.ScoringWrite{Hours: pending, Episodes: s.episodeRows(r, converged)}
		// Only an hour scored is recorded as the latest: an hour without
		// energy scores nothing, and recording the hour before it would make
		// the state depend on whether a run or its hours one by one ended
		// there.
		if !last.Before(from) {
			w.LastHour = last
			w.Delete, w.DeleteFrom, w.DeleteTo = true, from, last
			for k := range r.touched {
				w.Keep = append(w.Keep, k)
			}
		}
		saved, err = tx.Save(ctx, w)
		return err
	})
	if err != nil {
		s.windows.drop(machineID)
		return Result{}, fmt.Errorf("score machine %s from %s: %w", machineID, from.Format(time.RFC3339), err)
	}
	if reachedEnd && !last.Before(from) {
		s.windows.put(machineID, saved.Generation, last, r.window)
	} else {
		s.windows.drop(machineID)
	}
	r.res.Notified, r.res.Deleted = saved.Notified, saved.Deleted
	return r.res, nil
}

// sameVerdict reports whether a re-scored hour agrees with its stored
// record in everything that affects later hours: status, types and state.
func sameVerdict(old, rec store.AnomalyHour) bool {
	return old.Status == rec.Status && slices.Equal(old.Types, rec.Types) && jsonEqual(old.State, rec.State)
}

// sameRecord reports whether a re-scored hour equals its stored record in
// every column scoring writes (then it need not be written again).
func sameRecord(old, rec store.AnomalyHour) bool {
	return sameVerdict(old, rec) && old.Reason == rec.Reason && old.ModelHours == rec.ModelHours &&
		old.ModelVersion == rec.ModelVersion && jsonEqual(old.Signals, rec.Signals) &&
		sameFloats([]float64{old.ActualKWh, old.ExpectedKWh, old.StdError, old.Z, old.AvgPowerKW, old.ProductionCount,
			old.AvgMachineTempC, old.MaxMachineTempC, old.AvgPressureBar, old.PressureDevBar, old.MaxVibrationMMS},
			[]float64{rec.ActualKWh, rec.ExpectedKWh, rec.StdError, rec.Z, rec.AvgPowerKW, rec.ProductionCount,
				rec.AvgMachineTempC, rec.MaxMachineTempC, rec.AvgPressureBar, rec.PressureDevBar, rec.MaxVibrationMMS})
}

func sameFloats(a, b []float64) bool {
	for i := range a {
		if a[i] != b[i] && !(math.IsNaN(a[i]) && math.IsNaN(b[i])) {
			return false
		}
	}
	return true
}

func jsonEqual(a, b json.RawMessage) bool {
	if len(a) == 0 {
		a = json.RawMessage("{}")
	}
	if len(b) == 0 {
		b = json.RawMessage("{}")
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

// episodeRows returns the rows of every episode the re-score touched, in
// time order. When the replay stopped by agreement, episodes still open
// there already have their rows (the stored state matched, and later hours
// may have extended them) and are left as they are.
func (s *Service) episodeRows(r *run, converged bool) []store.Episode {
	keys := make([]store.EpisodeKey, 0, len(r.touched))
	for k := range r.touched {
		if converged {
			if open := r.st.Open[k.Type]; open != nil && open.DetectedAt.Equal(k.DetectedAt) {
				continue
			}
		}
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b store.EpisodeKey) int {
		if c := a.DetectedAt.Compare(b.DetectedAt); c != 0 {
			return c
		}
		return strings.Compare(a.Type, b.Type)
	})
	rows := make([]store.Episode, len(keys))
	for i, k := range keys {
		rows[i] = s.row(r.machineID, r.touched[k])
	}
	return rows
}

// windowCache keeps, per machine, the learning window after the latest
// scored hour, valid while the machine's scoring generation is the one this
// process wrote (no other transaction scored the machine since).
type windowCache struct {
	mu sync.Mutex
	m  map[string]cachedWindow
}

type cachedWindow struct {
	generation int64
	last       time.Time
	window     []store.AnomalyHour
}

// get takes the machine's window out of the cache (the caller owns it; a
// failed re-score leaves the cache empty) when it is still valid.
func (c *windowCache) get(machineID string, generation int64, prev *store.AnomalyHour) ([]store.AnomalyHour, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w, ok := c.m[machineID]
	delete(c.m, machineID)
	if !ok || w.generation != generation || prev == nil || !prev.Hour.Equal(w.last) {
		return nil, false
	}
	return w.window, true
}

// put hands window to the cache; the caller must not use it afterwards.
func (c *windowCache) put(machineID string, generation int64, last time.Time, window []store.AnomalyHour) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]cachedWindow{}
	}
	c.m[machineID] = cachedWindow{generation: generation, last: last, window: window}
}

func (c *windowCache) drop(machineID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, machineID)
}

// scoreHour judges one hour from the state before it and advances the state.
func (s *Service) scoreHour(ctx context.Context, tx *store.AnomalyTx, r *run, in store.AnomalyInput,
	old store.AnomalyHour, had, repredict bool, periods []store.StatusPeriod) (store.AnomalyHour, HourResult, error) {
	rec := store.AnomalyHour{Hour: in.Hour, ActualKWh: in.EnergyKWh, ExpectedKWh: math.NaN(), StdError: math.NaN(),
		Z: math.NaN(), AvgPowerKW: in.AvgPowerKW, ProductionCount: in.ProductionCount,
		AvgMachineTempC: in.AvgMachineTempC, MaxMachineTempC: in.MaxMachineTempC,
		AvgPressureBar: in.AvgPressureBar, PressureDevBar: in.AvgPressureBar - in.AvgPressureSetpointBar,
		MaxVibrationMMS: in.MaxVibrationMMS}
	finish := func(status, reason string, types []string) (store.AnomalyHour, HourResult, error) {
		rec.Status, rec.Reason, rec.Types = status, reason, types
		b, err := json.Marshal(r.st)
		if err != nil {
			return rec, HourResult{}, fmt.Errorf("encode detector state: %w", err)
		}
		rec.State = b
		learn := status == StatusNormal || status == StatusUnscored
		if learn {
			r.window = append(r.window, rec)
			if over := len(r.window) - s.cfg.WindowHours; over > 0 {
				r.window = r.window[over:]
			}
		}
		return rec, HourResult{Hour: in.Hour, Status: status, Reason: reason, Types: types, Learn: learn}, nil
	}

	s.closeQuiet(&r.st, in.Hour)
	if reason := suppression(periods, in, time.Duration(s.cfg.WarmupHours)*time.Hour); reason != "" {
		// Whatever built up before the stop is stale afterwards, and a stop
		// ends the episodes: what follows it is a new situation.
		r.st.CUSUM = analytics.CUSUMState{}
		r.st.Open = nil
		return finish(StatusSuppressed, reason, nil)
	}
	if math.IsNaN(in.EnergyKWh) {
		return finish(StatusUnscored, "no_energy", nil)
	}

	pred, reuse := storedPrediction(old, had && !repredict)
	if had && !repredict && old.Status == StatusUnscored {
		// An hour that was unscored stays so: the model learned it then.
		rec.ExpectedKWh, rec.StdError, rec.ModelHours, rec.ModelVersion = old.ExpectedKWh, old.StdError, old.ModelHours, old.ModelVersion
		return finish(StatusUnscored, old.Reason, nil)
	}
	if !reuse {
		var err error
		if pred, err = r.model.PredictHour(ctx, r.machineID, in.Hour); err != nil {
			return rec, HourResult{}, fmt.Errorf("predict %s: %w", in.Hour.Format(time.RFC3339), err)
		}
	}
	if !pred.OK || !(pred.StdErr > 0) || math.IsNaN(pred.Expected) {
		reason := pred.Reason
		if reason == "" {
			reason = "no_prediction"
		}
		return finish(StatusUnscored, reason, nil)
	}
	rec.ExpectedKWh, rec.StdError, rec.ModelHours, rec.ModelVersion = pred.Expected, pred.StdErr, pred.ModelHours, pred.ModelVersion
	if pred.ModelHours < s.cfg.MinHistoryHours {
		return finish(StatusUnscored, "min_history", nil)
	}
	z := (in.EnergyKWh - pred.Expected) / pred.StdErr
	rec.Z = z

	sc := hourScore{signals: map[string]any{}}
	sc.findings = s.energyFindings(&r.st, z, in.EnergyKWh, pred.Expected, in.ProductionCount)
	sc.signals["energy"] = map[string]any{"z": z, "cusum": r.st.CUSUM}
	pressure, pressureMetric := rec.PressureDevBar, "pressure_deviation_bar"
	if math.IsNaN(pressure) {
		pressure, pressureMetric = in.AvgPressureBar, "avg_pressure_bar"
	}
	for _, sig := range []struct {
		typ, metric string
		x           float64
		pick        func(store.AnomalyHour) float64
		tail        analytics.Tail
	}{
		{TypePressure, pressureMetric, pressure, func(h store.AnomalyHour) float64 {
			if pressureMetric == "pressure_deviation_bar" {
				return h.PressureDevBar
			}
			return h.AvgPressureBar
		}, analytics.TwoSided},
		{TypeTemperature, "max_machine_temp_c", in.MaxMachineTempC, func(h store.AnomalyHour) float64 { return h.MaxMachineTempC }, analytics.Upper},
		{TypeVibration, "max_vibration_mm_s", in.MaxVibrationMMS, func(h store.AnomalyHour) float64 { return h.MaxVibrationMMS }, analytics.Upper},
	} {
		if math.IsNaN(sig.x) {
			continue
		}
		vals := make([]float64, len(r.window))
		for i, h := range r.window {
			vals[i] = sig.pick(h)
		}
		if f, detail, ok := s.signalFinding(sig.typ, sig.metric, sig.x, vals, sig.tail); ok {
			sc.findings = append(sc.findings, f)
			sc.signals[sig.typ] = detail
		}
	}
	forest, err := s.forestFor(ctx, tx, r, in.Hour)
	if err != nil {
		return rec, HourResult{}, err
	}
	if forest != nil {
		if f, detail, ok := forest.finding(rec); ok {
			sc.findings = append(sc.findings, f)
			sc.signals[TypeMultivariate] = detail
		}
	}
	rec.Signals, _ = json.Marshal(sc.signals)

	features := map[string]float64{"energy_z": z, "actual_kwh": in.EnergyKWh, "expected_kwh": pred.Expected,
		"std_error": pred.StdErr, "avg_power_kw": in.AvgPowerKW, "production_count": in.ProductionCount,
		"avg_machine_temp_c": in.AvgMachineTempC, "max_machine_temp_c": in.MaxMachineTempC,
		"avg_pressure_bar": in.AvgPressureBar, "pressure_dev_bar": rec.PressureDevBar,
		"max_vibration_mm_s": in.MaxVibrationMMS, "model_hours": float64(pred.ModelHours)}
	for _, f := range sc.findings {
		features[f.Type+"_z"] = f.Z
	}
	types, touched := s.applyEpisodes(&r.st, in.Hour, sc, features, pred.ModelVersion)
	for _, e := range touched {
		r.touched[e.key()] = e
	}
	if len(types) > 0 {
		return finish(StatusAnomalous, "", types)
	}
	return finish(StatusNormal, "", nil)
}

// storedPrediction returns the prediction stored with an hour when use is
// set and there is one.
func storedPrediction(old store.AnomalyHour, use bool) (Prediction, bool) {
	if !use || math.IsNaN(old.ExpectedKWh) || !(old.StdError > 0) {
		return Prediction{}, false
	}
	return Prediction{OK: true, Expected: old.ExpectedKWh, StdErr: old.StdError, ModelHours: old.ModelHours,
		ModelVersion: old.ModelVersion}, true
}

// forestFor returns the forest to score hour with, training a new one when
// the current one is older than ForestRefreshHours (nil while too few normal
// hours exist).
func (s *Service) forestFor(ctx context.Context, tx *store.AnomalyTx, r *run, hour time.Time) (*trainedForest, error) {
	refresh := time.Duration(s.cfg.ForestRefreshHours) * time.Hour
	before := r.st.ForestBefore
	if before == nil || hour.Sub(*before) >= refresh {
		// Train on the learning hours before this hour.
		t := hour
		if f := s.train(r.machineID, r.window, t); f != nil {
			r.st.ForestBefore = &t
			s.forests.put(r.machineID, f)
			return f, nil
		}
		if before == nil {
			return nil, nil
		}
	}
	if f := s.forests.get(r.machineID, *r.st.ForestBefore); f != nil {
		return f, nil
	}
	learning, err := tx.LearningHours(ctx, *r.st.ForestBefore, s.cfg.WindowHours)
	if err != nil {
		return nil, err
	}
	slices.Reverse(learning)
	f := s.train(r.machineID, learning, *r.st.ForestBefore)
	if f != nil {
		s.forests.put(r.machineID, f)
	}
	return f, nil
}

func (s *Service) train(machineID string, learning []store.AnomalyHour, before time.Time) *trainedForest {
	normal := 0
	for _, h := range learning {
		if h.Status == StatusNormal {
			normal++
		}
	}
	if normal < MinForestHours {
		return nil
	}
	newestFirst := slices.Clone(learning)
	slices.Reverse(newestFirst)
	return trainForest(newestFirst, before, forestSeed(s.cfg.ForestSeed, machineID, before), s.cfg.ForestTrees, s.cal.PerDetector)
}
