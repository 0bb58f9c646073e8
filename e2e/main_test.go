// Package e2e drives the analytics UI in a real headless Chromium against
// the real API (http.New on a loopback listener), the real event worker
// (listener with the baseline trainer) and a real PostgreSQL database.
//
// Chromium is /usr/bin/chromium (CHROMIUM_PATH overrides); `make deps`
// installs it. Screenshots go to $ARTIFACTS_DIR/e2e, else
// $TMPDIR/enms-e2e-artifacts; every path is logged.
package e2e

import (
	"testing"

	"github.com/enms/enms-analytics/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }
