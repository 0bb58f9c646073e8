DROP TABLE IF EXISTS baseline_rolling_hours;
DROP TABLE IF EXISTS baseline_rolling_state;
