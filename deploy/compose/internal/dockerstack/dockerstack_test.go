package dockerstack

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParsePS(t *testing.T) {
	api := Container{Name: "p-api-1", Service: "api", State: "running", Health: "healthy"}
	agg := Container{Name: "p-aggregator-1", Service: "aggregator", State: "exited", ExitCode: 137}
	for _, tc := range []struct {
		name string
		out  string
		want []Container
	}{
		{"one object a line (2.21+)", `{"Name":"p-api-1","Service":"api","State":"running","Health":"healthy","ExitCode":0,"Publishers":[]}
{"Name":"p-aggregator-1","Service":"aggregator","State":"exited","Health":"","ExitCode":137}
`, []Container{api, agg}},
		{"one array (older)", `[{"Name":"p-api-1","Service":"api","State":"running","Health":"healthy"},{"Name":"p-aggregator-1","Service":"aggregator","State":"exited","ExitCode":137}]`, []Container{api, agg}},
		{"nothing", "\n", []Container{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePS([]byte(tc.out))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Errorf("ParsePS = %+v, want %+v", got, tc.want)
			}
		})
	}
	if _, err := ParsePS([]byte("{not json\n")); err == nil {
		t.Error("ParsePS accepted a broken line")
	}
}

func TestParseLdd(t *testing.T) {
	for _, tc := range []struct {
		name    string
		out     string
		want    []string
		wantErr bool
	}{
		{"libraries and loader", "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f84)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f85)\n",
			[]string{"/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"}, false},
		{"static", "\tstatically linked\n", nil, false},
		{"missing library", "\tliblzf.so.1 => not found\n", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseLdd(tc.out)
			if (err != nil) != tc.wantErr || !slices.Equal(got, tc.want) {
				t.Errorf("parseLdd = %q, %v; want %q (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// TestStandInRootfs: the root filesystem tar has every parent directory
// before its children, generated files with their modes and owners, a
// copied tree without its skipped entries, and symlinked sources copied
// with their content.
func TestStandInRootfs(t *testing.T) {
	src := t.TempDir()
	for _, f := range []string{"tree/a.txt", "tree/sub/b.txt", "tree/test/skipped.txt", "real.bin"} {
		if err := os.MkdirAll(filepath.Join(src, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, f), []byte("content of "+f), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("real.bin", filepath.Join(src, "link.bin")); err != nil {
		t.Fatal(err)
	}
	s := StandIn{Name: "x", Dockerfile: "FROM scratch\n", Files: []File{
		{Path: "usr/local/tree", Src: filepath.Join(src, "tree"), Skip: []string{"test"}},
		{Path: "usr/bin/prog", Src: filepath.Join(src, "link.bin")},
		{Path: "home/nonroot", Dir: true, Mode: 0o700, UID: 65532, GID: 65532},
		{Path: "etc/passwd", Body: "root:x:0:0::/root:/bin/sh\n", Mode: 0o644},
		{Path: "bin/sh", Link: "busybox"},
	}}
	var buf bytes.Buffer
	if err := s.writeRootfs(tar.NewWriter(&buf)); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	seen := map[string]*tar.Header{}
	content := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(h.Name, "/")
		if d := filepath.Dir(name); d != "." && seen[d] == nil {
			t.Errorf("%s comes before its directory %s", h.Name, d)
		}
		seen[name] = h
		b, _ := io.ReadAll(tr)
		content[name] = string(b)
	}
	for name, want := range map[string]string{
		"usr/local/tree/a.txt":     "content of tree/a.txt",
		"usr/local/tree/sub/b.txt": "content of tree/sub/b.txt",
		"usr/bin/prog":             "content of real.bin",
		"etc/passwd":               "root:x:0:0::/root:/bin/sh\n",
	} {
		if content[name] != want {
			t.Errorf("%s = %q, want %q", name, content[name], want)
		}
	}
	if seen["usr/local/tree/test"] != nil || seen["usr/local/tree/test/skipped.txt"] != nil {
		t.Error("the skipped entry was copied")
	}
	if h := seen["home/nonroot"]; h == nil || h.Typeflag != tar.TypeDir || h.Uid != 65532 || h.Mode != 0o700 {
		t.Errorf("home/nonroot = %+v, want a 0700 directory of uid 65532", h)
	}
	if h := seen["bin/sh"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox" {
		t.Errorf("bin/sh = %+v, want a symlink to busybox", h)
	}
	if h := seen["usr/bin/prog"]; h == nil || h.Typeflag != tar.TypeReg {
		t.Errorf("usr/bin/prog = %+v, want a regular file (the symlink followed)", h)
	}
	k1, err := s.key()
	if err != nil {
		t.Fatal(err)
	}
	s.Files[3].Body = "changed\n"
	if k2, _ := s.key(); k2 == k1 {
		t.Error("the content key did not change with a file")
	}
}

// TestRedisEntrypoint runs the stand-in's entrypoint with its exec
// replaced by a print: like the official image's, it adds --protected-mode
// no to a redis-server without a config that sets it, and leaves other
// commands alone.
func TestRedisEntrypoint(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	dir := t.TempDir()
	withPM := filepath.Join(dir, "with.conf")
	without := filepath.Join(dir, "without.conf")
	_ = os.WriteFile(withPM, []byte("protected-mode yes\n"), 0o644)
	_ = os.WriteFile(without, []byte("port 6379\n"), 0o644)
	script := strings.Replace(redisEntrypoint, `exec "$@"`, `printf '%s\n' "$@"`, 1)
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"redis-server with options", []string{"redis-server", "--appendonly", "yes"}, []string{"redis-server", "--protected-mode", "no", "--appendonly", "yes"}},
		{"options alone", []string{"--appendonly", "yes"}, []string{"redis-server", "--protected-mode", "no", "--appendonly", "yes"}},
		{"bare redis-server", []string{"redis-server"}, []string{"redis-server", "--protected-mode", "no"}},
		{"config without protected-mode", []string{"redis-server", without, "--port", "1"}, []string{"redis-server", without, "--protected-mode", "no", "--port", "1"}},
		{"config that sets it", []string{"redis-server", withPM}, []string{"redis-server", withPM}},
		{"another command", []string{"redis-cli", "ping"}, []string{"redis-cli", "ping"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command(sh, append([]string{"-c", script, "entrypoint"}, tc.args...)...).Output()
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Fields(string(out)); !slices.Equal(got, tc.want) {
				t.Errorf("runs %q, want %q", got, tc.want)
			}
		})
	}
}
