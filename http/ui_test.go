package http

import (
	"io"
	"io/fs"
	nethttp "net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// TestUIPagesServed: every UI page is HTML whose links and scripts are
// relative and resolve (from the page's own URL) to files the server has;
// /api/v1/ui redirects to /api/v1/ui/ so relative URLs resolve under it.
func TestUIPagesServed(t *testing.T) {
	t.Parallel()
	f := setup(t)
	client := *f.ts.Client()
	client.CheckRedirect = func(*nethttp.Request, []*nethttp.Request) error { return nethttp.ErrUseLastResponse }
	get := func(u string) (*nethttp.Response, string) {
		t.Helper()
		resp, err := client.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	for _, p := range uiPages {
		pageURL := f.ts.URL + "/api/v1/ui/" + p.Path
		resp, body := get(pageURL)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("%s: %d %s", pageURL, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		for _, want := range []string{`id="pick-factory"`, `id="pick-type"`, `id="pick-machine"`, `src="static/` + p.Name + `.js"`} {
			if !strings.Contains(body, want) {
				t.Errorf("%s lacks %s (every page has the machine picker and its module)", pageURL, want)
			}
		}
		for _, l := range docLinks(body) {
			if strings.HasPrefix(l, "data:") {
				continue
			}
			if strings.HasPrefix(l, "/") || strings.Contains(l, "//") {
				t.Errorf("%s links %q: not relative, it would break behind /api/analytics/", pageURL, l)
				continue
			}
			base, _ := url.Parse(pageURL)
			ref, _ := url.Parse(l)
			target := base.ResolveReference(ref).String()
			if r, _ := get(target); r.StatusCode != 200 {
				t.Errorf("%s links %q → %s: %d", pageURL, l, target, r.StatusCode)
			}
		}
	}
	resp, _ := get(f.ts.URL + "/api/v1/ui")
	if loc := resp.Header.Get("Location"); resp.StatusCode/100 != 3 || !strings.HasSuffix(loc, "/api/v1/ui/") {
		t.Errorf("/api/v1/ui: %d to %q, want a redirect to /api/v1/ui/", resp.StatusCode, loc)
	}
	resp, _ = get(f.ts.URL + "/api/v1/ui/static/common.js")
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("common.js served as %q; a module needs a JavaScript type", ct)
	}
	for _, bad := range []string{"nope.js", "..%2Fui.go", "layout.html", "ui.css%2F..%2F..%2Fui.go"} {
		if r, _ := get(f.ts.URL + "/api/v1/ui/static/" + bad); r.StatusCode != 404 {
			t.Errorf("static/%s: %d, want 404", bad, r.StatusCode)
		}
	}
}

// absoluteURL finds string literals in the scripts that name a path from the
// server root (/api/…, /ui/…) or another origin.
var absoluteURL = regexp.MustCompile("['\"`](/(api|health|metrics|ui|static)\\b|https?://|//)[^'\"`]*")

// TestUIScriptsUseRelativeURLs: no script names a root-relative path or an
// absolute URL (the pages must work behind a path prefix and offline).
func TestUIScriptsUseRelativeURLs(t *testing.T) {
	t.Parallel()
	// The pattern itself: catches what it must, not a unit like '/unit'.
	for in, want := range map[string]bool{"fetch('/api/v1/machines')": true, `import "https://cdn.example/u.js"`: true,
		"src=`//cdn.example/x`": true, "'../baseline/models'": false, "currency + '/unit'": false} {
		if got := absoluteURL.MatchString(in); got != want {
			t.Errorf("absoluteURL on %s: %v, want %v", in, got, want)
		}
	}
	err := fs.WalkDir(uiFiles, "ui", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(uiFiles, path)
		if err != nil {
			return err
		}
		for _, m := range absoluteURL.FindAllString(string(b), -1) {
			if strings.Contains(m, "www.w3.org/2000/svg") { // the SVG namespace, not a request
				continue
			}
			t.Errorf("%s has %s: use a URL relative to the page", path, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
