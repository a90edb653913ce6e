package dashboard

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

// MaxBytes is the budget of the page and every asset together.
const MaxBytes = 100 << 10

func mustNew(t *testing.T) *Handler {
	t.Helper()
	h, err := New()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestPage(t *testing.T) {
	h := mustNew(t)
	if n := h.Size(); n > MaxBytes/2 {
		t.Errorf("page and assets are %d bytes; keep them well under %d", n, MaxBytes)
	}
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		rec := httptest.NewRecorder()
		h.ServePage(rec, httptest.NewRequest(method, "/", nil))
		hdr := rec.Header()
		if rec.Code != http.StatusOK || hdr.Get("Content-Type") != "text/html; charset=utf-8" ||
			hdr.Get("Cache-Control") != "no-cache" || hdr.Get("ETag") == "" || hdr.Get("Content-Security-Policy") != CSP {
			t.Errorf("%s /: %d %v", method, rec.Code, hdr)
		}
		if method == http.MethodHead && rec.Body.Len() != 0 {
			t.Errorf("HEAD / sent %d body bytes", rec.Body.Len())
		}
		if method == http.MethodGet && !strings.Contains(rec.Body.String(), "<title>Resilient Analytics</title>") {
			t.Errorf("GET / body does not look like the dashboard")
		}
	}
	// Nothing from elsewhere: no CDN, no absolute URL.
	if m := regexp.MustCompile(`(src|href)="(https?:)?//`).FindString(string(h.page.body)); m != "" {
		t.Errorf("the page links off-site: %s", m)
	}
}

func TestPageLinksAssetsByHash(t *testing.T) {
	h := mustNew(t)
	for _, name := range []string{"app.js", "chart.js", "app.css"} {
		f, ok := h.assets[name]
		if !ok {
			t.Fatalf("asset %s missing", name)
		}
		url := "/assets/" + name + "?v=" + f.hash
		if !strings.Contains(string(h.page.body), `"`+url+`"`) {
			t.Errorf("the page does not link %s", url)
		}
	}
}

func TestAssets(t *testing.T) {
	h := mustNew(t)
	js := h.assets["app.js"]
	for _, tc := range []struct {
		name, target, ifNoneMatch string
		code                      int
		ctype, cacheControl       string
	}{
		{"hashed url is immutable", "/assets/app.js?v=" + js.hash, "", 200, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable"},
		{"other url revalidates", "/assets/app.js", "", 200, "text/javascript; charset=utf-8", "no-cache"},
		{"stale hash revalidates", "/assets/app.js?v=0000", "", 200, "text/javascript; charset=utf-8", "no-cache"},
		{"css", "/assets/app.css", "", 200, "text/css; charset=utf-8", "no-cache"},
		{"etag match", "/assets/app.js", js.etag, 304, "", "no-cache"},
		{"unknown", "/assets/nope.js", "", 404, "application/problem+json", "no-store"},
		{"no index under assets", "/assets/index.html", "", 404, "application/problem+json", "no-store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tc.target, nil)
			if tc.ifNoneMatch != "" {
				req.Header.Set("If-None-Match", tc.ifNoneMatch)
			}
			rec := httptest.NewRecorder()
			h.ServeAsset(rec, req)
			if rec.Code != tc.code || (tc.ctype != "" && rec.Header().Get("Content-Type") != tc.ctype) ||
				rec.Header().Get("Cache-Control") != tc.cacheControl {
				t.Errorf("%d %q %q, want %d %q %q", rec.Code, rec.Header().Get("Content-Type"), rec.Header().Get("Cache-Control"),
					tc.code, tc.ctype, tc.cacheControl)
			}
		})
	}
}

func TestLoadNeedsAnIndex(t *testing.T) {
	if _, err := load(fstest.MapFS{"assets/app.js": {Data: []byte("x")}}); err == nil {
		t.Error("no index.html: want an error")
	}
}
