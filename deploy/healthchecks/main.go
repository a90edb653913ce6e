// Command healthcheck is the probe the distroless images run (they have no
// curl or wget): `healthcheck [-timeout 2s] URL` does one GET and exits 0 on
// a 2xx answer, 1 otherwise with one line on stderr saying why, and 2 on bad
// usage. Without a URL argument it probes $HEALTHCHECK_URL, so an image can
// bake its default into ENV (a Dockerfile HEALTHCHECK cannot expand build
// arguments). It is built static (CGO_ENABLED=0) so it runs in
// gcr.io/distroless/static.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"
)

// Exit codes.
const (
	exitHealthy   = 0
	exitUnhealthy = 1
	exitUsage     = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stderr))
}

// envURL names the variable probed when no URL argument is given.
const envURL = "HEALTHCHECK_URL"

// run parses args, probes the URL and returns the exit code. Every failure
// writes exactly one line to stderr.
func run(args []string, getenv func(string) string, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	timeout := fs.Duration("timeout", 2*time.Second, "bound on the whole request")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v (usage: healthcheck [-timeout 2s] URL)\n", err)
		return exitUsage
	}
	var target string
	switch {
	case fs.NArg() == 1:
		target = fs.Arg(0)
	case fs.NArg() == 0 && getenv(envURL) != "":
		target = getenv(envURL)
	default:
		fmt.Fprintf(stderr, "healthcheck: usage: healthcheck [-timeout 2s] URL (or set %s)\n", envURL)
		return exitUsage
	}
	if *timeout <= 0 {
		fmt.Fprintf(stderr, "healthcheck: -timeout must be > 0, got %s\n", *timeout)
		return exitUsage
	}
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fmt.Fprintf(stderr, "healthcheck: %q is not an http(s) URL\n", target)
		return exitUsage
	}
	if err := probe(target, *timeout); err != nil {
		fmt.Fprintf(stderr, "healthcheck: %s: %v\n", target, err)
		return exitUnhealthy
	}
	return exitHealthy
}

// probe GETs target and reports an error unless the answer is 2xx.
func probe(target string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "healthcheck")
	client := &http.Client{
		// No proxies from the environment: a probe talks to localhost.
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("no answer within %s", timeout)
		}
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("status %s", resp.Status)
	}
	return nil
}
