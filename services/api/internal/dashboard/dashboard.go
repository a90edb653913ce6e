// Package dashboard serves the live dashboard at GET / and its static files
// under /assets/: plain HTML, CSS and JavaScript embedded in the binary
// (no CDN, no build step, works offline), with our own small SVG chart.
//
// The page reads only the public API: GET /api/metrics/types, the all-time
// summaries, GET /api/system, /health, and the live stream of package live
// (fetch with a ReadableStream rather than EventSource, so an
// Authorization header can be sent when API keys are on; a 401 makes the
// page ask for a key and keep it in sessionStorage).
//
// Caching: the page is "no-cache" (revalidated by its ETag), and it links
// every asset as /assets/<name>?v=<content hash>: such a URL never changes
// content, so it is cached for a year ("immutable"); any other asset URL is
// revalidated like the page.
package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/resilientanalytics/ra/pkg/problem"
)

//go:embed assets
var files embed.FS

// CSP keeps the page to its own origin: nothing inline, no third party.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

type file struct {
	body  []byte
	ctype string
	etag  string
	hash  string
}

// Handler serves the page and its assets.
type Handler struct {
	page   file
	assets map[string]file
}

// New loads the embedded files and links the page to its assets by hash.
func New() (*Handler, error) { return load(files) }

func load(fsys fs.FS) (*Handler, error) {
	h := &Handler{assets: map[string]file{}}
	var page []byte
	err := fs.WalkDir(fsys, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "assets/")
		if name == "index.html" {
			page = b
			return nil
		}
		h.assets[name] = newFile(b, mime.TypeByExtension(path.Ext(name)))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	if page == nil {
		return nil, fmt.Errorf("dashboard: assets/index.html is missing")
	}
	for name, f := range h.assets {
		page = bytes.ReplaceAll(page, []byte(`"/assets/`+name+`"`), []byte(`"/assets/`+name+`?v=`+f.hash+`"`))
	}
	h.page = newFile(page, "text/html; charset=utf-8")
	return h, nil
}

func newFile(b []byte, ctype string) file {
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	sum := sha256.Sum256(b)
	hash := hex.EncodeToString(sum[:6])
	return file{body: b, ctype: ctype, hash: hash, etag: `"` + hash + `"`}
}

// Size is the bytes of the page and every asset together.
func (h *Handler) Size() int {
	n := len(h.page.body)
	for _, f := range h.assets {
		n += len(f.body)
	}
	return n
}

// ServePage answers GET and HEAD /.
func (h *Handler) ServePage(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", CSP)
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "no-referrer")
	serve(w, r, h.page, "no-cache")
}

// ServeAsset answers GET and HEAD /assets/{name}.
func (h *Handler) ServeAsset(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/assets/")
	f, ok := h.assets[name]
	if !ok {
		problem.Write(w, r, problem.New(http.StatusNotFound, "not-found", "Not Found", "no such asset: "+r.URL.Path))
		return
	}
	cc := "no-cache"
	if r.URL.Query().Get("v") == f.hash {
		cc = "public, max-age=31536000, immutable"
	}
	serve(w, r, f, cc)
}

func serve(w http.ResponseWriter, r *http.Request, f file, cacheControl string) {
	hdr := w.Header()
	hdr.Set("Content-Type", f.ctype)
	hdr.Set("Cache-Control", cacheControl)
	hdr.Set("ETag", f.etag)
	hdr.Set("X-Content-Type-Options", "nosniff")
	// ServeContent answers If-None-Match with 304, Range, and HEAD without a body.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}
