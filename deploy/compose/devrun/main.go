// Command devrun is `make run`: it runs api and aggregator from bin/ against
// REDIS_URL (default redis://localhost:6379) on a machine without Docker.
// When nothing answers there it starts a Redis for the session, a real
// redis-server on a free port if one is installed, else an embedded
// miniredis, and says which. Both services' output is streamed with an
// "api | " / "aggregator | " prefix; once both answer /health it prints the
// dashboard's URL first, then the other URLs and ready-to-paste curl lines. Ctrl-C (or SIGTERM) stops the services
// with SIGTERM (killed after -stop-timeout), then the session Redis, and
// exits 0 when everything stopped cleanly. A second Ctrl-C kills at once.
//
// Every other variable in the environment (PORT, RATE_LIMIT_MAX, ...) is
// passed to the services unchanged.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/resilientanalytics/ra/deploy/compose/internal/supervise"
	"github.com/resilientanalytics/ra/pkg/redisclient"
	aggconfig "github.com/resilientanalytics/ra/services/aggregator/config"
	apiconfig "github.com/resilientanalytics/ra/services/api/config"
)

const defaultRedisURL = "redis://localhost:6379"

func main() {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	if err := run(os.Args[1:], os.Environ(), sigs, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "devrun | error: %v\n", err)
		os.Exit(1)
	}
}

// options are devrun's flags.
type options struct {
	bin         string
	redisMode   string
	startWait   time.Duration
	stopTimeout time.Duration
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("devrun", flag.ContinueOnError)
	fs.StringVar(&o.bin, "bin", "bin", "directory holding the api and aggregator binaries (make build)")
	fs.StringVar(&o.redisMode, "redis", modeAuto, "auto: REDIS_URL if it answers, else start one; server: always start redis-server; embedded: always start miniredis")
	fs.DurationVar(&o.startWait, "start-timeout", 60*time.Second, "how long to wait for both /health endpoints")
	fs.DurationVar(&o.stopTimeout, "stop-timeout", 15*time.Second, "how long each service gets to exit after SIGTERM before it is killed")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch o.redisMode {
	case modeAuto, modeServer, modeEmbedded:
	default:
		return o, fmt.Errorf("-redis must be auto, server or embedded, got %q", o.redisMode)
	}
	return o, nil
}

// run is devrun with its inputs injected: environ is the environment the
// services inherit, sigs delivers stop requests.
func run(args, environ []string, sigs <-chan os.Signal, stdout io.Writer) error {
	opts, err := parseFlags(args)
	if err != nil {
		return err
	}
	out := supervise.NewOutput(stdout)
	say := func(format string, a ...any) { out.Printf("devrun | "+format, a...) }

	bins := map[string]string{}
	for _, name := range []string{"api", "aggregator"} {
		p, err := filepath.Abs(filepath.Join(opts.bin, name))
		if err != nil {
			return err
		}
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s: %w (run `make build` first)", p, err)
		}
		bins[name] = p
	}

	env := envMap(environ)
	url := env["REDIS_URL"]
	if url == "" {
		url = defaultRedisURL
	}
	// A signal while Redis starts aborts the start.
	ctx, cancel := context.WithCancel(context.Background())
	early := make(chan os.Signal, 1)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case sig := <-sigs:
			early <- sig
			cancel()
		case <-ctx.Done():
		}
	}()
	rds, err := startRedis(ctx, opts.redisMode, url, say)
	cancel()
	<-watched
	if err != nil {
		select {
		case sig := <-early:
			say("got %s while starting Redis: nothing to stop", sig)
			return nil
		default:
			return err
		}
	}
	defer func() {
		if rds.Owned {
			say("stopping the session Redis")
			if err := rds.Stop(); err != nil {
				say("stop Redis: %v", err)
			}
		}
	}()
	select {
	case sig := <-early:
		say("got %s while starting Redis: stopping", sig)
		return nil
	default:
	}
	env["REDIS_URL"] = rds.URL

	// The services' own config packages say which ports they will use (and
	// reject a bad setting here with the same message they would print).
	apiCfg, err := apiconfig.Load(env)
	if err != nil {
		return fmt.Errorf("api config: %w", err)
	}
	aggCfg, err := aggconfig.Load(env)
	if err != nil {
		return fmt.Errorf("aggregator config: %w", err)
	}
	apiBase := fmt.Sprintf("http://localhost:%d", apiCfg.Port)
	aggHealth := fmt.Sprintf("http://localhost:%d/health", aggCfg.HealthPort)

	list := envList(env)
	var children []*supervise.Child
	defer func() {
		for _, c := range children {
			c.Kill() // no-op for the ones that stopped
		}
	}()
	for _, name := range []string{"api", "aggregator"} {
		c, err := supervise.Start(supervise.Options{Name: name, Path: bins[name], Env: list, Out: out})
		if err != nil {
			return err
		}
		say("started %s (pid %d)", name, c.Pid())
		children = append(children, c)
	}

	ready := make(chan struct{})
	readyCtx, stopWaiting := context.WithCancel(context.Background())
	defer stopWaiting()
	go func() {
		if waitHealthy(readyCtx, []string{apiBase + "/health", aggHealth}) == nil {
			close(ready)
		}
	}()
	startTimer := time.NewTimer(opts.startWait)
	defer startTimer.Stop()

	var why string
	var failed error
