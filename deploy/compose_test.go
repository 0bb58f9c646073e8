package deploy_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	apihttp "github.com/enms/enms-analytics/http"
)

// No Docker engine runs here, so these tests read the Dockerfile and the
// compose file and check them against each other, the nginx config and the
// configuration code (cmd/enms-analytics/config.go).

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string                    `yaml:"image"`
	Build       any                       `yaml:"build"`
	Command     []string                  `yaml:"command"`
	Environment map[string]string         `yaml:"environment"`
	Ports       []string                  `yaml:"ports"`
	Volumes     []string                  `yaml:"volumes"`
	DependsOn   map[string]map[string]any `yaml:"depends_on"`
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

// configVars returns the names in cmd/enms-analytics's Vars table, read
// from the source (package main cannot be imported).
func configVars(t *testing.T) map[string]bool {
	t.Helper()
	file, err := parser.ParseFile(token.NewFileSet(), filepath.Join("..", "cmd", "enms-analytics", "config.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	ast.Inspect(file, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || vs.Names[0].Name != "Vars" || len(vs.Values) != 1 {
			return true
		}
		for _, elt := range vs.Values[0].(*ast.CompositeLit).Elts {
			first := elt.(*ast.CompositeLit).Elts[0]
			if kv, ok := first.(*ast.KeyValueExpr); ok {
				first = kv.Value
			}
			name, err := strconv.Unquote(first.(*ast.BasicLit).Value)
			if err != nil {
				t.Fatal(err)
			}
			names[name] = true
		}
		return false
	})
	if len(names) < 10 {
		t.Fatalf("found only %d names in Vars: the parser no longer matches config.go", len(names))
	}
	return names
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

