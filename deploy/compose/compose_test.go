package compose

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/resilientanalytics/ra/deploy/compose/internal/dockerstack"

	"github.com/resilientanalytics/ra/pkg/config"
	aggconfig "github.com/resilientanalytics/ra/services/aggregator/config"
	apiconfig "github.com/resilientanalytics/ra/services/api/config"
)

var (
	// fixedVars are read by the services but deliberately not taken from
	// the host: REDIS_URL is the redis service and REDIS_CLUSTER says what
	// kind it is (each compose file fixes both); CONSUMER_NAME must default
	// per replica.
	fixedVars = map[string]bool{"REDIS_URL": true, "REDIS_CLUSTER": true, "CONSUMER_NAME": true}
	// wantRedisURL is what both services get.
	wantRedisURL = "redis://redis:6379"
)

// serviceVars derives, from each service's config struct, the variables it
// reads. No hand-written list: a renamed or added field shows up here.
func serviceVars() map[string][]config.Var {
	return map[string][]config.Var{
		"api":        config.Vars(apiconfig.Config{}),
		"aggregator": config.Vars(aggconfig.Config{}),
	}
}

func TestComposeFilesShape(t *testing.T) {
	for _, file := range []string{composeFile, rootCompose} {
		t.Run(file, func(t *testing.T) {
			p := loadProject(t, file, nil)
			names := slices.Sorted(func(yield func(string) bool) {
				for n := range p.Services {
					if !yield(n) {
						return
					}
				}
			})
			if !slices.Equal(names, []string{"aggregator", "api", "redis"}) {
				t.Fatalf("services = %v, want exactly aggregator, api, redis", names)
			}
			for name, s := range p.Services {
				if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) < 2 {
					t.Errorf("%s: no usable healthcheck: %+v", name, s.HealthCheck)
				}
			}
			for _, name := range []string{"api", "aggregator"} {
				s := service(t, p, name)
				dep, ok := s.DependsOn["redis"]
				if !ok || dep.Condition != types.ServiceConditionHealthy {
					t.Errorf("%s: depends_on redis = %+v, want condition service_healthy", name, dep)
				}
				for other, d := range s.DependsOn {
					if d.Condition != types.ServiceConditionHealthy {
						t.Errorf("%s: depends_on %s condition %q, want service_healthy", name, other, d.Condition)
					}
				}
			}
		})
	}
}

// TestEnvironmentIsReadByTheService catches typos: a misspelt variable
// would silently leave the setting at its default.
func TestEnvironmentIsReadByTheService(t *testing.T) {
	p := loadProject(t, composeFile, nil)
	for name, vars := range serviceVars() {
		t.Run(name, func(t *testing.T) {
			known := map[string]bool{}
			for _, v := range vars {
				known[v.Name] = true
			}
			for k := range environment(service(t, p, name)) {
				if !known[k] {
					t.Errorf("compose sets %s=… on %s, but its config never reads it", k, name)
				}
			}
		})
	}
}

// TestDefaultsMatchTheServices: with nothing set on the host, compose passes
// exactly each variable's own envDefault (so compose and a bare binary
// behave alike), and the service accepts the result.
func TestDefaultsMatchTheServices(t *testing.T) {
	p := loadProject(t, composeFile, nil)
	for name, vars := range serviceVars() {
		t.Run(name, func(t *testing.T) {
			env := environment(service(t, p, name))
			for _, v := range vars {
				got, set := env[v.Name]
				switch {
				case v.Name == "CONSUMER_NAME":
					if set {
						t.Errorf("compose sets CONSUMER_NAME=%q: scaled replicas would share one consumer", got)
					}
				case v.Name == "REDIS_URL":
					if got != wantRedisURL {
						t.Errorf("REDIS_URL = %q, want %q", got, wantRedisURL)
					}
				case v.Name == "REDIS_CLUSTER":
					if got != "false" {
						t.Errorf("REDIS_CLUSTER = %q, want it fixed to false: compose.yaml runs one node", got)
					}
				case keysVars[v.Name] && !set:
					// API keys are off by default: compose.keys.yaml sets these (compose_keys_test.go).
				case !set:
					t.Errorf("compose does not pass %s (field %s): it cannot be set through the environment", v.Name, v.Field)
				case got != v.Default:
					t.Errorf("%s defaults to %q in compose, %q in the service (field %s)", v.Name, got, v.Default, v.Field)
				}
			}
			var err error
			switch name {
			case "api":
				_, err = apiconfig.Load(env)
			case "aggregator":
				_, err = aggconfig.Load(env)
			}
			if err != nil {
				t.Errorf("%s rejects the environment compose gives it: %v", name, err)
			}
		})
	}
}

