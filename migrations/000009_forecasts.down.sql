DROP VIEW IF EXISTS energy_forecast_accuracy;
DROP TABLE IF EXISTS energy_forecasts;
