package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/jackc/pgx/v5"

	"github.com/enms/enms-analytics/internal/embedpg"
)

// embeddedDatabase is the database the embedded cluster serves.
const embeddedDatabase = "enms"

// openDatabase returns the URL of the configured database, or starts the
// embedded cluster under DATA_DIR/postgres when none is configured. stop
// shuts the embedded cluster down (a no-op otherwise).
func openDatabase(ctx context.Context, cfg Config, logger *slog.Logger) (url string, stop func(), err error) {
	if cfg.DatabaseURL != "" {
		return cfg.DatabaseURL, func() {}, nil
	}
	dir := filepath.Join(cfg.DataDir, "postgres")
	logger.Info("no DATABASE_URL or DATABASE_HOST set: starting embedded PostgreSQL", "data_dir", dir)
	srv, err := embedpg.Start(ctx, embedpg.Config{DataDir: dir, Durable: true})
	if err != nil {
		return "", nil, err
	}
	stop = func() {
		if err := srv.Stop(); err != nil {
			logger.Error("stop embedded PostgreSQL", "err", err)
		} else {
			logger.Info("embedded PostgreSQL stopped")
		}
	}
	if err := ensureDatabase(ctx, srv.URL, embeddedDatabase); err != nil {
		stop()
		return "", nil, err
	}
	url = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", srv.Port, embeddedDatabase)
	logger.Info("embedded PostgreSQL ready", "url", url)
	return url, stop, nil
}

func ensureDatabase(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect to embedded PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %q: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	return nil
}