// TestEveryVariableIsSettable: each variable is wired to its own host
// variable (distinct values catch cross-wiring such as ${CACHE_TTL} feeding
// CACHE_STALE_MAX).
func TestEveryVariableIsSettable(t *testing.T) {
	host := map[string]string{}
	i := 0
	for _, vars := range serviceVars() {
		for _, v := range vars {
			if _, dup := host[v.Name]; !dup && !fixedVars[v.Name] {
				host[v.Name] = strconv.Itoa(20000 + i) // numeric: PORT is also a port
				i++
			}
		}
	}
	p := loadProject(t, composeFile, host)
	for name, vars := range serviceVars() {
		env := environment(service(t, p, name))
		for _, v := range vars {
			if fixedVars[v.Name] || keysVars[v.Name] {
				continue
			}
			if env[v.Name] != host[v.Name] {
				t.Errorf("%s: host %s=%s reached the container as %q", name, v.Name, host[v.Name], env[v.Name])
			}
		}
	}
	if env := environment(service(t, p, "api")); env["REDIS_URL"] != wantRedisURL {
		t.Errorf("REDIS_URL = %q, want it fixed to %q", env["REDIS_URL"], wantRedisURL)
	}
}

func TestHealthchecksPointAtTheServicePorts(t *testing.T) {
	checkHealthPorts(t, loadProject(t, composeFile, nil))
	checkHealthPorts(t, loadProject(t, composeFile, map[string]string{"PORT": "9100", "AGG_HEALTH_PORT": "9101"}))
}

// checkHealthPorts: api probes its PORT and publishes it; the aggregator
// probes AGG_HEALTH_PORT; both with the image's /healthcheck on /health,
// and the image's own HEALTHCHECK port (build arg) agrees.
func checkHealthPorts(t *testing.T, p *types.Project) {
	t.Helper()
	api := service(t, p, "api")
	apiCfg, err := apiconfig.Load(environment(api))
	if err != nil {
		t.Fatalf("api config: %v", err)
	}
	agg := service(t, p, "aggregator")
	aggCfg, err := aggconfig.Load(environment(agg))
	if err != nil {
		t.Fatalf("aggregator config: %v", err)
	}
	for _, c := range []struct {
		s    types.ServiceConfig
		port int
	}{{api, apiCfg.Port}, {agg, aggCfg.HealthPort}} {
		want := fmt.Sprintf("http://localhost:%d/health", c.port)
		if got := []string(c.s.HealthCheck.Test); !slices.Equal(got, []string{"CMD", "/healthcheck", want}) {
			t.Errorf("%s healthcheck = %q, want [CMD /healthcheck %s]", c.s.Name, got, want)
		}
		if arg := c.s.Build.Args["HEALTH_PORT"]; arg == nil || *arg != strconv.Itoa(c.port) {
			t.Errorf("%s build arg HEALTH_PORT = %v, want %d", c.s.Name, arg, c.port)
		}
	}
	if len(api.Ports) != 1 || api.Ports[0].Target != uint32(apiCfg.Port) || api.Ports[0].Published != strconv.Itoa(apiCfg.Port) {
		t.Errorf("api ports = %+v, want %d published on %d", api.Ports, apiCfg.Port, apiCfg.Port)
	}
}

func TestAggregatorScales(t *testing.T) {
	agg := service(t, loadProject(t, composeFile, nil), "aggregator")
	if agg.ContainerName != "" {
		t.Errorf("container_name %q: --scale needs distinct names", agg.ContainerName)
	}
	if len(agg.Ports) != 0 {
		t.Errorf("ports %+v: a host port can be bound by one replica only", agg.Ports)
	}
	if _, ok := agg.Environment["CONSUMER_NAME"]; ok {
		t.Error("CONSUMER_NAME is set: replicas would share one consumer")
	}
}

