-- Reverts 000004: drops the KPI functions and their helpers, callers first.
-- (Original EnMS versions that the up migration replaced are not restored.)
DROP FUNCTION IF EXISTS get_factory_summary(uuid, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS get_machine_operating_hours(uuid, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS calculate_all_kpis(uuid, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS analytics_all_kpis(uuid, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS calculate_carbon_intensity(uuid, timestamptz, timestamptz, text);
DROP FUNCTION IF EXISTS calculate_energy_cost(uuid, timestamptz, timestamptz, uuid);
DROP FUNCTION IF EXISTS calculate_load_factor(uuid, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS calculate_peak_demand(uuid, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS calculate_sec(uuid, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS analytics_machine_kpis(uuid, timestamptz, timestamptz, uuid, text);
DROP FUNCTION IF EXISTS analytics_carbon_factor(uuid, text, timestamptz);
DROP FUNCTION IF EXISTS analytics_tariff(uuid, timestamptz);
DROP FUNCTION IF EXISTS analytics_hour_in_window(integer, integer, integer);
DROP FUNCTION IF EXISTS analytics_default_rate();
DROP FUNCTION IF EXISTS analytics_production_hours(uuid, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS analytics_energy_hours(uuid, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS analytics_window_hours(timestamptz, timestamptz);
DROP FUNCTION IF EXISTS analytics_hour_ceil(timestamptz);
DROP FUNCTION IF EXISTS analytics_hour_floor(timestamptz);
