package dockerstack

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Project is one compose project: `docker compose -p Name [-f File...]`
// run in Dir, as a user types it there, with exactly Env as the interpolation source (plus what the
// docker CLI itself needs), and an empty --env-file so a developer's .env
// cannot change the outcome.
type Project struct {
	Name  string
	Dir   string
	Files []string // relative to Dir; none means Dir's compose.yaml
	Env   map[string]string
}

// Compose runs `docker compose` for the project and returns its standard
// output.
func (p *Project) Compose(ctx context.Context, args ...string) ([]byte, error) {
	return p.compose(ctx, nil, args...)
}

func (p *Project) compose(ctx context.Context, in io.Reader, args ...string) ([]byte, error) {
	empty := filepath.Join(os.TempDir(), "dockerstack-empty.env")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		return nil, err
	}
	full := []string{"compose", "-p", p.Name, "--env-file", empty}
	for _, f := range p.Files {
		full = append(full, "-f", f)
	}
	env := baseEnv()
	for _, k := range slices.Sorted(maps.Keys(p.Env)) {
		env = append(env, k+"="+p.Env[k])
	}
	return run(ctx, p.Dir, env, in, append(full, args...)...)
}

// Exec runs a command in the first container of service (no TTY) with
// stdin from in, and returns its standard output.
func (p *Project) Exec(ctx context.Context, in io.Reader, service string, cmd ...string) ([]byte, error) {
	return p.compose(ctx, in, append([]string{"exec", "-T", service}, cmd...)...)
}

// Container is one line of `docker compose ps --format json`.
type Container struct {
	Name     string
	Service  string
	State    string // running, exited, ...
	Health   string // healthy, unhealthy, starting, or "" without a healthcheck
	ExitCode int
}

// PS lists the project's containers, stopped ones included.
func (p *Project) PS(ctx context.Context) ([]Container, error) {
	out, err := p.Compose(ctx, "ps", "--all", "--format", "json")
	if err != nil {
		return nil, err
	}
	return ParsePS(out)
}

// ParsePS reads `docker compose ps --format json`: one object a line
// (Compose 2.21 and later) or one array (earlier).
func ParsePS(out []byte) ([]Container, error) {
	out = bytes.TrimSpace(out)
	var cs []Container
	if len(out) == 0 {
		return cs, nil
	}
	if out[0] == '[' {
		if err := json.Unmarshal(out, &cs); err != nil {
			return nil, fmt.Errorf("compose ps: %w", err)
		}
		return cs, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var c Container
		if err := json.Unmarshal(line, &c); err != nil {
			return nil, fmt.Errorf("compose ps line %q: %w", line, err)
		}
		cs = append(cs, c)
	}
	return cs, sc.Err()
}

// Leftovers lists what Docker still holds of the project (by compose's
// project label): containers, networks and volumes, as "kind name".
func (p *Project) Leftovers(ctx context.Context) ([]string, error) {
	filter := "label=com.docker.compose.project=" + p.Name
	var left []string
	for _, q := range []struct{ kind, format string }{
		{"container", "{{.Names}}"}, {"network", "{{.Name}}"}, {"volume", "{{.Name}}"},
	} {
		args := []string{q.kind, "ls", "--filter", filter, "--format", q.format}
		if q.kind == "container" {
			args = []string{"ps", "--all", "--filter", filter, "--format", q.format}
		}
		out, err := Docker(ctx, nil, args...)
		if err != nil {
			return nil, err
		}
		for _, name := range strings.Fields(string(out)) {
			left = append(left, q.kind+" "+name)
		}
	}
	return left, nil
}
