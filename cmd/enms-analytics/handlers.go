package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/enms/enms-analytics/anomaly"
	"github.com/enms/enms-analytics/baseline"
	"github.com/enms/enms-analytics/forecast"
	"github.com/enms/enms-analytics/listener"
	"github.com/enms/enms-analytics/store"
	"github.com/enms/enms-analytics/triggers"
)

// registerHandlers plugs the analytics into the worker. Closed hours come in
// runs of a machine's consecutive hours (one hour when live, up to
// WORKER_MAX_RUN in a backfill), which hoursClosed handles step by step for
// the whole run: each hour is scored against the rolling model BEFORE the
// model learns it (an anomalous or suppressed hour is kept out), then
// forecasts are issued from each hour, then the machine's days the hours
// close are snapshotted; that leaves what handling the hours one by one
// leaves. A revised hour corrects the rolling model first, then is
// re-scored, re-forecast and its day re-snapshotted. The anomaly service is
// returned so the API's /anomaly/detect uses the same configuration.
func registerHandlers(w *listener.Worker, st *store.Store, cfg Config, logger *slog.Logger) (*anomaly.Service, error) {
	bl := baseline.New(baseline.Config{
		Store:            st,
		MinSamples:       cfg.BaselineMinSamples,
		MinR2:            cfg.BaselineMinR2,
		DegreeBaseC:      cfg.DegreeBaseC,
		ModelStoragePath: cfg.ModelStoragePath,
		WindowDays:       cfg.BaselineWindowDays,
		PublishInterval:  cfg.BaselinePublishInterval,
	})
	w.HandleTrain(bl.TrainHandler())

	an, err := anomaly.New(anomaly.Config{
		Store:           st,
		Model:           anomaly.BaselinePredictor(bl),
		Logger:          logger.With("component", "anomaly"),
		Contamination:   cfg.AnomalyContamination,
		WarningSigma:    cfg.AnomalyWarningSigma,
		CriticalSigma:   cfg.AnomalyCriticalSigma,
		MinHistoryHours: cfg.AnomalyMinHistoryHours,
		HourCloseGrace:  cfg.HourCloseGrace,
	})
	if err != nil {
		return nil, fmt.Errorf("configure anomaly detection: %w", err)
	}
	fc := forecast.New(forecast.Config{Store: st, Logger: logger.With("component", "forecast")})

	w.HandleRun(triggers.KindHourClosed, hoursClosed(an, bl, fc, st))
	w.Handle(triggers.KindHourRevised, an.HourRevisedHandler(bl))
	w.Handle(triggers.KindHourRevised, fc.HandleEvent)
	w.Handle(triggers.KindHourRevised, func(ctx context.Context, ev triggers.Event) error {
		_, _, err := st.RefreshKPIDayOfHour(ctx, ev.MachineID, ev.Bucket)
		return err
	})
	return an, nil
}

// hoursClosed handles a run of a machine's closed hours (one hour when
// live; up to the worker's run limit during a backfill): scored and learned,
// forecast from, and the days they close snapshotted, each step for the
// whole run, leaving what handling the hours one by one leaves.
func hoursClosed(an *anomaly.Service, bl *baseline.Service, fc *forecast.Service, st *store.Store) listener.RunHandler {
	return func(ctx context.Context, evs []triggers.Event) error {
		machineID := evs[0].MachineID
		hours := make([]time.Time, len(evs))
		for i, ev := range evs {
			if ev.MachineID != machineID {
				return fmt.Errorf("a run holds events of machines %s and %s; a run is one machine's", machineID, ev.MachineID)
			}
			hours[i] = ev.Bucket
		}
		if err := an.HoursClosed(ctx, bl, machineID, hours); err != nil {
			return err
		}
		if err := fc.HoursClosed(ctx, machineID, hours); err != nil {
			return err
		}
		_, err := st.SnapshotKPIDaysIfClosed(ctx, machineID, hours)
		return err
	}
}
