package compose

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	apiconfig "github.com/resilientanalytics/ra/services/api/config"
)

const keysOverlay = "compose.keys.yaml"

// keysVars are the api's API key settings: compose.yaml leaves them unset
// (keys are off by default) and the keys overlay sets them.
var keysVars = map[string]bool{"API_KEYS": true, "API_KEYS_FILE": true, "AUTH_READS": true}

// loadWithKeys loads compose.yaml with the keys overlay, as
// `docker compose -f compose.yaml -f compose.keys.yaml` does.
func loadWithKeys(t *testing.T, env map[string]string) *types.Project {
	t.Helper()
	var files []string
	for _, f := range []string{composeFile, keysOverlay} {
		abs, err := filepath.Abs(f)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, abs)
	}
	var list []string
	for _, k := range slices.Sorted(maps.Keys(env)) {
		list = append(list, k+"="+env[k])
	}
	opts, err := cli.NewProjectOptions(files, cli.WithWorkingDirectory(filepath.Dir(files[0])), cli.WithEnv(list))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("load %s + %s: %v", composeFile, keysOverlay, err)
	}
	return p
}

// TestKeysOverlay: the overlay hands the api a keys file as a compose
// secret (and nothing else changes), AUTH_READS is settable from the host,
// and the api accepts the environment with a real keys file in place.
func TestKeysOverlay(t *testing.T) {
	if env := environment(service(t, loadProject(t, composeFile, nil), "api")); env["API_KEYS_FILE"] != "" || env["API_KEYS"] != "" {
		t.Fatalf("compose.yaml alone configures keys: %v", env)
	}
	base := loadProject(t, composeFile, nil)
	p := loadWithKeys(t, nil)
	api := service(t, p, "api")
	env := environment(api)
	if env["API_KEYS_FILE"] != "/run/secrets/api_keys" || env["AUTH_READS"] != "false" {
		t.Errorf("API_KEYS_FILE=%q AUTH_READS=%q, want /run/secrets/api_keys and false", env["API_KEYS_FILE"], env["AUTH_READS"])
	}
	if _, set := env["API_KEYS"]; set {
		t.Error("the overlay sets API_KEYS too: the api refuses both")
	}
	for k, v := range environment(service(t, base, "api")) {
		if env[k] != v && !keysVars[k] {
			t.Errorf("the overlay changes %s: %q -> %q", k, v, env[k])
		}
	}
	if len(api.Secrets) != 1 || api.Secrets[0].Source != "api_keys" || (api.Secrets[0].Target != "" && api.Secrets[0].Target != "/run/secrets/api_keys") {
		t.Fatalf("api secrets %+v, want api_keys at /run/secrets/api_keys", api.Secrets)
	}
	if want, _ := filepath.Abs("api_keys"); p.Secrets["api_keys"].File != want {
		t.Errorf("secret file %q, want %q by default", p.Secrets["api_keys"].File, want)
	}
	if agg := service(t, p, "aggregator"); len(agg.Secrets) != 0 {
		t.Errorf("the aggregator gets secrets: %+v", agg.Secrets)
	}

	keys := filepath.Join(t.TempDir(), "api_keys")
	entry := "ci=sha256:101a2c1d34600c1a1317920c0cc842603394b0f500fde3380d60b01c901209da;q=100;w=1m\n"
	if err := os.WriteFile(keys, []byte("# issued by api keygen\n"+entry), 0o644); err != nil {
		t.Fatal(err)
	}
	p = loadWithKeys(t, map[string]string{"API_KEYS_SECRET_FILE": keys, "AUTH_READS": "true"})
	if got := p.Secrets["api_keys"].File; got != keys {
		t.Errorf("API_KEYS_SECRET_FILE=%s gave secret file %q", keys, got)
	}
	env = environment(service(t, p, "api"))
	if env["AUTH_READS"] != "true" {
		t.Errorf("AUTH_READS from the host reached the api as %q", env["AUTH_READS"])
	}
	env["API_KEYS_FILE"] = keys // where the container sees /run/secrets/api_keys
	cfg, err := apiconfig.Load(env)
	if err != nil {
		t.Fatalf("the api rejects the overlay's environment: %v", err)
	}
	if s, err := cfg.Auth.Load(); err != nil || s.Len() != 1 {
		t.Fatalf("keys from the secret: %v, %v", s, err)
	}
}
