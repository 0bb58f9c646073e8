package migrations_test

import (
	"context"
	"testing"

	"github.com/enms/enms-analytics/internal/testdb"
	"github.com/enms/enms-analytics/migrations"
)

// enmsCore is a cut-down copy of the EnMS core schema as an existing plant
// database has it (numeric columns, its own defaults), with data in it.
const enmsCore = `
CREATE TYPE machine_type AS ENUM ('compressor', 'hvac', 'motor', 'pump', 'injection_molding', 'conveyor', 'other');
CREATE TYPE alert_level AS ENUM ('normal', 'warning', 'critical');
CREATE TYPE operating_mode AS ENUM ('idle', 'running', 'maintenance', 'fault', 'offline');
CREATE TABLE factories (id uuid PRIMARY KEY, name varchar(255) NOT NULL UNIQUE, location varchar(255),
    timezone varchar(50) DEFAULT 'UTC', created_at timestamptz DEFAULT now(), updated_at timestamptz DEFAULT now(),
    metadata jsonb DEFAULT '{}');
CREATE TABLE machines (id uuid PRIMARY KEY, factory_id uuid REFERENCES factories(id), name varchar(255) NOT NULL,
    type machine_type NOT NULL, rated_power_kw numeric(10,2), data_interval_seconds integer DEFAULT 1,
    is_active boolean DEFAULT true, is_critical boolean DEFAULT false, metadata jsonb DEFAULT '{}',
    UNIQUE (factory_id, name));
CREATE TABLE energy_readings (time timestamptz NOT NULL, machine_id uuid NOT NULL REFERENCES machines(id),
    power_kw numeric(10,3) NOT NULL, energy_kwh numeric(12,4), voltage_v numeric(8,2), current_a numeric(8,2),
    power_factor numeric(4,3), frequency_hz numeric(5,2), is_estimated boolean DEFAULT false,
    quality_score numeric(3,2), source varchar(50), metadata jsonb DEFAULT '{}');
INSERT INTO factories (id, name, timezone) VALUES ('11111111-1111-1111-1111-111111111111', 'Old Plant', 'Europe/Berlin');
INSERT INTO machines (id, factory_id, name, type, rated_power_kw, data_interval_seconds)
    VALUES ('22222222-2222-2222-2222-222222222222', '11111111-1111-1111-1111-111111111111', 'Press-7', 'pump', 45, 10);
INSERT INTO energy_readings (time, machine_id, power_kw, energy_kwh)
    SELECT '2026-01-01T00:00:00Z'::timestamptz + i * interval '10 seconds', '22222222-2222-2222-2222-222222222222', 40 + i % 7, NULL
    FROM generate_series(0, 999) AS i;
`

// TestAdoptExistingEnMSDatabase runs up → down → up on a database that
// already holds the EnMS core tables with data: the data is intact after
// each step and the adopted tables survive the down migration.
func TestAdoptExistingEnMSDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.EmptyURL(t)
	pool := testdb.Pool(t, url)
	if _, err := pool.Exec(ctx, enmsCore); err != nil {
		t.Fatalf("create EnMS core: %v", err)
	}
	// 1,000 readings, power 40 + i%7 kW: sum over i = 0..999 of (40 + i%7)
	// = 40·1000 + (142 full cycles × 21 + (0+1+2+3+4+5)) = 40000 + 2982 + 15 = 42997.
	const wantRows, wantSum = 1000, 42997.0
	check := func(step string) {
		t.Helper()
		var rows int
		var sum float64
		var name string
		err := pool.QueryRow(ctx, `SELECT count(*), sum(power_kw)::float8,
			(SELECT name FROM machines WHERE id = '22222222-2222-2222-2222-222222222222') FROM energy_readings`).Scan(&rows, &sum, &name)
		if err != nil {
			t.Fatalf("%s: read adopted data: %v", step, err)
		}
		if rows != wantRows || sum != wantSum || name != "Press-7" {
			t.Fatalf("%s: adopted data changed: rows=%d sum=%v machine=%q", step, rows, sum, name)
		}
	}
	if err := migrations.Up(url); err != nil {
		t.Fatalf("up on an EnMS database: %v", err)
	}
	check("after up")
	if err := migrations.Down(url, 0); err != nil {
		t.Fatalf("down: %v", err)
	}
	check("after down")
	if err := migrations.Up(url); err != nil {
		t.Fatalf("second up: %v", err)
	}
	check("after second up")
	// The constraints this service adds apply to new rows of adopted tables.
	_, err := pool.Exec(ctx, `INSERT INTO energy_readings (time, machine_id, power_kw, energy_kwh)
		VALUES ('2026-02-01T00:00:00Z', '22222222-2222-2222-2222-222222222222', 10, -1)`)
	if err == nil {
		t.Error("negative energy accepted into an adopted table")
	}
}