func TestRedisService(t *testing.T) {
	p := loadProject(t, composeFile, nil)
	r := service(t, p, "redis")
	if !regexp.MustCompile(`^redis:7\.\d+\.\d+(-alpine|-bookworm)?$`).MatchString(r.Image) {
		t.Errorf("image %q: want the official image pinned to a 7.x.y tag", r.Image)
	}
	cmd := strings.Join(r.Command, " ")
	for _, want := range []string{"--appendonly yes", "--appendfsync always", "--maxmemory-policy noeviction"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("command %q lacks %q", cmd, want)
		}
	}
	var data bool
	for _, v := range r.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Target == "/data" {
			if _, ok := p.Volumes[v.Source]; !ok {
				t.Errorf("volume %q is not declared at top level", v.Source)
			}
			data = true
		}
	}
	if !data {
		t.Errorf("volumes %+v: want a named volume on /data (the AOF lives there)", r.Volumes)
	}
	hc := strings.Join(r.HealthCheck.Test, " ")
	if !strings.Contains(hc, "redis-cli ping") {
		t.Errorf("healthcheck %q: want redis-cli ping", hc)
	}
}

// TestBuildsUseTheDockerfile: both services build from the one Dockerfile
// with SERVICE naming a real cmd/<SERVICE> package, from the repo root.
func TestBuildsUseTheDockerfile(t *testing.T) {
	p := loadProject(t, composeFile, nil)
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"api", "aggregator"} {
		s := service(t, p, name)
		if s.Build == nil {
			t.Fatalf("%s: no build section", name)
		}
		if filepath.Clean(s.Build.Context) != root {
			t.Errorf("%s: build context %q, want the repository root %q", name, s.Build.Context, root)
		}
		df := s.Build.Dockerfile
		if !filepath.IsAbs(df) {
			df = filepath.Join(s.Build.Context, df)
		}
		if want, _ := filepath.Abs(dockerfile); df != want {
			t.Errorf("%s: dockerfile %q, want %q", name, df, want)
		}
		arg := s.Build.Args["SERVICE"]
		if arg == nil || *arg != name {
			t.Errorf("%s: build arg SERVICE = %v, want %q", name, arg, name)
			continue
		}
		if _, err := os.Stat(filepath.Join(root, "services", name, "cmd", name)); err != nil {
			t.Errorf("%s: SERVICE=%s but services/%s/cmd/%s: %v", name, name, name, name, err)
		}
	}
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	ins := instructions(string(b))
	if strings.HasPrefix(string(b), "# syntax=") || strings.Contains(string(b), "\n# syntax=") {
		t.Error("Dockerfile has a `# syntax=` line: it pulls a frontend image, which fails without a registry")
	}
	defaults := globalArgs(ins)
	var froms []string
	for _, in := range ins {
		if in.cmd == "FROM" {
			froms = append(froms, expandArgs(in.args, defaults))
		}
	}
	if len(froms) < 2 {
		t.Fatalf("FROM lines %q: want a multi-stage build", froms)
	}
	if first, _, _ := strings.Cut(froms[0], " "); first != dockerstack.DefaultGoImage {
		t.Errorf("build stage FROM %q, want %s by default", first, dockerstack.DefaultGoImage)
	}
	if final := froms[len(froms)-1]; final != dockerstack.DefaultRuntimeImage {
		t.Errorf("final stage FROM %q, want %s by default", final, dockerstack.DefaultRuntimeImage)
	}
	final := ins[lastIndex(ins, "FROM"):]
	want := map[string]*regexp.Regexp{
		"USER":        regexp.MustCompile(`^nonroot(:nonroot)?$`),
		"HEALTHCHECK": regexp.MustCompile(`CMD \["/healthcheck"`),
		"ENTRYPOINT":  regexp.MustCompile(`^\["/service"\]$`),
	}
	for cmd, re := range want {
		i := lastIndex(final, cmd)
		if i < 0 || !re.MatchString(final[i].args) {
			t.Errorf("final stage %s: want %s", cmd, re)
		}
	}
	var copies []string
	for _, in := range final {
		if in.cmd == "COPY" {
			copies = append(copies, in.args)
		}
	}
	for _, dst := range []string{" /healthcheck", " /service"} {
		if !slices.ContainsFunc(copies, func(c string) bool { return strings.HasSuffix(c, dst) }) {
			t.Errorf("final stage copies %q, want one into %s", copies, dst)
		}
	}
	text := string(b)
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "GOTOOLCHAIN=local"} {
		if !strings.Contains(text, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}

// TestDockerignoreKeepsTheBuildInputs: the build context must still hold
// what the Dockerfile copies.
func TestDockerignoreKeepsTheBuildInputs(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Skipf("no .dockerignore: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for _, need := range []string{"go.work", "pkg", "services", "deploy", "deploy/healthchecks", "deploy/compose/go.mod"} {
			if ok, _ := filepath.Match(line, need); ok || line == need {
				t.Errorf(".dockerignore line %q excludes %s, which the build needs", line, need)
			}
		}
	}
}

