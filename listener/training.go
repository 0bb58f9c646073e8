package listener

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/enms/enms-analytics/store"
)

// runTraining is the claim loop of the training queue: one request at a
// time, woken by baseline_train_requested, the poll ticker or a retry timer.
func (w *Worker) runTraining(ctx, hctx context.Context, train TrainHandler) {
	poll := time.NewTicker(w.cfg.PollInterval)
	defer poll.Stop()
	dirty, drained := true, false
	for {
		for dirty && ctx.Err() == nil {
			dirty = false
			epoch := w.listenEpoch.Load()
			reqs, err := w.st.ClaimTrainRequests(ctx, w.cfg.Name, 1, w.cfg.LeaseDuration)
			if err != nil {
				if ctx.Err() == nil {
					w.log.Warn("claim training requests failed; retrying at the next wake-up or poll", "err", err)
				}
				break
			}
			if len(reqs) == 0 {
				w.markDrained(&drained, epoch)
				break
			}
			w.processTrain(ctx, hctx, train, reqs[0])
			dirty = true
		}
		select {
		case <-ctx.Done():
			return
		case <-w.trainWake:
			dirty = true
		case <-poll.C:
			dirty = true
		}
	}
}

// processTrain runs the trainer on one claimed request inside a transaction
// that also records the outcome and notifies baseline_train_done.
func (w *Worker) processTrain(ctx, hctx context.Context, train TrainHandler, req store.TrainRequest) {
	log := w.log.With("request_id", req.ID, "machine_id", req.MachineID, "attempt", req.Attempts)
	sctx, scancel := context.WithTimeout(hctx, storeTimeout)
	defer scancel()
	if req.Attempts > w.cfg.MaxAttempts {
		msg := fmt.Sprintf("Training was interrupted %d times (the worker stopped or ran out of time while training); giving up.", req.Attempts-1)
		w.finishNow(sctx, log, req, msg)
		return
	}

	tctx, tcancel := context.WithTimeout(hctx, w.cfg.TrainTimeout)
	defer tcancel()
	res, err := w.trainInTx(tctx, train, req)
	if err == nil {
		w.metrics.trainFinished.WithLabelValues(string(res.Status)).Inc()
		log.Info("training request finished", "status", res.Status, "baseline_id", res.BaselineID, "error", res.Error)
		return
	}
	if errors.Is(err, errLeaseLost) {
		log.Warn("training request was taken over by another worker after its lease expired")
		return
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		if rerr := w.st.ReleaseTrainRequests(sctx, w.cfg.Name, []string{req.ID}); rerr != nil {
			log.Warn("release training request at shutdown; its lease will expire instead", "err", rerr)
		}
		return
	}
	if req.Attempts >= w.cfg.MaxAttempts {
		w.finishNow(sctx, log, req, fmt.Sprintf("Training failed after %d attempts: %v", req.Attempts, err))
		return
	}
	backoff := w.cfg.Backoff(req.Attempts)
	log.Warn("training failed; will retry", "retry_in", backoff, "err", err)
	if rerr := w.st.RetryTrainRequest(sctx, w.cfg.Name, req.ID, err.Error(), backoff); rerr != nil {
		log.Warn("record training retry; its lease will expire instead", "err", rerr)
		return
	}
	time.AfterFunc(backoff, func() { wake(w.trainWake) })
}

var errLeaseLost = errors.New("the request's lease was lost")

// trainInTx locks the request, calls the trainer and records its result,
// all in one transaction.
func (w *Worker) trainInTx(ctx context.Context, train TrainHandler, req store.TrainRequest) (TrainResult, error) {
	var res TrainResult
	err := pgx.BeginFunc(ctx, w.st.Pool(), func(tx pgx.Tx) error {
		held, err := store.LockTrainRequest(ctx, tx, w.cfg.Name, req.ID)
		if err != nil {
			return err
		}
		if !held {
			return errLeaseLost
		}
		if res, err = callTrainer(ctx, train, tx, req); err != nil {
			return err
		}
		if msg := res.problem(); msg != "" {
			// The trainer's verdict is unusable: roll back what it wrote
			// and fail the request with the reason.
			return errBadResult{msg}
		}
		return store.FinishTrainRequest(ctx, tx, req.ID, res.Status, res.Error, res.BaselineID)
	})
	var bad errBadResult
	if errors.As(err, &bad) {
		res = TrainResult{Status: store.TrainFailed, Error: bad.msg}
		held, ferr := w.st.FinishTrainRequestNow(ctx, w.cfg.Name, req.ID, res.Status, res.Error)
		if ferr == nil && !held {
			ferr = errLeaseLost
		}
		return res, ferr
	}
	return res, err
}

type errBadResult struct{ msg string }

func (e errBadResult) Error() string { return e.msg }

// problem says what is wrong with a trainer's result, or "".
func (r TrainResult) problem() string {
	switch r.Status {
	case store.TrainDone:
		if r.BaselineID == "" {
			return "The trainer reported success but named no baseline; this is a bug in the trainer."
		}
	case store.TrainRejected, store.TrainFailed:
		if r.Error == "" {
			return fmt.Sprintf("The trainer reported %s without saying why; this is a bug in the trainer.", r.Status)
		}
	default:
		return fmt.Sprintf("The trainer returned status %q, which is not done, rejected or failed; this is a bug in the trainer.", r.Status)
	}
	return ""
}

func callTrainer(ctx context.Context, train TrainHandler, tx pgx.Tx, req store.TrainRequest) (res TrainResult, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("the trainer panicked: %v", p)
		}
	}()
	return train(ctx, tx, req)
}

// finishNow fails a request outside the trainer's transaction.
func (w *Worker) finishNow(ctx context.Context, log *slog.Logger, req store.TrainRequest, msg string) {
	held, err := w.st.FinishTrainRequestNow(ctx, w.cfg.Name, req.ID, store.TrainFailed, msg)
	switch {
	case err != nil:
		log.Warn("record failed training request; its lease will expire instead", "err", err)
	case held:
		w.metrics.trainFinished.WithLabelValues(string(store.TrainFailed)).Inc()
		log.Error("training request failed", "error", msg)
	}
}
