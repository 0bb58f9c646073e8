// Package migrations holds the database schema as golang-migrate files
// (NNNNNN_name.up.sql / .down.sql), embedded in the binary. The same files
// work with the upstream `migrate` CLI:
//
//	migrate -path migrations -database "$DATABASE_URL" up
package migrations

import (
	"embed"
	"errors"
	"fmt"
	"strings"

	"github.com/golang-migrate/migrate/v4"
	_ "github.com/golang-migrate/migrate/v4/database/pgx/v5" // registers pgx5://
	"github.com/golang-migrate/migrate/v4/source/iofs"
)

// FS is the embedded migration files.
//
//go:embed *.sql
var FS embed.FS

// open returns a migrator for a postgres:// (or postgresql://) URL.
func open(databaseURL string) (*migrate.Migrate, error) {
	src, err := iofs.New(FS, ".")
	if err != nil {
		return nil, fmt.Errorf("open embedded migrations: %w", err)
	}
	m, err := migrate.NewWithSourceInstance("iofs", src, driverURL(databaseURL))
	if err != nil {
		return nil, fmt.Errorf("connect for migrations: %w", err)
	}
	return m, nil
}

// driverURL rewrites postgres:// and postgresql:// to the pgx5:// scheme the
// golang-migrate pgx/v5 driver registers.
func driverURL(u string) string {
	for _, p := range []string{"postgres://", "postgresql://"} {
		if strings.HasPrefix(u, p) {
			return "pgx5://" + strings.TrimPrefix(u, p)
		}
	}
	return u
}

func closeMigrator(m *migrate.Migrate, err error) error {
	srcErr, dbErr := m.Close()
	return errors.Join(err, srcErr, dbErr)
}

// Up applies every migration not yet applied. An up-to-date database is not
// an error.
func Up(databaseURL string) error {
	m, err := open(databaseURL)
	if err != nil {
		return err
	}
	err = m.Up()
	if errors.Is(err, migrate.ErrNoChange) {
		err = nil
	}
	return closeMigrator(m, wrap("migrate up", err))
}

// Down reverts migrations: all of them when steps is 0, else that many.
func Down(databaseURL string, steps int) error {
	m, err := open(databaseURL)
	if err != nil {
		return err
	}
	if steps > 0 {
		err = m.Steps(-steps)
	} else {
		err = m.Down()
	}
	if errors.Is(err, migrate.ErrNoChange) {
		err = nil
	}
	return closeMigrator(m, wrap("migrate down", err))
}

// Version reports the applied version and whether the last migration failed
// half-way (dirty). A database without migrations reports version 0.
func Version(databaseURL string) (version uint, dirty bool, err error) {
	m, err := open(databaseURL)
	if err != nil {
		return 0, false, err
	}
	version, dirty, err = m.Version()
	if errors.Is(err, migrate.ErrNilVersion) {
		err = nil
	}
	return version, dirty, closeMigrator(m, wrap("migrate version", err))
}

func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", op, err)
}
