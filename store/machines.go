package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// MachineTypes are the values of the EnMS machine_type enum, in its order.
var MachineTypes = []string{"compressor", "hvac", "motor", "pump", "injection_molding", "conveyor", "other"}

// Machine is a row of machines with the name and time zone of its factory.
type Machine struct {
	ID                  string          `json:"id"`
	FactoryID           string          `json:"factory_id"`
	FactoryName         string          `json:"factory_name"`
	FactoryTimezone     string          `json:"factory_timezone"`
	Name                string          `json:"name"`
	Type                string          `json:"type"`
	RatedPowerKW        *float64        `json:"rated_power_kw"` // null when not recorded
	DataIntervalSeconds int             `json:"data_interval_seconds"`
	IsActive            bool            `json:"is_active"`
	IsCritical          bool            `json:"is_critical"`
	Manufacturer        *string         `json:"manufacturer"`
	Model               *string         `json:"model"`
	SerialNumber        *string         `json:"serial_number"`
	InstallationDate    *string         `json:"installation_date"` // YYYY-MM-DD
	CreatedAt           time.Time       `json:"created_at"`
	UpdatedAt           time.Time       `json:"updated_at"`
	Metadata            json.RawMessage `json:"metadata"`
}

// MachineFilter selects machines. Zero fields do not filter.
type MachineFilter struct {
	FactoryID string // a factory's id
	Type      string // one of MachineTypes
	Active    *bool  // is_active
	Limit     int    // at most this many; 0 = no limit
	Offset    int
}

const machineColumns = `
	m.id::text, m.factory_id::text, f.name, f.timezone, m.name, m.type::text,
	m.rated_power_kw, m.data_interval_seconds, m.is_active, m.is_critical,
	m.manufacturer, m.model, m.serial_number, to_char(m.installation_date, 'YYYY-MM-DD'),
	m.created_at, m.updated_at, m.metadata`

func scanMachine(row pgx.Row) (Machine, error) {
	var m Machine
	var meta []byte
	err := row.Scan(&m.ID, &m.FactoryID, &m.FactoryName, &m.FactoryTimezone, &m.Name, &m.Type,
		&m.RatedPowerKW, &m.DataIntervalSeconds, &m.IsActive, &m.IsCritical,
		&m.Manufacturer, &m.Model, &m.SerialNumber, &m.InstallationDate,
		&m.CreatedAt, &m.UpdatedAt, &meta)
	m.Metadata = json.RawMessage(meta)
	m.CreatedAt, m.UpdatedAt = m.CreatedAt.UTC(), m.UpdatedAt.UTC()
	return m, err
}

// ListMachines returns the machines matching f, ordered by factory and name.
func (s *Store) ListMachines(ctx context.Context, f MachineFilter) ([]Machine, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.FactoryID != "" {
		add("m.factory_id = $%d", f.FactoryID)
	}
	if f.Type != "" {
		add("m.type::text = $%d", f.Type)
	}
	if f.Active != nil {
		add("m.is_active = $%d", *f.Active)
	}
	q := `SELECT ` + machineColumns + ` FROM machines m JOIN factories f ON f.id = m.factory_id`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY f.name, m.name`
	if f.Limit > 0 {
		args = append(args, f.Limit)
		q += fmt.Sprintf(` LIMIT $%d`, len(args))
	}
	if f.Offset > 0 {
		args = append(args, f.Offset)
		q += fmt.Sprintf(` OFFSET $%d`, len(args))
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list machines: %w", unavailable(err))
	}
	out := []Machine{}
	for rows.Next() {
		m, err := scanMachine(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan machine: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list machines: %w", unavailable(err))
	}
	return out, nil
}

// Machine returns one machine; an unknown id is an error wrapping ErrNotFound.
func (s *Store) Machine(ctx context.Context, id string) (Machine, error) {
	m, err := scanMachine(s.pool.QueryRow(ctx,
		`SELECT `+machineColumns+` FROM machines m JOIN factories f ON f.id = m.factory_id WHERE m.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Machine{}, fmt.Errorf("machine %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Machine{}, fmt.Errorf("get machine %s: %w", id, unavailable(err))
	}
	return m, nil
}

// MachineStatus is the current state of a machine, from machine_status
// (upserted by Node-RED).
type MachineStatus struct {
	IsRunning             bool       `json:"is_running"`
	CurrentMode           string     `json:"current_mode"`
	CurrentPowerKW        *float64   `json:"current_power_kw"`
	CurrentProductionRate *float64   `json:"current_production_rate"`
	LastUpdated           time.Time  `json:"last_updated"`
	LastFaultAt           *time.Time `json:"last_fault_at"`
}

// CurrentStatus returns the machine's current status, or nil when the
// machine has never reported one.
func (s *Store) CurrentStatus(ctx context.Context, machineID string) (*MachineStatus, error) {
	var st MachineStatus
	err := s.pool.QueryRow(ctx, `
		SELECT is_running, current_mode::text, current_power_kw, current_production_rate,
		       last_updated, last_fault_at
		FROM machine_status WHERE machine_id = $1`, machineID).Scan(
		&st.IsRunning, &st.CurrentMode, &st.CurrentPowerKW, &st.CurrentProductionRate,
		&st.LastUpdated, &st.LastFaultAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("current status of %s: %w", machineID, unavailable(err))
	}
	st.LastUpdated = st.LastUpdated.UTC()
	st.LastFaultAt = utcPtr(st.LastFaultAt)
	return &st, nil
}

// StatusPeriod is one row of machine_status_history: the machine was in
// Mode from ValidFrom until ValidTo (nil while it still is).
type StatusPeriod struct {
	IsRunning bool       `json:"is_running"`
	Mode      string     `json:"mode"`
	ValidFrom time.Time  `json:"valid_from"`
	ValidTo   *time.Time `json:"valid_to"`
}

// StatusHistory returns the machine's most recent status periods, newest
// first, at most limit of them. available is false when the database has no
// machine_status_history table (a database migrated before it existed).
func (s *Store) StatusHistory(ctx context.Context, machineID string, limit int) (periods []StatusPeriod, available bool, err error) {
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass('machine_status_history') IS NOT NULL`).Scan(&available); err != nil {
		return nil, false, fmt.Errorf("look up status history table: %w", unavailable(err))
	}
	if !available {
		return []StatusPeriod{}, false, nil
	}
	rows, err := s.pool.Query(ctx, `
		SELECT is_running, mode::text, valid_from, valid_to
		FROM machine_status_history WHERE machine_id = $1
		ORDER BY valid_from DESC LIMIT $2`, machineID, limit)
	if err != nil {
		return nil, true, fmt.Errorf("status history of %s: %w", machineID, unavailable(err))
	}
	periods, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (StatusPeriod, error) {
		var p StatusPeriod
		err := r.Scan(&p.IsRunning, &p.Mode, &p.ValidFrom, &p.ValidTo)
		p.ValidFrom, p.ValidTo = p.ValidFrom.UTC(), utcPtr(p.ValidTo)
		return p, err
	})
	if err != nil {
		return nil, true, fmt.Errorf("status history of %s: %w", machineID, unavailable(err))
	}
	if periods == nil {
		periods = []StatusPeriod{}
	}
	return periods, true, nil
}

// utcPtr returns *t in UTC, so every time the API sends is in one zone.
func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
