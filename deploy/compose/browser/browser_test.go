// Package browser tests the dashboard in a real headless Chromium (Debian's
// chromium, driven over the DevTools protocol by chromedp) against a real
// api, aggregator and redis-server. Without a browser the test skips, unless
// REQUIRE_BROWSER=1 (CI), which makes it fail instead.
// UPDATE_SCREENSHOT=1 also writes docs/dashboard.png.
package browser

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/resilientanalytics/ra/deploy/compose/internal/stacktest"
	"github.com/resilientanalytics/ra/pkg/redistest"
)

// findBrowser returns the Chromium to drive, or skips (fails with
// REQUIRE_BROWSER=1) when none is installed.
func findBrowser(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROME_PATH"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no Chromium found (chromium, chromium-browser, google-chrome or CHROME_PATH): install Debian's chromium (deploy/ci/chromium.sh) to run the browser tests"
	if os.Getenv("REQUIRE_BROWSER") == "1" {
		t.Fatal(msg + "; REQUIRE_BROWSER=1 forbids skipping")
	}
	t.Skip(msg)
	return ""
}

// console collects what the page writes to its console: console API calls,
// uncaught exceptions and browser log entries (failed requests).
type console struct {
	mu   sync.Mutex
	msgs []chromedp.ConsoleMessage
}

func (c *console) errors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.msgs {
		if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleWarning || m.IsException() {
			out = append(out, fmt.Sprintf("%s %s:%d %s", m.Type, m.URL, m.Line+1, m.Text))
		}
	}
	return out
}

type metric struct {
	Timestamp string  `json:"timestamp"`
	Value     float64 `json:"value"`
	Type      string  `json:"type"`
}

func post(t *testing.T, base string, ms []metric) {
	t.Helper()
	b, _ := json.Marshal(ms)
	resp, err := http.Post(base+"/api/metrics", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /api/metrics: %d", resp.StatusCode)
	}
}

