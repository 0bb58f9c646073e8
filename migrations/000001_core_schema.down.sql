-- Reverts 000001: drops exactly what the up migration created (recorded in
-- analytics_schema_objects). Tables and types of an adopted EnMS database, and
-- their data, stay.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT object_name FROM analytics_schema_objects WHERE object_kind = 'constraint' AND migration = 1 LOOP
        IF to_regclass(split_part(r.object_name, '.', 1)) IS NOT NULL THEN
            EXECUTE format('ALTER TABLE %I DROP CONSTRAINT IF EXISTS %I',
                split_part(r.object_name, '.', 1), split_part(r.object_name, '.', 2));
        END IF;
    END LOOP;
    FOR r IN SELECT object_name FROM analytics_schema_objects WHERE object_kind = 'index' AND migration = 1 LOOP
        EXECUTE format('DROP INDEX IF EXISTS %I', r.object_name);
    END LOOP;
    -- Children before parents.
    FOR r IN SELECT object_name FROM analytics_schema_objects o
             JOIN unnest(ARRAY['anomalies', 'energy_baselines', 'machine_status', 'environmental_data',
                               'production_data', 'energy_readings', 'energy_tariffs', 'carbon_factors',
                               'machines', 'factories']) WITH ORDINALITY AS t(name, ord) ON t.name = o.object_name
             WHERE object_kind = 'table' AND migration = 1 ORDER BY t.ord LOOP
        EXECUTE format('DROP TABLE IF EXISTS %I', r.object_name);
    END LOOP;
    FOR r IN SELECT object_name FROM analytics_schema_objects WHERE object_kind = 'type' AND migration = 1 LOOP
        EXECUTE format('DROP TYPE IF EXISTS %I', r.object_name);
    END LOOP;
END
$$;

DROP INDEX IF EXISTS machines_factory_idx;
DROP INDEX IF EXISTS anomalies_machine_detected_idx;
DROP INDEX IF EXISTS energy_baselines_machine_active_idx;
DROP FUNCTION IF EXISTS is_finite_number(double precision);
DROP TABLE analytics_schema_objects;
