-- Restores analytics_all_kpis as 000004 left it: no setting of its own, so
-- the session's plan_cache_mode applies again.

ALTER FUNCTION analytics_all_kpis(uuid, timestamptz, timestamptz) RESET plan_cache_mode;
