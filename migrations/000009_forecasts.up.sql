-- Energy forecasts, issued by the worker on every closed hour of a machine,
-- and their accuracy as the actuals arrive.
--
-- origin is the DATA time the forecast was made from (the end of the last
-- closed hour), never the wall clock; issued_at is the wall-clock time of
-- the last (re)issue and created_at of the first. Re-processing the same
-- hour upserts the same keys. Energies (predicted_kwh and the interval
-- bounds) are per target bucket; predicted_kw is the bucket's average power.
CREATE TABLE energy_forecasts (
    machine_id    uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    origin        timestamptz NOT NULL,
    target_bucket timestamptz NOT NULL,        -- start of the forecast bucket
    resolution    text NOT NULL CHECK (resolution IN ('15min', '1hour', '1day')),
    horizon       integer NOT NULL CHECK (horizon >= 1), -- 1 = the first bucket after origin
    predicted_kwh double precision NOT NULL,
    predicted_kw  double precision NOT NULL,
    lower_80      double precision NOT NULL,   -- kWh, empirical 10th percentile
    upper_80      double precision NOT NULL,   -- kWh, empirical 90th percentile
    lower_95      double precision NOT NULL,   -- kWh, empirical 2.5th percentile
    upper_95      double precision NOT NULL,   -- kWh, empirical 97.5th percentile
    model         text NOT NULL,
    actual_kwh    double precision,            -- the target bucket's energy once it has closed
    issued_at     timestamptz NOT NULL DEFAULT now(),
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT energy_forecasts_key UNIQUE (machine_id, origin, target_bucket, resolution),
    CHECK (target_bucket >= origin)
);

-- the latest forecast of a machine at a resolution
CREATE INDEX energy_forecasts_latest_idx ON energy_forecasts (machine_id, resolution, origin DESC);
-- forecasts still waiting for their actual
CREATE INDEX energy_forecasts_unscored_idx ON energy_forecasts (machine_id, resolution, target_bucket)
    WHERE actual_kwh IS NULL;
-- accuracy over recent targets
CREATE INDEX energy_forecasts_scored_idx ON energy_forecasts (machine_id, target_bucket)
    WHERE actual_kwh IS NOT NULL;

-- Accuracy per machine, resolution and horizon over every scored forecast:
-- MAPE in % (over actuals > 0), bias = mean(predicted − actual) in kWh
-- (positive: over-forecast), MAE in kWh, and the share of actuals inside the
-- 80 % and 95 % intervals (bounds inclusive).
CREATE VIEW energy_forecast_accuracy AS
SELECT machine_id, resolution, horizon,
       count(*)                                                        AS n,
       100 * avg(abs(actual_kwh - predicted_kwh) / actual_kwh)
           FILTER (WHERE actual_kwh > 0)                               AS mape,
       avg(predicted_kwh - actual_kwh)                                 AS bias_kwh,
       avg(abs(predicted_kwh - actual_kwh))                            AS mae_kwh,
       avg(CASE WHEN actual_kwh BETWEEN lower_80 AND upper_80 THEN 1.0 ELSE 0.0 END) AS coverage_80,
       avg(CASE WHEN actual_kwh BETWEEN lower_95 AND upper_95 THEN 1.0 ELSE 0.0 END) AS coverage_95,
       min(target_bucket)                                              AS first_target,
       max(target_bucket)                                              AS last_target
FROM energy_forecasts
WHERE actual_kwh IS NOT NULL
GROUP BY machine_id, resolution, horizon;
