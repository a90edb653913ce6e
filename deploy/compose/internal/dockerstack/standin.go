package dockerstack

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// keyLabel holds a stand-in's content key: Ensure rebuilds only when the
// files it is made of (or its recipe) changed.
const keyLabel = "org.resilientanalytics.standin.key"

// StandIn is an image built FROM scratch out of files of this machine, so
// nothing is pulled: the Dockerfile ADDs rootfs.tar (ADD unpacks a local
// tar keeping owners and modes, which COPY would reset to root).
type StandIn struct {
	Name       string // name:tag it is built as
	Dockerfile string
	Files      []File
}

// File is one entry of the image's root filesystem: a copy of Src (a host
// file or directory tree), a file with Body, a symlink to Link, or an empty
// directory (Dir).
type File struct {
	Path     string      // inside the image, without the leading slash
	Src      string      // host path; a directory is copied whole
	Skip     []string    // for a Src directory: top-level entries left out
	Body     string      // content of a generated file
	Link     string      // symlink target
	Dir      bool        // an empty directory
	Mode     fs.FileMode // for Body and Dir entries
	UID, GID int
}

// Ensure builds the image unless one with the same content key exists, and
// says whether it built.
func (s StandIn) Ensure(ctx context.Context) (bool, error) {
	key, err := s.key()
	if err != nil {
		return false, err
	}
	got, err := Docker(ctx, nil, "image", "inspect", "--format", `{{index .Config.Labels "`+keyLabel+`"}}`, s.Name)
	if err == nil && strings.TrimSpace(string(got)) == key {
		return false, nil
	}
	rootfs, err := os.CreateTemp("", "standin-rootfs-*.tar")
	if err != nil {
		return false, err
	}
	defer os.Remove(rootfs.Name())
	defer rootfs.Close()
	if err := s.writeRootfs(tar.NewWriter(rootfs)); err != nil {
		return false, fmt.Errorf("rootfs of %s: %w", s.Name, err)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(s.writeContext(pw, rootfs)) }()
	_, err = Docker(ctx, pr, "build", "--quiet", "--label", keyLabel+"="+key, "--tag", s.Name, "-")
	pr.Close()
	if err != nil {
		return false, err
	}
	return true, nil
}

// writeContext writes the build context: the Dockerfile and rootfs.tar.
func (s StandIn) writeContext(w io.Writer, rootfs *os.File) error {
	tw := tar.NewWriter(w)
	if err := tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(s.Dockerfile))}); err != nil {
		return err
	}
	if _, err := io.WriteString(tw, s.Dockerfile); err != nil {
		return err
	}
	info, err := rootfs.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: "rootfs.tar", Mode: 0o644, Size: info.Size()}); err != nil {
		return err
	}
	if _, err := rootfs.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if _, err := io.Copy(tw, rootfs); err != nil {
		return err
	}
	return tw.Close()
}

// entry is one tar entry of the root filesystem, content read on demand.
type entry struct {
	hdr *tar.Header
	src string // host file whose content follows hdr ("" for none or body)
	bod string
}

