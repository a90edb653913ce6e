// Package compose holds the deploy tests: the compose file checked against
// the services' config structs, the Dockerfile's essentials, and an
// end-to-end run of the stack as processes with the environment compose
// gives them. The devrun subpackage is `make run`; the containers
// subpackage runs the compose files under a real Docker engine.
package compose

import (
	"context"
	"maps"
	"path/filepath"
	"slices"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

const (
	composeFile = "compose.yaml"
	rootCompose = "../../compose.yaml"
	dockerfile  = "Dockerfile"
	repoRoot    = "../.."
)

// loadProject loads a compose file the way `docker compose` does, with env
// as the only interpolation source (never the test process's environment,
// so a developer's exported PORT cannot change the outcome).
func loadProject(tb testing.TB, file string, env map[string]string) *types.Project {
	tb.Helper()
	abs, err := filepath.Abs(file)
	if err != nil {
		tb.Fatal(err)
	}
	var list []string
	for _, k := range slices.Sorted(maps.Keys(env)) {
		list = append(list, k+"="+env[k])
	}
	opts, err := cli.NewProjectOptions([]string{abs},
		cli.WithWorkingDirectory(filepath.Dir(abs)),
		cli.WithEnv(list),
	)
	if err != nil {
		tb.Fatalf("compose options for %s: %v", file, err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		tb.Fatalf("load %s: %v", file, err)
	}
	return p
}

// service returns the named service or fails the test.
func service(tb testing.TB, p *types.Project, name string) types.ServiceConfig {
	tb.Helper()
	s, ok := p.Services[name]
	if !ok {
		tb.Fatalf("compose project has no service %q (has %v)", name, slices.Sorted(maps.Keys(p.Services)))
	}
	return s
}

// environment flattens a service's environment; a variable without a value
// (passed through from the host) maps to "".
func environment(s types.ServiceConfig) map[string]string {
	out := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			out[k] = *v
		} else {
			out[k] = ""
		}
	}
	return out
}