// waitDrained polls GET /api/system until the group has read and
// acknowledged everything (lag 0, pending 0).
func waitDrained(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/api/system")
		if err == nil {
			var rep struct {
				Lag     *int64 `json:"lag"`
				Pending int64  `json:"pending"`
			}
			b := new(bytes.Buffer)
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			last = b.String()
			if json.Unmarshal(b.Bytes(), &rep) == nil && rep.Lag != nil && *rep.Lag == 0 && rep.Pending == 0 {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("the aggregator did not drain the stream within 30s; last /api/system: %s", last)
}

func TestDashboard(t *testing.T) {
	chrome := findBrowser(t)
	began := time.Now()
	bins := stacktest.Build(t)
	t.Logf("built the binaries in %s", time.Since(began).Round(time.Second))
	rds := redistest.StartWith(t, redistest.Options{AOF: true}) // appendfsync always, as every Redis we run
	rds.RequireReal(t)
	apiPort, aggPort := stacktest.FreePort(t), stacktest.FreePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(apiPort)
	// Default CACHE_TTL (60s) on purpose: the live update must come from
	// the stream's fresh reads, not from a cache that happens to expire.
	env := map[string]string{
		"REDIS_URL":          rds.URL(),
		"PORT":               strconv.Itoa(apiPort),
		"AGG_HEALTH_PORT":    strconv.Itoa(aggPort),
		"RATE_LIMIT_ENABLED": "false",
		"LOG_LEVEL":          "warn",
	}
	api := stacktest.Run(t, "api", bins.API, env)
	agg := stacktest.Run(t, "aggregator", bins.Aggregator, env)
	stacktest.WaitHealthy(t, bins.Healthcheck, []string{base + "/health"}, api, 30*time.Second)
	stacktest.WaitHealthy(t, bins.Healthcheck, []string{"http://127.0.0.1:" + strconv.Itoa(aggPort) + "/health"}, agg, 30*time.Second)

	// Seed the last hour: cpu_usage in most minutes (a gap of four, and a
	// few single empty minutes) with one to three metrics each; three more
	// types with a few metrics.
	now := time.Now().UTC()
	minute := now.Truncate(time.Minute)
	var seed []metric
	wantMinutes := map[string]int{} // RFC 3339 minute -> count
	cpuCount := 0
	for i := 1; i <= 55; i++ {
		if (i >= 20 && i <= 23) || i%13 == 0 {
			continue // empty minutes: the chart must show gaps here
		}
		m := minute.Add(-time.Duration(i) * time.Minute)
		n := 1 + i%3
		for j := range n {
			v := 55 + 20*math.Sin(float64(i)/6) + float64(j*4) - float64(i%5)
			seed = append(seed, metric{Timestamp: m.Add(time.Duration(j*15) * time.Second).Format(time.RFC3339), Value: math.Round(v*10) / 10, Type: "cpu_usage"})
		}
		wantMinutes[m.Format(time.RFC3339)] = n
		cpuCount += n
	}
	for i, typ := range []string{"mem_used_mb", "disk_io_ops", "http_requests"} {
		for j := range 3 + i {
			seed = append(seed, metric{Timestamp: minute.Add(-time.Duration(2+j*7) * time.Minute).Format(time.RFC3339), Value: float64(100*(i+1) + j*7), Type: typ})
		}
	}
	post(t, base, seed)
	waitDrained(t, base)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chrome),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.WindowSize(1280, 900),
	)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()

	var logs console
	messages := chromedp.Console(bctx) // subscribes now: nothing the page says is missed
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			logs.mu.Lock()
			logs.msgs = append(logs.msgs, m)
			logs.mu.Unlock()
		}
	}()
	do := func(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			t.Fatalf("%s: %v (console: %q)", what, err, logs.errors())
		}
	}
	poll := func(t *testing.T, what, expr string) {
		t.Helper()
		do(t, what, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(20*time.Second), chromedp.WithPollingInterval(100*time.Millisecond)))
	}
	eval := func(t *testing.T, expr string, v any) {
		t.Helper()
		raw, err := chromedp.Run(bctx, chromedp.Evaluate[[]byte](expr))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		if err := json.Unmarshal(raw, v); err != nil {
			t.Fatalf("evaluate %s: %v in %s", expr, err, raw)
		}
	}
	digits := func(s string) int {
		n, _ := strconv.Atoi(strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, s))
		return n
	}

	began = time.Now()
	do(t, "open the dashboard", chromedp.Navigate(base+"/"))
	t.Logf("started Chromium and loaded the page in %s", time.Since(began).Round(10*time.Millisecond))

	// Logged, not asserted (the machine is shared and noisy): when the page
	// first showed the types and the chart, cold (a new browser) and warm.
	timing := func(t *testing.T, label string) {
		t.Helper()
		poll(t, "first chart", `performance.getEntriesByName("ra-chart").length > 0`)
		var ms struct{ DCL, Types, Chart float64 }
		eval(t, `(() => ({DCL: performance.getEntriesByType("navigation")[0].domContentLoadedEventEnd,
			Types: performance.getEntriesByName("ra-types")[0].startTime, Chart: performance.getEntriesByName("ra-chart")[0].startTime}))()`, &ms)
		t.Logf("%s load: DOMContentLoaded %.0f ms, types shown %.0f ms, chart shown %.0f ms", label, ms.DCL, ms.Types, ms.Chart)
	}
	timing(t, "cold")
	do(t, "reload", chromedp.Navigate(base+"/"))
	timing(t, "warm")

	t.Run("types list shows the posted types", func(t *testing.T) {
		poll(t, "types rows", `document.querySelectorAll("#types tr[data-type]").length === 4`)
		var names []string
		eval(t, `[...document.querySelectorAll("#types tr[data-type]")].map(r => r.dataset.type)`, &names)
		if want := []string{"cpu_usage", "disk_io_ops", "http_requests", "mem_used_mb"}; !slices.Equal(names, want) {
			t.Errorf("types %q, want %q", names, want)
		}
		poll(t, "counts", `document.querySelector('#types tr[data-type="cpu_usage"] .count').textContent.replace(/\D/g, "") === "`+strconv.Itoa(cpuCount)+`"`)
		do(t, "filter", chromedp.SendKeys("#filter", "disk"))
		poll(t, "filtered", `document.querySelectorAll("#types tr[data-type]").length === 1`)
		do(t, "clear filter", chromedp.Evaluate[chromedp.Void](`(() => { const f = document.getElementById("filter"); f.value = ""; f.dispatchEvent(new Event("input")); })()`))
		poll(t, "unfiltered", `document.querySelectorAll("#types tr[data-type]").length === 4`)
	})

	t.Run("chart has one point per minute with data", func(t *testing.T) {
		do(t, "choose cpu_usage", chromedp.Click(`#types tr[data-type="cpu_usage"]`), chromedp.Click(`#windows button[data-window="1h"]`))
		poll(t, "chart points", `document.querySelectorAll("#chart circle.pt").length === `+strconv.Itoa(len(wantMinutes)))
		var pts []struct {
			T     string `json:"t"`
			Count string `json:"count"`
		}
		eval(t, `[...document.querySelectorAll("#chart circle.pt")].map(c => ({t: c.dataset.t, count: c.dataset.count}))`, &pts)
		got := map[string]int{}
		for _, p := range pts {
			got[p.T] = digits(p.Count)
		}
		for m, n := range wantMinutes {
			if got[m] != n {
				t.Errorf("minute %s: point with count %d, want %d", m, got[m], n)
			}
		}
		// The gap of four empty minutes splits the line: more than one run.
		var lines int
		eval(t, `document.querySelectorAll("#chart polyline.line").length`, &lines)
		if lines < 2 {
			t.Errorf("%d line runs, want the empty minutes to split the line", lines)
		}
		var labels []string
		eval(t, `[...document.querySelectorAll("#chart .axis text")].map(e => e.textContent)`, &labels)
		if len(labels) < 4 || !slices.ContainsFunc(labels, func(s string) bool { return strings.Contains(s, ":") }) {
			t.Errorf("axis labels %q: want value labels and time labels", labels)
		}
		var count string
		eval(t, `document.getElementById("sum-count").textContent`, &count)
		if digits(count) != cpuCount {
			t.Errorf("summary count %q, want %d", count, cpuCount)
		}
	})

	t.Run("system panel shows breaker and lag", func(t *testing.T) {
		poll(t, "breaker", `["CLOSED","OPEN","HALF_OPEN"].includes(document.getElementById("sys-breaker").textContent)`)
		poll(t, "lag", `document.getElementById("sys-lag").textContent === "0"`)
		var consumers int
		eval(t, `document.querySelectorAll("#consumers tr").length`, &consumers)
		if consumers != 1 {
			t.Errorf("%d consumer rows, want the one aggregator", consumers)
		}
	})

	t.Run("a metric posted while the page is open appears live", func(t *testing.T) {
		ts := time.Now().UTC()
		post(t, base, []metric{{Timestamp: ts.Format(time.RFC3339), Value: 61, Type: "cpu_usage"}})
		start := time.Now()
		poll(t, "live count", `document.getElementById("sum-count").textContent.replace(/\D/g, "") === "`+strconv.Itoa(cpuCount+1)+`"`)
		poll(t, "live point", `!!document.querySelector('#chart circle.pt[data-t="`+ts.Truncate(time.Minute).Format(time.RFC3339)+`"]')`)
		t.Logf("the new metric showed after %s without a reload", time.Since(start).Round(100*time.Millisecond))
	})

	if os.Getenv("UPDATE_SCREENSHOT") == "1" {
		do(t, "settle", chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur()`))
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(stacktest.RepoRoot(t), "docs", "dashboard.png")
		if err := os.WriteFile(out, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", out)
	}

	t.Run("narrow screen has no horizontal scroll", func(t *testing.T) {
		do(t, "phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
		poll(t, "relayout", `document.querySelector("#chart svg") && document.querySelector("#chart svg").getAttribute("width") <= 390`)
		var overflow bool
		eval(t, `document.documentElement.scrollWidth > window.innerWidth + 1`, &overflow)
		if overflow {
			t.Error("the page scrolls sideways at 390px")
		}
	})

	if errs := logs.errors(); len(errs) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
	}

	t.Run("with API keys the page asks for one and sends it", func(t *testing.T) {
		// A second api on the same Redis with keys on and AUTH_READS=true:
		// every data call needs the key, the page itself does not.
		const key = "ra_dashboard-test-key"
		sum := sha256.Sum256([]byte(key))
		keyedPort := stacktest.FreePort(t)
		keyedBase := "http://127.0.0.1:" + strconv.Itoa(keyedPort)
		kenv := maps.Clone(env)
		kenv["PORT"] = strconv.Itoa(keyedPort)
		kenv["API_KEYS"] = "dashboard=sha256:" + hex.EncodeToString(sum[:])
		kenv["AUTH_READS"] = "true"
		kapi := stacktest.Run(t, "api-keyed", bins.API, kenv)
		stacktest.WaitHealthy(t, bins.Healthcheck, []string{keyedBase + "/health"}, kapi, 30*time.Second)
		for _, path := range []string{"/api/metrics/types", "/api/system", "/api/metrics/summary?type=cpu_usage"} {
			resp, err := http.Get(keyedBase + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("GET %s without a key: %d, want 401", path, resp.StatusCode)
			}
		}
		keyed := struct{ URL string }{keyedBase}

		tab, closeTab := chromedp.NewContext(bctx)
		defer closeTab()
		var tabLogs console
		tabMessages := chromedp.Console(tab)
		go func() {
			for m, err := range tabMessages {
				if err != nil {
					return
				}
				tabLogs.mu.Lock()
				tabLogs.msgs = append(tabLogs.msgs, m)
				tabLogs.mu.Unlock()
			}
		}()
		run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
			t.Helper()
			if err := chromedp.Do(tab, steps...); err != nil {
				t.Fatalf("%s: %v (console: %q)", what, err, tabLogs.errors())
			}
		}
		wait := func(what, expr string) {
			t.Helper()
			run(what, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(20*time.Second), chromedp.WithPollingInterval(100*time.Millisecond)))
		}
		run("open", chromedp.Navigate(keyed.URL+"/"))
		wait("key form", `!document.getElementById("key-form").hidden`)
		run("enter the key", chromedp.SendKeys("#key-input", key), chromedp.Click(`#key-form button[type="submit"]`))
		wait("types with the key", `document.querySelectorAll("#types tr[data-type]").length === 4`)
		wait("chart with the key", `document.querySelectorAll("#chart circle.pt").length > 0`)
		wait("system with the key", `document.getElementById("sys-lag").textContent === "0"`)
		if v, err := chromedp.Run(tab, chromedp.Evaluate[string](`sessionStorage.getItem("ra.apiKey")`)); err != nil || v != key {
			t.Errorf("sessionStorage holds %q (%v), want the key", v, err)
		}
		for _, e := range tabLogs.errors() {
			if !strings.Contains(e, "401") {
				t.Errorf("console error besides the expected 401s: %s", e)
			}
		}
	})
}
