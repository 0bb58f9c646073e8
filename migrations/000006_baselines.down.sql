DROP TABLE IF EXISTS baseline_rolling_kept_out;
DROP TABLE IF EXISTS baseline_rolling_hours;
DROP TABLE IF EXISTS baseline_rolling_state;
