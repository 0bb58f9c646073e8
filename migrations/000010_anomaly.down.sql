-- Reverts 000010: the scoring records, and the episode columns, constraint
-- and indexes added to the adopted anomalies table (its rows stay).
DROP FUNCTION anomaly_hour_learnable(uuid, timestamptz);
DROP TABLE anomaly_machine_state;
DROP TABLE anomaly_hours;
DROP INDEX anomalies_unresolved_idx;
DROP INDEX anomalies_detected_idx;
DROP INDEX anomalies_episode_key;
ALTER TABLE anomalies DROP CONSTRAINT anomalies_episode_hours_check;
ALTER TABLE anomalies DROP COLUMN hour_count;
ALTER TABLE anomalies DROP COLUMN last_hour;