// entries lists the root filesystem in tar order, parents first, with
// every parent directory present.
func (s StandIn) entries() ([]entry, error) {
	var out []entry
	seen := map[string]bool{}
	var parents func(p string)
	parents = func(p string) {
		d := path.Dir(p)
		if d == "." || seen[d] {
			return
		}
		parents(d)
		seen[d] = true
		out = append(out, entry{hdr: &tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755}})
	}
	add := func(e entry) {
		name := strings.TrimSuffix(e.hdr.Name, "/")
		if seen[name] {
			return
		}
		parents(name)
		seen[name] = true
		out = append(out, e)
	}
	for _, f := range s.Files {
		owner := func(h *tar.Header) *tar.Header { h.Uid, h.Gid = f.UID, f.GID; return h }
		switch {
		case f.Link != "":
			add(entry{hdr: owner(&tar.Header{Typeflag: tar.TypeSymlink, Name: f.Path, Linkname: f.Link, Mode: 0o777})})
		case f.Dir:
			add(entry{hdr: owner(&tar.Header{Typeflag: tar.TypeDir, Name: f.Path + "/", Mode: int64(f.Mode)})})
		case f.Src == "":
			add(entry{hdr: owner(&tar.Header{Typeflag: tar.TypeReg, Name: f.Path, Mode: int64(f.Mode), Size: int64(len(f.Body))}), bod: f.Body})
		default:
			err := filepath.WalkDir(f.Src, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				rel, _ := filepath.Rel(f.Src, p)
				rel = filepath.ToSlash(rel)
				if top, _, _ := strings.Cut(rel, "/"); slices.Contains(f.Skip, top) {
					return filepath.SkipDir
				}
				name := path.Join(f.Path, rel)
				// Stat, not Lstat, at the top: a library path ldd names is
				// often a symlink, and the image needs its content.
				info, err := d.Info()
				if p == f.Src {
					info, err = os.Stat(p)
				}
				if err != nil {
					return err
				}
				var link string
				if info.Mode()&fs.ModeSymlink != 0 {
					if link, err = os.Readlink(p); err != nil {
						return err
					}
				}
				h, err := tar.FileInfoHeader(info, link)
				if err != nil {
					return err
				}
				h.Name, h.Uid, h.Gid, h.Uname, h.Gname = name, f.UID, f.GID, "", ""
				h.ModTime = info.ModTime().Truncate(1e9)
				e := entry{hdr: h}
				if info.IsDir() {
					h.Name += "/"
				} else if info.Mode().IsRegular() {
					e.src = p
				}
				add(e)
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// key hashes the recipe and every entry's header (host files by path,
// size and mtime, generated ones by content).
func (s StandIn) key() (string, error) {
	es, err := s.entries()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00", s.Dockerfile)
	for _, e := range es {
		fmt.Fprintf(h, "%s %c %o %d:%d %d %d %s %s\x00", e.hdr.Name, e.hdr.Typeflag, e.hdr.Mode, e.hdr.Uid, e.hdr.Gid,
			e.hdr.Size, e.hdr.ModTime.Unix(), e.hdr.Linkname, e.bod)
	}
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}

func (s StandIn) writeRootfs(tw *tar.Writer) error {
	es, err := s.entries()
	if err != nil {
		return err
	}
	for _, e := range es {
		if err := tw.WriteHeader(e.hdr); err != nil {
			return err
		}
		switch {
		case e.src != "":
			f, err := os.Open(e.src)
			if err != nil {
				return err
			}
			_, err = io.CopyN(tw, f, e.hdr.Size)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", e.src, err)
			}
		case e.bod != "":
			if _, err := io.WriteString(tw, e.bod); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

const (
	busyboxPath = "/bin/busybox"
	caBundle    = "/etc/ssl/certs/ca-certificates.crt"
)

// busybox returns the static busybox and a symlink per applet in dir,
// leaving out names in taken (real programs of the image).
func busybox(dir string, taken ...string) ([]File, error) {
	f, err := elf.Open(busyboxPath)
	if err != nil {
		return nil, fmt.Errorf("%s (Debian's busybox-static): %w", busyboxPath, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return nil, fmt.Errorf("%s is dynamically linked: install busybox-static", busyboxPath)
		}
	}
	out, err := exec.Command(busyboxPath, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list: %w", err)
	}
	files := []File{{Path: path.Join(dir, "busybox"), Src: busyboxPath}}
	for _, name := range strings.Fields(string(out)) {
		if name != "busybox" && !slices.Contains(taken, name) {
			files = append(files, File{Path: path.Join(dir, name), Link: "busybox"})
		}
	}
	return files, nil
}

// GoStandIn is a Go build image like golang:<version>: this machine's Go
// toolchain (the one running the tests, so it is the version go.work asks
// for) at /usr/local/go, GOPATH /go, a static busybox for the RUN shell and
// the CA bundle, so the build stage can download modules.
func GoStandIn() (StandIn, error) {
	out, err := exec.Command("go", "env", "GOROOT", "GOVERSION").Output()
	if err != nil {
		return StandIn{}, fmt.Errorf("go env: %w", err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return StandIn{}, fmt.Errorf("go env GOROOT GOVERSION printed %q", out)
	}
	goroot, version := f[0], strings.TrimPrefix(f[1], "go")
	bb, err := busybox("bin")
	if err != nil {
		return StandIn{}, err
	}
	files := append(bb,
		File{Path: "usr/local/go", Src: goroot, Skip: []string{"test"}}, // the toolchain's own test suite
		File{Path: strings.TrimPrefix(caBundle, "/"), Src: caBundle},
		File{Path: "etc/passwd", Body: "root:x:0:0:root:/root:/bin/sh\n", Mode: 0o644},
		File{Path: "etc/group", Body: "root:x:0:\n", Mode: 0o644},
		File{Path: "tmp", Dir: true, Mode: 0o1777},
		File{Path: "root", Dir: true, Mode: 0o700},
		File{Path: "go", Dir: true, Mode: 0o1777},
	)
	return StandIn{
		Name: "ra-standin/golang:" + version,
		Dockerfile: `FROM scratch
ADD rootfs.tar /
ENV GOLANG_VERSION=` + version + ` GOTOOLCHAIN=local GOPATH=/go HOME=/root \
    PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /go
CMD ["sh"]
`,
		Files: files,
	}, nil
}

// RuntimeStandIn is a base like distroless/static:nonroot: CA certificates,
// /etc/passwd and /etc/group with root, nobody and nonroot (65532), /tmp,
// and nothing else: no shell, no libraries.
func RuntimeStandIn() (StandIn, error) {
	return StandIn{
		Name: "ra-standin/static:nonroot",
		Dockerfile: `FROM scratch
ADD rootfs.tar /
ENV PATH=/usr/local/bin:/usr/bin:/bin SSL_CERT_FILE=` + caBundle + `
USER 65532
WORKDIR /home/nonroot
`,
		Files: []File{
			{Path: strings.TrimPrefix(caBundle, "/"), Src: caBundle},
			{Path: "etc/passwd", Mode: 0o644, Body: "root:x:0:0:root:/root:/sbin/nologin\n" +
				"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
				"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"},
			{Path: "etc/group", Mode: 0o644, Body: "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"},
			{Path: "tmp", Dir: true, Mode: 0o1777},
			{Path: "root", Dir: true, Mode: 0o700},
			{Path: "home/nonroot", Dir: true, Mode: 0o700, UID: 65532, GID: 65532},
		},
	}, nil
}

// redisEntrypoint does what the official image's docker-entrypoint.sh does
// for us (without its switch to the redis user): options alone mean
// redis-server, and a redis-server whose config file does not set
// protected-mode gets --protected-mode no, since its clients are other
// containers and it has no password.
const redisEntrypoint = `#!/bin/sh
set -e
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi
if [ "$1" = redis-server ]; then
	conf=
	if [ -n "${2:-}" ] && [ -f "$2" ]; then conf=$2; fi
	if [ -z "$conf" ] || ! grep -q '^protected-mode' "$conf"; then
		shift
		if [ -n "$conf" ]; then
			shift
			set -- redis-server "$conf" --protected-mode no "$@"
		else
			set -- redis-server --protected-mode no "$@"
		fi
	fi
fi
exec "$@"
`

// RedisStandIn is a Redis image from Debian's redis-server and redis-cli
// with the shared libraries ldd lists, getent (compose.cluster.yaml's init
// resolves the nodes with it), a static busybox for the healthcheck's
// shell, and an entrypoint that adds --protected-mode no as the official
// image's does.
func RedisStandIn() (StandIn, error) {
	server, err := exec.LookPath("redis-server")
	if err != nil {
		return StandIn{}, fmt.Errorf("redis-server (Debian package redis-server): %w", err)
	}
	out, err := exec.Command(server, "--version").Output()
	if err != nil {
		return StandIn{}, fmt.Errorf("redis-server --version: %w", err)
	}
	m := regexp.MustCompile(`v=(\d+\.\d+\.\d+)`).FindSubmatch(out)
	if m == nil {
		return StandIn{}, fmt.Errorf("redis-server --version printed %q", out)
	}
	bins := map[string]string{"redis-server": server}
	for _, b := range []string{"redis-cli", "getent"} {
		if bins[b], err = exec.LookPath(b); err != nil {
			return StandIn{}, err
		}
	}
	var files []File
	libs := map[string]bool{}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range bins {
			if !yield(k) {
				return
			}
		}
	}) {
		// Src is the host path (its symlink followed when copied), so
		// redis-server keeps its name: the binary picks its mode from it.
		files = append(files, File{Path: "usr/bin/" + name, Src: bins[name]})
		deps, err := sharedLibraries(bins[name])
		if err != nil {
			return StandIn{}, err
		}
		for _, d := range deps {
			libs[d] = true
		}
	}
	for _, l := range slices.Sorted(func(yield func(string) bool) {
		for k := range libs {
			if !yield(k) {
				return
			}
		}
	}) {
		files = append(files, File{Path: strings.TrimPrefix(l, "/"), Src: l})
	}
	bb, err := busybox("bin", "redis-server", "redis-cli", "getent")
	if err != nil {
		return StandIn{}, err
	}
	files = append(files, bb...)
	files = append(files,
		File{Path: "usr/local/bin/docker-entrypoint.sh", Body: redisEntrypoint, Mode: 0o755},
		File{Path: "etc/passwd", Body: "root:x:0:0:root:/root:/bin/sh\n", Mode: 0o644},
		File{Path: "etc/group", Body: "root:x:0:\n", Mode: 0o644},
		File{Path: "etc/nsswitch.conf", Body: "hosts: files dns\n", Mode: 0o644},
		File{Path: "tmp", Dir: true, Mode: 0o1777},
		File{Path: "data", Dir: true, Mode: 0o755},
	)
	return StandIn{
		Name: "ra-standin/redis:" + string(m[1]),
		Dockerfile: `FROM scratch
ADD rootfs.tar /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
VOLUME /data
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
`,
		Files: files,
	}, nil
}

// sharedLibraries lists the libraries ldd resolves for bin, the dynamic
// loader included.
func sharedLibraries(bin string) ([]string, error) {
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", bin, err)
	}
	return parseLdd(string(out))
}

// parseLdd reads ldd's output: "name => /path (addr)" and "/loader (addr)"
// lines; the vDSO has no file. A library ldd cannot find is an error.
func parseLdd(out string) ([]string, error) {
	var libs []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "linux-vdso") || strings.Contains(line, "statically linked") {
			continue
		}
		if strings.Contains(line, "not found") {
			return nil, fmt.Errorf("ldd: %s", line)
		}
		p := line
		if _, after, ok := strings.Cut(line, "=> "); ok {
			p = after
		}
		p, _, _ = strings.Cut(p, " (")
		if !strings.HasPrefix(p, "/") {
			return nil, errors.New("ldd: unexpected line " + line)
		}
		libs = append(libs, p)
	}
	return libs, sc.Err()
}