loop:
	for {
		select {
		case <-ready:
			ready = nil
			startTimer.Stop()
			printBanner(say, apiBase, aggHealth, rds.URL)
		case <-startTimer.C:
			failed = fmt.Errorf("not healthy within %s (see the logs above)", opts.startWait)
			why = failed.Error()
			break loop
		case sig := <-sigs:
			why = "got " + sig.String()
			break loop
		case <-children[0].Done():
			failed = fmt.Errorf("api exited unexpectedly: %v", exitText(children[0].Err()))
			why = failed.Error()
			break loop
		case <-children[1].Done():
			failed = fmt.Errorf("aggregator exited unexpectedly: %v", exitText(children[1].Err()))
			why = failed.Error()
			break loop
		}
	}
	stopWaiting()
	say("%s: stopping api and aggregator (SIGTERM, up to %s each)", why, opts.stopTimeout)
	if err := stopAll(children, opts.stopTimeout, sigs, say); err != nil && failed == nil {
		failed = err
	}
	if failed == nil {
		say("stopped cleanly")
	}
	return failed
}

// stopAll sends SIGTERM to every child that is still running and waits for
// all of them; another signal meanwhile kills them at once.
func stopAll(children []*supervise.Child, timeout time.Duration, sigs <-chan os.Signal, say func(string, ...any)) error {
	errc := make(chan error, len(children))
	for _, c := range children {
		go func() { errc <- c.Stop(timeout) }()
	}
	var errs []error
	for range children {
		select {
		case err := <-errc:
			errs = append(errs, err)
		case sig := <-sigs:
			say("got %s again: killing", sig)
			for _, c := range children {
				c.Kill()
			}
			errs = append(errs, <-errc)
		}
	}
	return errors.Join(errs...)
}

// waitHealthy polls every URL until each answers 2xx, or ctx ends.
func waitHealthy(ctx context.Context, urls []string) error {
	client := &http.Client{Timeout: time.Second}
	for _, u := range urls {
		for {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			if err != nil {
				return err
			}
			resp, err := client.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					break
				}
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return nil
}

func printBanner(say func(string, ...any), apiBase, aggHealth, redisURL string) {
	ts := time.Now().UTC().Format(time.RFC3339)
	lines := []string{
		"dashboard: " + apiBase + "/   <- open it in a browser",
		"ready: api and aggregator are healthy",
		"  api         " + apiBase + "  (/health, /livez, /metrics)",
		"  aggregator  " + aggHealth + "  (/metrics next to it)",
		"  redis       " + redisclient.Redact(redisURL),
		"try:",
		fmt.Sprintf(`  curl -i -X POST %s/api/metrics -H 'Content-Type: application/json' -d '{"timestamp":"%s","value":75,"type":"cpu_usage"}'`, apiBase, ts),
		fmt.Sprintf(`  curl -i '%s/api/metrics/summary?type=cpu_usage'`, apiBase),
		fmt.Sprintf(`  curl -i %s/api/external-data`, apiBase),
		"Ctrl-C stops everything.",
	}
	for _, l := range lines {
		say("%s", l)
	}
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// envMap turns KEY=VALUE pairs into a map (later entries win, as exec does).
func envMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

func envList(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}
