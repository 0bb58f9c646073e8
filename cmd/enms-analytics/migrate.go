package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"

	"github.com/enms/enms-analytics/migrations"
)

func migrateCmd(ctx context.Context, cfg Config, logger *slog.Logger, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("migrate needs up, down [N] or version")
	}
	url, stop, err := openDatabase(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer stop()
	switch args[0] {
	case "up":
		if err := migrations.Up(url); err != nil {
			return err
		}
	case "down":
		steps := 0
		if len(args) > 1 {
			if steps, err = strconv.Atoi(args[1]); err != nil || steps < 1 {
				return fmt.Errorf("migrate down: %q is not a positive number of steps", args[1])
			}
		}
		if err := migrations.Down(url, steps); err != nil {
			return err
		}
	case "version":
	default:
		return fmt.Errorf("migrate: unknown action %q; want up, down [N] or version", args[0])
	}
	v, dirty, err := migrations.Version(url)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "version %d", v)
	if dirty {
		fmt.Fprint(stdout, " (dirty: the last migration failed half-way; fix it and run `migrate down 1` or force)")
	}
	fmt.Fprintln(stdout)
	return nil
}
