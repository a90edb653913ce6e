// Package redisproc starts and controls a local redis-server process on a
// free loopback port. Tests use it (through redistest) to get a hermetic
// Redis they may kill and restart; `make run` and `make bench` use it to bring
// a Redis up on a machine that has none running.
package redisproc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// ErrNoBinary means no redis-server is on PATH.
var ErrNoBinary = errors.New("redis-server not found on PATH")

// Options configure a server.
type Options struct {
	// Dir holds the AOF and log; required.
	Dir string
	// AOF turns on appendonly, with appendfsync Fsync: a process that is
	// killed and restarted reloads every write Redis acknowledged.
	AOF bool
	// Fsync is the appendfsync policy when AOF is on: FsyncAlways (the
	// default, as compose runs it), FsyncEverysec or FsyncNo. Only a
	// benchmark or a test that compares them needs another than always.
	Fsync string
	// Port to bind on 127.0.0.1; 0 picks a free one.
	Port int
	// Args are extra redis-server arguments, e.g. "--maxmemory", "10mb".
	Args []string
}

// The appendfsync policies.
const (
	// FsyncAlways fsyncs the AOF before Redis replies to a write (in
	// practice once per event-loop pass, for all the writes it carried):
	// an acknowledged write survives a crash of Redis or of the host.
	FsyncAlways = "always"
	// FsyncEverysec fsyncs about once a second; Redis may acknowledge
	// writes that a kill of the process then loses (it postpones the AOF
	// write while a background fsync is pending but still replies).
	FsyncEverysec = "everysec"
	// FsyncNo leaves flushing to the kernel.
	FsyncNo = "no"
)

// Server is one redis-server process. Its methods are safe for concurrent use.
type Server struct {
	opts Options
	bin  string

	mu  sync.Mutex
	cmd *exec.Cmd
	// exited is closed when the current process has been reaped.
	exited chan struct{}
}

// Binary returns the path of redis-server.
func Binary() (string, error) {
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return "", ErrNoBinary
	}
	return p, nil
}

// FreePort asks the kernel for a free loopback TCP port.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Start launches redis-server and waits until it answers PING.
func Start(ctx context.Context, opts Options) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	if opts.Dir == "" {
		return nil, errors.New("redisproc: Options.Dir is required")
	}
	switch opts.Fsync {
	case "":
		opts.Fsync = FsyncAlways
	case FsyncAlways, FsyncEverysec, FsyncNo:
	default:
		return nil, fmt.Errorf("redisproc: Options.Fsync must be always, everysec or no, got %q", opts.Fsync)
	}
	if opts.Port == 0 {
		if opts.Port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	s := &Server{opts: opts, bin: bin}
	if err := s.launch(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Addr is host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.opts.Port) }

// URL is the redis:// URL of the server.
func (s *Server) URL() string { return "redis://" + s.Addr() }

// Dir is the data directory.
func (s *Server) Dir() string { return s.opts.Dir }

func (s *Server) args() []string {
	a := []string{
		"--port", strconv.Itoa(s.opts.Port),
		"--bind", "127.0.0.1",
		"--dir", s.opts.Dir,
		"--save", "",
		"--daemonize", "no",
		"--logfile", filepath.Join(s.opts.Dir, "redis.log"),
		"--maxmemory-policy", "noeviction",
	}
	if s.opts.AOF {
		a = append(a, "--appendonly", "yes", "--appendfsync", s.opts.Fsync)
	} else {
		a = append(a, "--appendonly", "no")
	}
	return append(a, s.opts.Args...)
}

func (s *Server) launch(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("redisproc: server already running")
	}
	cmd := exec.Command(s.bin, s.args()...)
	// Own process group: a Ctrl-C in a terminal reaches us, and we stop Redis
	// last, after the services that use it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ping(s.Addr()) == nil {
			return nil
		}
		select {
		case <-exited:
			s.cmd = nil
			log, _ := os.ReadFile(filepath.Join(s.opts.Dir, "redis.log"))
			return fmt.Errorf("redis-server exited at start: %s", tail(log, 600))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s did not answer PING within 10s", s.Addr())
		}
	}
}

// ping sends an inline PING and expects +PONG (or -LOADING while an AOF loads,
// which is not ready yet).
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if string(buf[:n]) != "+PONG\r\n" {
		return fmt.Errorf("not ready: %q", buf[:n])
	}
	return nil
}

func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(sig)
	// A paused process cannot act on SIGTERM until it runs again; SIGKILL
	// needs no help.
	_ = cmd.Process.Signal(syscall.SIGCONT)
	select {
	case <-exited:
		return nil
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("redis-server did not exit on %v within 10s; killed", sig)
	}
}

// Stop shuts Redis down gracefully (SIGTERM: it fsyncs the AOF first).
func (s *Server) Stop() error { return s.signal(syscall.SIGTERM) }

// Kill ends Redis at once (SIGKILL), as a crash would.
func (s *Server) Kill() error { return s.signal(syscall.SIGKILL) }

// Pause stops the process with SIGSTOP: the kernel still accepts
// connections and buffers what clients send, but Redis answers nothing
// until Resume. That is how a stalled Redis (a long fork, a swapped-out
// host, a stuck disk) looks to a client: its writes are sent, and then no
// reply comes.
func (s *Server) Pause() error { return s.sendRunning(syscall.SIGSTOP) }

// Resume continues a paused process (SIGCONT); it then runs what it
// received meanwhile and replies.
func (s *Server) Resume() error { return s.sendRunning(syscall.SIGCONT) }

func (s *Server) sendRunning(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return errors.New("redisproc: server is not running")
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("redisproc: send %v: %w", sig, err)
	}
	return nil
}

// Restart starts a stopped or killed server again on the same port and
// directory (so an AOF is reloaded).
func (s *Server) Restart(ctx context.Context) error { return s.launch(ctx) }

// Running reports whether the process is up.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
