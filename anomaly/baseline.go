package anomaly

import (
	"context"
	"errors"
	"time"

	"github.com/enms/enms-analytics/baseline"
	"github.com/enms/enms-analytics/store"
	"github.com/enms/enms-analytics/triggers"
)

// BaselinePredictor adapts the baseline service's rolling model (its Score,
// computed before Refresh adds the hour) to Predictor. An hour the model
// would not learn (the machine not running, a driver missing) is not scored:
// the model says nothing about it.
func BaselinePredictor(b *baseline.Service) Predictor {
	return PredictorFunc(func(ctx context.Context, machineID string, hour time.Time) (Prediction, error) {
		return predictionOf(b.Score(ctx, machineID, hour))
	})
}

// predictionOf is the Prediction of a rolling-model score.
func predictionOf(sc baseline.Score, err error) (Prediction, error) {
	if errors.Is(err, store.ErrNotFound) {
		return Prediction{Reason: "no_energy"}, nil
	}
	if err != nil {
		return Prediction{}, err
	}
	switch {
	case !sc.Ready:
		return Prediction{Reason: "no_model", ModelHours: sc.N, ModelVersion: sc.Version}, nil
	case sc.Exclusion != baseline.Included:
		return Prediction{Reason: "excluded_" + string(sc.Exclusion), ModelHours: sc.N, ModelVersion: sc.Version}, nil
	}
	return Prediction{OK: true, Expected: sc.Predicted, StdErr: sc.SE, ModelHours: sc.N, ModelVersion: sc.Version}, nil
}

// hourClosed scores one closed hour, then lets the rolling model learn it
// only when scoring allows (refresh is baseline.Service.Refresh): an
// anomalous or suppressed hour is kept out of the model.
func (s *Service) hourClosed(ctx context.Context, refresh func(ctx context.Context, machineID string, hour time.Time, include bool) error,
	machineID string, hour time.Time) error {
	hr, _, err := s.HourClosed(ctx, machineID, hour)
	if err != nil {
		return err
	}
	return refresh(ctx, machineID, hour, hr.Learn)
}

// HoursClosed handles a run of closed hours of one machine (strictly
// increasing starts of hours, as the worker's runs of hour_closed events
// are) and leaves what hourClosed(bl.Refresh) leaves called hour by hour:
// the same records, episodes and rolling model. Register it as the run
// handler of hour_closed, in place of the baseline's own handler.
//
// The plain hours of the run are scored in one transaction while the
// rolling model steps through them in memory (baseline.RollingRun), and the
// model is written once after the scores have committed. An hour the run
// cannot take — one at which the model is rebuilt or considered for
// publication, one scored before (a redelivery), one out of order — is
// handled hour by hour, and the run resumes after it.
func (s *Service) HoursClosed(ctx context.Context, bl *baseline.Service, machineID string, hours []time.Time) error {
	for len(hours) > 0 {
		n, err := s.stepRun(ctx, bl, machineID, hours)
		if err != nil {
			return err
		}
		if n == 0 {
			if err := s.hourClosed(ctx, bl.Refresh, machineID, hours[0]); err != nil {
				return err
			}
			n = 1
		}
		hours = hours[n:]
	}
	return nil
}

// runHooks make a re-score a run of new hours (see rescore).
type runHooks struct {
	before  func(hour time.Time) (bool, error)
	predict Predictor
	after   func(HourResult) error
}

// errNotFresh: a run met an hour that was scored before.
var errNotFresh = errors.New("the run meets hours scored before")

// stepRun handles the longest prefix of hours it can as one run and returns
// how many hours it handled (0: handle hours[0] hour by hour). A run of one
// hour (a live hour closing) is worth it too: the model and the hour's
// features are read once, where Score and then Refresh each read them.
func (s *Service) stepRun(ctx context.Context, bl *baseline.Service, machineID string, hours []time.Time) (int, error) {
	for i := 1; i < len(hours); i++ {
		if !hours[i].After(hours[i-1]) {
			hours = hours[:i] // out of order: the run ends before it
			break
		}
	}
	run, ok, err := bl.StartRun(ctx, machineID, hours[0], hours[len(hours)-1])
	if err != nil || !ok || !run.Ready(hours[0]) {
		return 0, err
	}
	next, ended := 0, false // hours[next] is the first hour not stepped yet
	// stepTo steps the run's hours before h. They have no energy, so
	// scoring writes nothing for them and the model keeps them out, as
	// hourClosed does.
	stepTo := func(h time.Time) (bool, error) {
		for next < len(hours) && hours[next].Before(h) {
			if !run.Ready(hours[next]) {
				return false, nil
			}
			if err := run.Step(hours[next], false); err != nil {
				return false, err
			}
			next++
		}
		return true, nil
	}
	hooks := &runHooks{
		before: func(h time.Time) (bool, error) {
			ok, err := stepTo(h)
			// An hour with energy but no event of its own in the run (it
			// closes later) is left to its event.
			ok = ok && err == nil && next < len(hours) && hours[next].Equal(h) && run.Ready(h)
			ended = !ok
			return ok, err
		},
		predict: PredictorFunc(func(_ context.Context, _ string, hour time.Time) (Prediction, error) {
			return predictionOf(run.Predict(hour))
		}),
		after: func(hr HourResult) error {
			if err := run.Step(hr.Hour, hr.Learn); err != nil {
				return err
			}
			next++
			return nil
		},
	}
	first, end := hours[0], hours[len(hours)-1].Add(time.Hour)
	if _, err := s.rescore(ctx, machineID, first, end, func(time.Time) bool { return false }, false, hooks); err != nil {
		if errors.Is(err, errNotFresh) {
			return 0, nil
		}
		return 0, err
	}
	// Trailing hours without energy, unless the run ended before them.
	if !ended {
		if _, err := stepTo(end); err != nil {
			return 0, err
		}
	}
	if err := run.Commit(ctx); err != nil {
		return 0, err
	}
	s.runHours.Add(int64(next))
	return next, nil
}

// HourRevisedHandler returns the listener handler for hour_revised (late
// data for a closed hour): the rolling model replaces what it learned from
// the hour (baseline.Service.Revise), the hour and any later hour whose
// verdict follows from it are re-scored, and every re-scored hour is let
// into or kept out of the rolling model by its new verdict
// (baseline.Service.SetLearned). Register it together with a run handler
// calling HoursClosed.
func (s *Service) HourRevisedHandler(bl *baseline.Service) func(context.Context, triggers.Event) error {
	return func(ctx context.Context, ev triggers.Event) error {
		if err := bl.Revise(ctx, ev.MachineID, ev.Bucket); err != nil {
			return err
		}
		res, err := s.HourRevised(ctx, ev.MachineID, ev.Bucket)
		if err != nil {
			return err
		}
		for _, h := range res.Hours {
			if err := bl.SetLearned(ctx, ev.MachineID, h.Hour.UTC().Truncate(time.Hour), h.Learn); err != nil {
				return err
			}
		}
		return nil
	}
}
