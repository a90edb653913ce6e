package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/deploy/compose/internal/stacktest"
	"github.com/resilientanalytics/ra/pkg/redisproc"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    options
		wantErr string
	}{
		{name: "defaults", want: options{bin: "bin", redisMode: modeAuto, startWait: time.Minute, stopTimeout: 15 * time.Second}},
		{name: "bin and embedded", args: []string{"-bin", "../../bin", "-redis", "embedded"},
			want: options{bin: "../../bin", redisMode: modeEmbedded, startWait: time.Minute, stopTimeout: 15 * time.Second}},
		{name: "bad mode", args: []string{"-redis", "docker"}, wantErr: "-redis must be auto, server or embedded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseFlags(tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestEnvMapLaterWins(t *testing.T) {
	m := envMap([]string{"A=1", "B=x=y", "A=2", "junk"})
	if m["A"] != "2" || m["B"] != "x=y" || len(m) != 2 {
		t.Errorf("envMap = %v", m)
	}
}

// TestDevrun runs devrun as `make run` does, with REDIS_URL pointing at a
// port where nothing listens, so it must start its own Redis; waits until
// the api answers /health; then Ctrl-C (SIGINT) must stop everything and
// exit 0.
func TestDevrun(t *testing.T) {
	bins := stacktest.Build(t)
	devrun := filepath.Join(bins.Dir, "devrun")
	if out, err := exec.Command("go", "build", "-o", devrun, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build devrun: %v\n%s", err, out)
	}
	wantAuto, wantDurability := "started redis-server", "redis durability: always"
	if _, err := redisproc.Binary(); err != nil {
		wantAuto, wantDurability = "embedded in-memory Redis", "redis durability: off"
	}
	tests := []struct {
		name           string
		redisMode      string
		wantRedis      string
		wantDurability string
	}{
		{name: "auto starts a Redis when none answers", redisMode: modeAuto, wantRedis: wantAuto, wantDurability: wantDurability},
		{name: "embedded miniredis", redisMode: modeEmbedded, wantRedis: "embedded in-memory Redis (miniredis)", wantDurability: "redis durability: off"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			apiPort, aggPort := stacktest.FreePort(t), stacktest.FreePort(t)
			env := map[string]string{
				"PATH":            os.Getenv("PATH"),
				"TMPDIR":          t.TempDir(),
				"REDIS_URL":       fmt.Sprintf("redis://127.0.0.1:%d", stacktest.FreePort(t)), // nothing there
				"PORT":            fmt.Sprint(apiPort),
				"AGG_HEALTH_PORT": fmt.Sprint(aggPort),
			}
			p := stacktest.Run(t, "devrun", devrun, env, "-bin", bins.Dir, "-redis", tt.redisMode, "-stop-timeout", "15s")
			apiHealth := fmt.Sprintf("http://localhost:%d/health", apiPort)
			stacktest.WaitHealthy(t, bins.Healthcheck, []string{apiHealth}, p, 45*time.Second)
			waitFor(t, p, "devrun | ready:", 20*time.Second)

			if err := p.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			select {
			case <-p.Done():
			case <-time.After(40 * time.Second):
				t.Fatalf("devrun did not exit within 40s of SIGINT")
			}
			if code := p.ExitCode(); code != 0 {
				t.Errorf("devrun exit code %d, want 0", code)
			}
			log := p.Log.String()
			for _, want := range []string{tt.wantRedis, tt.wantDurability, "devrun | dashboard: http://localhost:" + fmt.Sprint(apiPort) + "/", "api | ", "aggregator | ", "curl -i -X POST http://localhost:" + fmt.Sprint(apiPort) + "/api/metrics", "stopped cleanly", "stopping the session Redis"} {
				if !strings.Contains(log, want) {
					t.Errorf("output lacks %q", want)
				}
			}
			if err := exec.Command(bins.Healthcheck, "-timeout", "500ms", apiHealth).Run(); err == nil {
				t.Errorf("api still answers %s after devrun exited", apiHealth)
			}
		})
	}
}

// waitFor polls p's output for want, bounded by timeout.
func waitFor(t *testing.T, p *stacktest.Proc, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.Log.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in devrun output within %s", want, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