// TestImageVariables: the images are variables with today's defaults, for
// mirrors and air gaps. REDIS_IMAGE sets every Redis of both compose files;
// GO_IMAGE and RUNTIME_IMAGE reach the Dockerfile as build args of both
// services, with the Dockerfile's own ARG defaults when unset.
func TestImageVariables(t *testing.T) {
	b, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	args := globalArgs(instructions(string(b)))
	for _, v := range []string{"GO_IMAGE", "RUNTIME_IMAGE"} {
		if _, ok := args[v]; !ok {
			t.Errorf("Dockerfile has no ARG %s before its first FROM", v)
		}
	}
	set := map[string]string{"REDIS_IMAGE": "mirror.example/redis:7", "GO_IMAGE": "mirror.example/golang:1", "RUNTIME_IMAGE": "mirror.example/static:nonroot"}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want map[string]string
	}{
		{"defaults", nil, map[string]string{"REDIS_IMAGE": dockerstack.DefaultRedisImage, "GO_IMAGE": args["GO_IMAGE"], "RUNTIME_IMAGE": args["RUNTIME_IMAGE"]}},
		{"set", set, set},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, file := range []string{composeFile, rootCompose, clusterComposeFile} {
				p := loadProject(t, file, tc.env)
				for name, svc := range p.Services {
					if svc.Build == nil {
						if svc.Image != tc.want["REDIS_IMAGE"] {
							t.Errorf("%s %s: image %q, want %q", file, name, svc.Image, tc.want["REDIS_IMAGE"])
						}
						continue
					}
					for _, v := range []string{"GO_IMAGE", "RUNTIME_IMAGE"} {
						if got := svc.Build.Args[v]; got == nil || *got != tc.want[v] {
							t.Errorf("%s %s: build arg %s = %v, want %q", file, name, v, got, tc.want[v])
						}
					}
				}
			}
		})
	}
	if args["GO_IMAGE"] != dockerstack.DefaultGoImage || args["RUNTIME_IMAGE"] != dockerstack.DefaultRuntimeImage {
		t.Errorf("Dockerfile defaults %v, the container tests' %s and %s", args, dockerstack.DefaultGoImage, dockerstack.DefaultRuntimeImage)
	}
}

// globalArgs returns the defaults of the ARGs before the first FROM (the
// only ones a FROM line can use).
func globalArgs(ins []instruction) map[string]string {
	out := map[string]string{}
	for _, in := range ins {
		if in.cmd == "FROM" {
			break
		}
		if in.cmd == "ARG" {
			k, v, _ := strings.Cut(in.args, "=")
			out[k] = strings.Trim(v, `"`)
		}
	}
	return out
}

// expandArgs replaces ${NAME} and $NAME by the ARG defaults.
func expandArgs(s string, args map[string]string) string {
	return os.Expand(s, func(k string) string { return args[k] })
}

// instruction is one Dockerfile instruction with continuations joined.
type instruction struct{ cmd, args string }

func instructions(text string) []instruction {
	var out []instruction
	var cur strings.Builder
	flush := func() {
		s := strings.TrimSpace(cur.String())
		cur.Reset()
		if s == "" {
			return
		}
		cmd, args, _ := strings.Cut(s, " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.Join(strings.Fields(args), " ")})
	}
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		flush()
	}
	flush()
	return out
}

func lastIndex(ins []instruction, cmd string) int {
	for i := len(ins) - 1; i >= 0; i-- {
		if ins[i].cmd == cmd {
			return i
		}
	}
	return -1
}
