// Package dockerstack runs the compose files under a real Docker engine for
// the container tests: it checks that an engine and the Compose v2 plugin
// answer, picks the images (the defaults when they can be pulled, else
// stand-ins built from this machine's packages), and drives one compose
// project (`docker compose -p <name> ...`) with a hermetic environment.
package dockerstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// ErrNoEngine is wrapped by Check when no Docker engine or no Compose v2
// plugin answers.
var ErrNoEngine = errors.New("no Docker engine with the Compose v2 plugin")

// Check reports whether `docker info` and `docker compose version` both
// succeed, naming the one that failed.
func Check(ctx context.Context) error {
	if _, err := Docker(ctx, nil, "info", "--format", "{{.ServerVersion}}"); err != nil {
		return fmt.Errorf("%w: docker info: %w", ErrNoEngine, err)
	}
	if _, err := Docker(ctx, nil, "compose", "version", "--short"); err != nil {
		return fmt.Errorf("%w: docker compose version: %w", ErrNoEngine, err)
	}
	return nil
}

// Docker runs the docker CLI with args (stdin from in when not nil) and
// returns its standard output. A failure's error carries the command and
// its standard error.
func Docker(ctx context.Context, in io.Reader, args ...string) ([]byte, error) {
	return run(ctx, "", nil, in, args...)
}

func run(ctx context.Context, dir string, env []string, in io.Reader, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = env
	}
	cmd.Stdin = in
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.Bytes(), &CmdError{Args: args, Err: err, Stderr: strings.TrimSpace(errOut.String())}
	}
	return out.Bytes(), nil
}

// CmdError is a docker command that failed.
type CmdError struct {
	Args   []string
	Err    error
	Stderr string
}

func (e *CmdError) Error() string {
	return fmt.Sprintf("docker %s: %v: %s", strings.Join(e.Args, " "), e.Err, e.Stderr)
}

func (e *CmdError) Unwrap() error { return e.Err }

// baseEnv is the part of the test process's environment the docker CLI
// needs; everything else (a developer's exported PORT or RATE_LIMIT_MAX)
// stays out of the compose interpolation.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "PATH", k == "HOME", k == "TMPDIR", k == "USER",
			strings.HasPrefix(k, "DOCKER_"), k == "BUILDKIT_PROGRESS":
			env = append(env, kv)
		}
	}
	return env
}
