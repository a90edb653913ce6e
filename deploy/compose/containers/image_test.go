package containers

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/deploy/compose/internal/dockerstack"
)

// TestRuntimeImage checks the images the Dockerfile makes, without compose
// at run time: each runs as nonroot (uid 65532), holds no shell, and its
// own HEALTHCHECK turns healthy under plain `docker run` next to a Redis.
func TestRuntimeImage(t *testing.T) {
	images := requireDocker(t)
	s := newStack(t, images, nil, nil)
	// The image's HEALTHCHECK port is a build arg from PORT: build with the
	// defaults, as `docker build` would.
	delete(s.Env, "PORT")
	s.compose("build", "api", "aggregator")
	net := s.Name + "-net"
	redis := s.Name + "-redis"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, args := range [][]string{
			{"rm", "-f", "-v", redis, s.Name + "-api", s.Name + "-aggregator"},
			{"network", "rm", net},
			{"image", "rm", s.Name + "-api", s.Name + "-aggregator"},
		} {
			_, _ = dockerstack.Docker(ctx, nil, args...)
		}
	})
	mustDocker(t, "network", "create", net)
	mustDocker(t, "run", "-d", "--name", redis, "--network", net, images.Env()["REDIS_IMAGE"])

	for _, svc := range []string{"api", "aggregator"} {
		t.Run(svc, func(t *testing.T) {
			t.Parallel()
			image, name := s.Name+"-"+svc, s.Name+"-"+svc
			mustDocker(t, "run", "-d", "--name", name, "--network", net, "-e", "REDIS_URL=redis://"+redis+":6379", image)

			if user := strings.TrimSpace(string(mustDocker(t, "inspect", "--format", "{{.Config.User}}", image))); user != "nonroot:nonroot" {
				t.Errorf("image user %q, want nonroot:nonroot", user)
			}
			// docker top asks the engine's host, so this holds where the
			// engine runs in a VM too.
			top := strings.Fields(string(mustDocker(t, "top", name, "-eo", "uid,gid,pid")))
			if len(top) != 6 || !slices.Equal(top[:5], []string{"UID", "GID", "PID", "65532", "65532"}) {
				t.Errorf("docker top: %q, want one process of uid and gid 65532 (nonroot)", top)
			}

			if out, err := dockerstack.Docker(context.Background(), nil, "run", "--rm", "--entrypoint", "/bin/sh", image, "-c", "true"); err == nil {
				t.Errorf("/bin/sh ran in the image: %s", out)
			}
			exported := mustDocker(t, "export", name)
			tr := tar.NewReader(bytes.NewReader(exported))
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				switch path.Base(h.Name) {
				case "sh", "ash", "bash", "dash", "busybox":
					t.Errorf("the image holds a shell: %s", h.Name)
				}
			}

			var health string
			eventually(t, 90*time.Second, func() bool {
				health = strings.TrimSpace(string(mustDocker(t, "inspect", "--format", "{{.State.Health.Status}}", name)))
				return health == "healthy"
			}, func() string {
				logs, _ := dockerstack.Docker(context.Background(), nil, "logs", "--tail", "20", name)
				return fmt.Sprintf("health %q, want healthy; logs:\n%s", health, logs)
			})
		})
	}
}
