// Package testdb gives each test its own freshly migrated PostgreSQL
// database. The server is TEST_DATABASE_URL when set, else a private
// throwaway cluster started from the system's PostgreSQL binaries (one per
// test binary, in a temporary directory, removed afterwards). Databases are
// cloned from one migrated template (pgtestdb), so a new database costs a
// CREATE DATABASE … TEMPLATE, not a migration run.
//
// Every test package that uses it has
//
//	func TestMain(m *testing.M) { testdb.Main(m) }
//
// which also stops the cluster and checks for leaked goroutines.
package testdb

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx" for pgtestdb
	"github.com/peterldowns/pgtestdb"
	"go.uber.org/goleak"

	"github.com/enms/enms-analytics/internal/embedpg"
	"github.com/enms/enms-analytics/migrations"
)

var (
	once    sync.Once
	server  *embedpg.Server
	baseURL string
	dataDir string
	initErr error
)

// Main runs the package's tests, stops the throwaway cluster and fails the
// run when goroutines leaked.
func Main(m *testing.M) {
	code := m.Run()
	if server != nil {
		if err := server.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "testdb:", err)
		}
		os.RemoveAll(dataDir)
	}
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreCurrent()); err != nil {
			fmt.Fprintln(os.Stderr, "testdb: goroutines leaked:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// AdminURL returns a superuser URL of the test server's `postgres` database,
// starting the throwaway cluster on first use.
func AdminURL(t testing.TB) string {
	t.Helper()
	once.Do(start)
	if initErr != nil {
		t.Fatalf("testdb: %v", initErr)
	}
	return baseURL
}

// Server returns the throwaway cluster, or nil when TEST_DATABASE_URL is set.
// Fault tests use it to restart PostgreSQL.
func Server(t testing.TB) *embedpg.Server {
	AdminURL(t)
	return server
}

func start() {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		baseURL = u
		return
	}
	dir, err := os.MkdirTemp("", "enms-testdb-")
	if err != nil {
		initErr = err
		return
	}
	dataDir = dir
	server, initErr = embedpg.Start(context.Background(), embedpg.Config{DataDir: dir})
	if initErr == nil {
		baseURL = server.URL
	}
}

// URL returns the URL of a new, fully migrated database that is dropped when
// the test ends (kept, and logged, when it fails).
func URL(t testing.TB) string {
	t.Helper()
	return create(t, migrator{})
}

// EmptyURL returns the URL of a new database without any migration applied,
// for migration tests.
func EmptyURL(t testing.TB) string {
	t.Helper()
	return create(t, pgtestdb.NoopMigrator{})
}

// New returns a pool on a new, fully migrated database; the pool is closed
// when the test ends.
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return Pool(t, URL(t))
}

// Pool opens a pool on url and closes it when the test ends.
func Pool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatalf("testdb: open pool: %v", err)
	}
	if err := pool.Ping(ctx); err != nil {
		t.Fatalf("testdb: ping: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func create(t testing.TB, m pgtestdb.Migrator) string {
	t.Helper()
	u, err := url.Parse(AdminURL(t))
	if err != nil {
		t.Fatalf("testdb: parse server URL: %v", err)
	}
	password, _ := u.User.Password()
	conf := pgtestdb.Config{
		DriverName:                "pgx",
		Host:                      u.Hostname(),
		Port:                      u.Port(),
		User:                      u.User.Username(),
		Password:                  password,
		Database:                  "postgres",
		Options:                   u.RawQuery,
		ForceTerminateConnections: true,
	}
	if conf.Options == "" {
		conf.Options = "sslmode=disable"
	}
	return pgtestdb.Custom(t, conf, m).URL()
}

// migrator applies the embedded migrations; its hash covers every file, so
// a changed migration gets a new template.
type migrator struct{}

func (migrator) Hash() (string, error) {
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		b, err := fs.ReadFile(migrations.FS, n)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (migrator) Migrate(_ context.Context, _ *sql.DB, c pgtestdb.Config) error {
	return migrations.Up(c.URL())
}