func TestComposeFile(t *testing.T) {
	t.Parallel()
	c := readCompose(t)
	vars := configVars(t)

	names := slices.Sorted(func(yield func(string) bool) {
		for n := range c.Services {
			if !yield(n) {
				return
			}
		}
	})
	if want := []string{"analytics", "nginx", "postgres", "simulator"}; !slices.Equal(names, want) {
		t.Fatalf("services %v, want %v", names, want)
	}
	pg, api, nginx, sim := c.Services["postgres"], c.Services["analytics"], c.Services["nginx"], c.Services["simulator"]

	// Every variable the service containers set is one the config reads.
	for _, svc := range []string{"analytics", "simulator"} {
		for name := range c.Services[svc].Environment {
			if !vars[name] {
				t.Errorf("%s sets %s, which cmd/enms-analytics does not read (not in Vars)", svc, name)
			}
		}
		for _, need := range []string{"DATABASE_HOST", "DATABASE_PORT", "DATABASE_NAME", "DATABASE_USER", "DATABASE_PASSWORD"} {
			if _, ok := c.Services[svc].Environment[need]; !ok {
				t.Errorf("%s does not set %s", svc, need)
			}
		}
		env := c.Services[svc].Environment
		if env["DATABASE_HOST"] != "postgres" || env["DATABASE_NAME"] != pg.Environment["POSTGRES_DB"] ||
			env["DATABASE_USER"] != pg.Environment["POSTGRES_USER"] || env["DATABASE_PASSWORD"] != pg.Environment["POSTGRES_PASSWORD"] {
			t.Errorf("%s's DATABASE_* do not match the postgres service: %v vs %v", svc, env, pg.Environment)
		}
	}

	// Ports: the API on API_PORT 8001, nginx on 8080.
	if api.Environment["API_PORT"] != "8001" || !hasPort(api.Ports, "8001", "8001") {
		t.Errorf("analytics: API_PORT %q ports %v, want 8001", api.Environment["API_PORT"], api.Ports)
	}
	if !hasPort(nginx.Ports, "8080", "8080") {
		t.Errorf("nginx ports %v, want 8080:8080", nginx.Ports)
	}

	// Volumes: the database's data, the models, the nginx site config.
	if !slices.Contains(pg.Volumes, "pgdata:/var/lib/postgresql/data") {
		t.Errorf("postgres volumes %v", pg.Volumes)
	}
	if !slices.Contains(api.Volumes, "models:/app/models/saved") || api.Environment["MODEL_STORAGE_PATH"] != "/app/models/saved" {
		t.Errorf("analytics models volume %v, MODEL_STORAGE_PATH %q", api.Volumes, api.Environment["MODEL_STORAGE_PATH"])
	}
	for _, v := range []string{"pgdata", "models"} {
		if _, ok := c.Volumes[v]; !ok {
			t.Errorf("volume %s is not declared", v)
		}
	}
	var siteMounted bool
	for _, v := range nginx.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == "/etc/nginx/conf.d/default.conf" {
			siteMounted = true
			if _, err := os.Stat(filepath.Join("..", parts[0])); err != nil {
				t.Errorf("nginx mounts %s, which is not in the repository: %v", parts[0], err)
			}
		}
	}
	if !siteMounted {
		t.Errorf("nginx does not mount the site config: %v", nginx.Volumes)
	}
	// The nginx config reaches the service by its compose name and port.
	site, err := os.ReadFile(filepath.Join("nginx", "enms-analytics.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(site), "server analytics:"+api.Environment["API_PORT"]+";") || !strings.Contains(string(site), "listen 8080;") {
		t.Error("enms-analytics.conf does not point at analytics:API_PORT or listen on 8080")
	}

	// Health checks, and start-up order on them.
	for name, svc := range map[string]composeService{"postgres": pg, "analytics": api, "nginx": nginx} {
		if len(svc.Healthcheck.Test) < 2 {
			t.Errorf("%s has no health check", name)
		}
	}
	if !strings.Contains(strings.Join(api.Healthcheck.Test, " "), "http://127.0.0.1:8001/health") {
		t.Errorf("analytics health check %v does not call /health on 8001", api.Healthcheck.Test)
	}
	for svc, dep := range map[string]string{"analytics": "postgres", "nginx": "analytics", "simulator": "analytics"} {
		if c.Services[svc].DependsOn[dep]["condition"] != "service_healthy" {
			t.Errorf("%s does not wait for %s to be healthy", svc, dep)
		}
	}

	// The commands exist in the binary.
	main, err := os.ReadFile(filepath.Join("..", "cmd", "enms-analytics", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	for name, svc := range map[string]composeService{"analytics": api, "simulator": sim} {
		if len(svc.Command) == 0 || !strings.Contains(string(main), `case "`+svc.Command[0]+`":`) {
			t.Errorf("%s runs %v, not a command of enms-analytics", name, svc.Command)
		}
		if svc.Image != "enms-analytics:latest" {
			t.Errorf("%s image %q, want the analytics build", name, svc.Image)
		}
	}
	if api.Build == nil {
		t.Error("analytics is not built from the repository")
	}
}

func hasPort(ports []string, host, container string) bool {
	for _, p := range ports {
		parts := strings.Split(p, ":")
		if len(parts) >= 2 && parts[len(parts)-2] == host && parts[len(parts)-1] == container {
			return true
		}
	}
	return false
}

// TestDockerfile checks the build against the contract: multi-stage, a
// static binary, the toolchain of go.mod, non-root, health check, the
// models volume and the API port.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	// Join continuation lines, drop comments.
	text := regexp.MustCompile(`\\\n\s*`).ReplaceAllString(string(raw), " ")
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	var stages []int
	for i, l := range lines {
		if strings.HasPrefix(l, "FROM ") {
			stages = append(stages, i)
		}
	}
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a multi-stage build", len(stages))
	}
	final := lines[stages[len(stages)-1]:]
	has := func(ls []string, re string) bool {
		r := regexp.MustCompile(re)
		return slices.ContainsFunc(ls, r.MatchString)
	}
	gomod, err := os.ReadFile(filepath.Join("..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if goVersion == nil || !strings.HasPrefix(lines[stages[0]], "FROM golang:"+string(goVersion[1])) {
		t.Errorf("build stage %q does not use go.mod's Go %s", lines[stages[0]], goVersion[1])
	}
	checks := []struct{ what, re string }{
		{"a static binary (CGO_ENABLED=0)", `^RUN .*CGO_ENABLED=0 .*go build .*\./cmd/enms-analytics`},
		{"the version stamped", `-X main\.version=`},
	}
	for _, c := range checks {
		if !has(lines[:stages[len(stages)-1]], c.re) {
			t.Errorf("build stage lacks %s", c.what)
		}
	}
	finalChecks := []struct{ what, re string }{
		{"the binary copied from the build stage", `^COPY --from=build `},
		{"a non-root user", `^USER (\d+)`},
		{"a health check on /health", `^HEALTHCHECK .*CMD .*:8001/health`},
		{"the models volume", `^VOLUME .*/app/models/saved`},
		{"port 8001", `^EXPOSE 8001$`},
		{"serve by default", `^CMD \["serve"\]`},
	}
	for _, c := range finalChecks {
		if !has(final, c.re) {
			t.Errorf("final stage lacks %s", c.what)
		}
	}
	for _, l := range final {
		if u, ok := strings.CutPrefix(l, "USER "); ok && (strings.HasPrefix(u, "root") || strings.HasPrefix(u, "0")) {
			t.Errorf("final stage runs as root: %q", l)
		}
	}
	// .dockerignore keeps local state out of the build context but not what
	// the build needs.
	ignore, err := os.ReadFile(filepath.Join("..", ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	ig := strings.Fields(string(ignore))
	for _, must := range []string{".git", ".data", "bin"} {
		if !slices.Contains(ig, must) {
			t.Errorf(".dockerignore does not exclude %s", must)
		}
	}
	for _, keep := range []string{"go.mod", "go.sum", "cmd", "migrations", "http", "store"} {
		if slices.Contains(ig, keep) {
			t.Errorf(".dockerignore excludes %s, which the build needs", keep)
		}
	}
}

// TestNginxLimitsMatchTheAPI: nginx's body limit is the API's, so a body
// is refused in the same way whether or not the proxy is in front; its
// read timeout outlasts the longest route timeout.
func TestNginxLimitsMatchTheAPI(t *testing.T) {
	t.Parallel()
	site, err := os.ReadFile(filepath.Join("nginx", "enms-analytics.conf"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`client_max_body_size (\d+)m;`).FindSubmatch(site)
	if m == nil {
		t.Fatal("enms-analytics.conf sets no client_max_body_size in MiB")
	}
	if mib, _ := strconv.Atoi(string(m[1])); mib<<20 != apihttp.MaxBodyBytes {
		t.Errorf("nginx allows %d MiB, the API %d bytes", mib, apihttp.MaxBodyBytes)
	}
	rt := regexp.MustCompile(`proxy_read_timeout (\d+)s;`).FindSubmatch(site)
	if rt == nil {
		t.Fatal("enms-analytics.conf sets no proxy_read_timeout in seconds")
	}
	read, _ := strconv.Atoi(string(rt[1]))
	for _, r := range apihttp.New(apihttp.Config{}).Routes() {
		if r.Timeout >= time.Duration(read)*time.Second {
			t.Errorf("%s %s may take %s, nginx waits %d s for an answer", r.Method, r.Path, r.Timeout, read)
		}
	}
	for _, d := range []string{"proxy_connect_timeout 60s;", "proxy_send_timeout 300s;", "proxy_read_timeout 300s;",
		"rewrite ^/api/analytics/(.*)$ /api/v1/$1 break;", "limit_req zone=", "X-Forwarded-For"} {
		if !strings.Contains(string(site), d) {
			t.Errorf("enms-analytics.conf lacks %q", d)
		}
	}
}
