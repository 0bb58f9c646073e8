DROP FUNCTION IF EXISTS kpi_day_closed_by(uuid, timestamptz);
DROP FUNCTION IF EXISTS kpi_snapshot_day(uuid, date);
DROP TABLE IF EXISTS kpi_daily_snapshots;
