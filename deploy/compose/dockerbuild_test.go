package compose

import (
	"debug/elf"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDockerfileBuildStage replays the Dockerfile's build stage without a
// Docker engine: it copies exactly what the COPY instructions copy into an
// empty directory, runs the RUN instructions there with the stage's ENV and
// each SERVICE, and checks that the files the final stage takes
// (/out/service, /out/healthcheck) come out as static binaries. A COPY that
// misses a module go.work names, or a build that needs cgo, fails here
// before it fails in `docker compose build`.
func TestDockerfileBuildStage(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the Dockerfile build replay")
	}
	b, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	ins := instructions(string(b))
	froms := 0
	var stage []instruction
	var finalCopies []string
	for _, in := range ins {
		if in.cmd == "FROM" {
			froms++
			continue
		}
		switch {
		case froms == 1:
			stage = append(stage, in)
		case in.cmd == "COPY" && strings.HasPrefix(in.args, "--from=build "):
			finalCopies = append(finalCopies, strings.Fields(in.args)[1])
		}
	}
	if len(finalCopies) == 0 {
		t.Fatal("final stage copies nothing from the build stage")
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	ignore := dockerignore(t, root)
	for _, service := range []string{"api", "aggregator"} {
		t.Run(service, func(t *testing.T) {
			t.Parallel()
			tmp := t.TempDir()
			src, out := filepath.Join(tmp, "src"), filepath.Join(tmp, "out")
			env := []string{"SERVICE=" + service}
			workdir := src
			for _, in := range stage {
				switch in.cmd {
				case "WORKDIR":
					workdir = filepath.Join(tmp, strings.TrimPrefix(in.args, "/"))
				case "ENV":
					env = append(env, strings.Fields(in.args)...)
				case "COPY":
					args := strings.Fields(in.args)
					dst := args[len(args)-1]
					intoDir := strings.HasSuffix(dst, "/") || dst == "." || len(args) > 2
					if !filepath.IsAbs(dst) {
						dst = filepath.Join(workdir, dst)
					}
					for _, s := range args[:len(args)-1] {
						copyInto(t, root, s, dst, intoDir, ignore)
					}
				case "RUN":
					script := regexp.MustCompile(`--mount=\S+\s*`).ReplaceAllString(in.args, "")
					script = strings.NewReplacer("/src", src, "/out/", out+"/").Replace(script)
					if err := os.MkdirAll(workdir, 0o755); err != nil {
						t.Fatal(err)
					}
					cmd := exec.Command("sh", "-c", script)
					cmd.Dir = workdir
					cmd.Env = append(append(os.Environ(), env...), "GOFLAGS=-buildvcs=false")
					if o, err := cmd.CombinedOutput(); err != nil {
						t.Fatalf("RUN %s\n(as %s): %v\n%s", in.args, script, err, o)
					}
				}
			}
			for _, f := range finalCopies {
				p := filepath.Join(tmp, strings.TrimPrefix(f, "/"))
				ef, err := elf.Open(p)
				if err != nil {
					t.Errorf("final stage copies %s: %v", f, err)
					continue
				}
				for _, prog := range ef.Progs {
					if prog.Type == elf.PT_INTERP {
						t.Errorf("%s is dynamically linked: distroless/static cannot run it", f)
					}
				}
				ef.Close()
			}
		})
	}
}

// copyInto copies root/src like Docker's COPY: a directory's contents go
// into dst; a file goes into dst/ when intoDir, else to dst. Paths the
// .dockerignore excludes are not in the build context, so not copied.
func copyInto(t *testing.T, root, src, dst string, intoDir bool, ignored func(rel string) bool) {
	t.Helper()
	from := filepath.Join(root, src)
	info, err := os.Stat(from)
	if err != nil {
		t.Fatalf("COPY source: %v", err)
	}
	if !info.IsDir() {
		if intoDir {
			dst = filepath.Join(dst, filepath.Base(from))
		}
		writeCopy(t, from, dst, info.Mode())
		return
	}
	err = filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		ctxRel, _ := filepath.Rel(root, p)
		if ctxRel != "." && ignored(filepath.ToSlash(ctxRel)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		i, err := d.Info()
		if err != nil {
			return err
		}
		if i.Mode().IsRegular() {
			writeCopy(t, p, filepath.Join(dst, rel), i.Mode())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// dockerignore returns a matcher for the repository's .dockerignore. It
// covers the forms that file uses (plain paths, globs, "**/" prefixes), not
// every rule of Docker's matcher (no "!" exceptions).
func dockerignore(t *testing.T, root string) func(rel string) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if os.IsNotExist(err) {
		return func(string) bool { return false }
	}
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "!") {
			t.Fatalf(".dockerignore exception %q: the replay does not implement exceptions", line)
		}
		patterns = append(patterns, strings.TrimPrefix(strings.TrimSuffix(line, "/"), "/"))
	}
	return func(rel string) bool {
		parts := strings.Split(rel, "/")
		for _, p := range patterns {
			if rest, ok := strings.CutPrefix(p, "**/"); ok {
				n := len(strings.Split(rest, "/"))
				for i := 0; i+n <= len(parts); i++ {
					if m, _ := path.Match(rest, strings.Join(parts[i:i+n], "/")); m {
						return true
					}
				}
				continue
			}
			if m, _ := path.Match(p, rel); m {
				return true
			}
		}
		return false
	}
}

func writeCopy(t *testing.T, from, to string, mode fs.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode.Perm()); err != nil {
		t.Fatal(err)
	}
}
