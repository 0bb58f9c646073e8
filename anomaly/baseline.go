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
		sc, err := b.Score(ctx, machineID, hour)
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
	})
}

// HourClosedHandler returns the listener handler for hour_closed that
// scores the hour first and then lets the rolling model learn it only when
// scoring allows (refresh is baseline.Service.Refresh): an anomalous or
// suppressed hour is kept out of the model. Register it instead of the
// baseline's own hour_closed handler.
func (s *Service) HourClosedHandler(refresh func(ctx context.Context, machineID string, hour time.Time, include bool) error) func(context.Context, triggers.Event) error {
	return func(ctx context.Context, ev triggers.Event) error {
		hr, _, err := s.HourClosed(ctx, ev.MachineID, ev.Bucket)
		if err != nil {
			return err
		}
		return refresh(ctx, ev.MachineID, ev.Bucket, hr.Learn)
	}
}

// HourRevisedHandler returns the listener handler for hour_revised (late
// data for a closed hour): the rolling model replaces what it learned from
// the hour (baseline.Service.Revise), the hour and any later hour whose
// verdict follows from it are re-scored, and every re-scored hour is let
// into or kept out of the rolling model by its new verdict
// (baseline.Service.SetLearned). Register it together with HourClosedHandler.
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
