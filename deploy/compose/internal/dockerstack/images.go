package dockerstack

import (
	"context"
	"fmt"
	"os"
	"time"
)

// Default images: what compose.yaml and the Dockerfile use unless told
// otherwise (compose_test.go keeps those files in step with these).
const (
	DefaultRedisImage   = "redis:7.2.10-alpine"
	DefaultGoImage      = "golang:1.26.8"
	DefaultRuntimeImage = "gcr.io/distroless/static-debian12:nonroot"
)

// Image is one image the stack needs and where it came from.
type Image struct {
	Var     string // compose variable that passes it: REDIS_IMAGE, GO_IMAGE, RUNTIME_IMAGE
	Default string // the image the project ships with
	Name    string // the image used
	Source  string // "present", "pulled", "environment" or "stand-in"
}

// Images are the three images of the stack.
type Images []Image

// Env returns the compose variables that select the images.
func (im Images) Env() map[string]string {
	env := map[string]string{}
	for _, i := range im {
		env[i.Var] = i.Name
	}
	return env
}

// String lists the images one a line, for the test log.
func (im Images) String() string {
	var s string
	for _, i := range im {
		s += fmt.Sprintf("  %s=%s (%s", i.Var, i.Name, i.Source)
		if i.Name != i.Default {
			s += ", in place of " + i.Default
		}
		s += ")\n"
	}
	return s
}

// Resolve picks each image: the one named by its variable in the test's
// environment if set, else the default when it is present or can be pulled,
// else a stand-in built from this machine's packages (StandIns). logf
// reports progress (pulls and builds take a while).
func Resolve(ctx context.Context, logf func(string, ...any)) (Images, error) {
	specs := []struct {
		v, def  string
		standIn func() (StandIn, error)
	}{
		{"REDIS_IMAGE", DefaultRedisImage, RedisStandIn},
		{"GO_IMAGE", DefaultGoImage, GoStandIn},
		{"RUNTIME_IMAGE", DefaultRuntimeImage, RuntimeStandIn},
	}
	var out Images
	for _, s := range specs {
		img := Image{Var: s.v, Default: s.def, Name: s.def}
		switch {
		case os.Getenv(s.v) != "":
			img.Name, img.Source = os.Getenv(s.v), "environment"
		case present(ctx, s.def):
			img.Source = "present"
		case pull(ctx, s.def):
			img.Source = "pulled"
		default:
			si, err := s.standIn()
			if err != nil {
				return nil, fmt.Errorf("%s cannot be pulled and its stand-in cannot be made: %w", s.def, err)
			}
			built, err := si.Ensure(ctx)
			if err != nil {
				return nil, fmt.Errorf("%s cannot be pulled; building the stand-in %s: %w", s.def, si.Name, err)
			}
			if built {
				logf("built stand-in %s for %s", si.Name, s.def)
			}
			img.Name, img.Source = si.Name, "stand-in"
		}
		out = append(out, img)
	}
	return out, nil
}

func present(ctx context.Context, name string) bool {
	_, err := Docker(ctx, nil, "image", "inspect", "--format", "{{.Id}}", name)
	return err == nil
}

// pull gives a reachable registry a few minutes; an unreachable one fails
// at once (no such host).
func pull(ctx context.Context, name string) bool {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	_, err := Docker(ctx, nil, "pull", "--quiet", name)
	return err == nil
}
