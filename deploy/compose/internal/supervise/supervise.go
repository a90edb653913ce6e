// Package supervise runs a service binary as a child process for `make run`
// and the deploy tests: its output goes line by line, prefixed with its
// name ("api | …"), into a writer shared with other children; Stop sends
// SIGTERM and kills at a deadline; the exit status is kept.
//
// Children run in their own process group, so a Ctrl-C in the terminal
// reaches only the supervisor, which then stops them in its own order
// (services first, Redis last). Unix only, like pkg/redisproc.
package supervise

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Options describe one child.
type Options struct {
	// Name prefixes every output line: "<Name> | ".
	Name string
	// Path is the binary; Args its arguments.
	Path string
	Args []string
	// Env is the child's complete environment ("K=V"); nil inherits ours.
	Env []string
	// Out receives the prefixed lines of stdout and stderr. Children that
	// share one Out must share one Output (see NewOutput).
	Out *Output
}

// Output serialises whole lines from several children into one writer.
type Output struct {
	mu sync.Mutex
	w  io.Writer
}

// NewOutput wraps w.
func NewOutput(w io.Writer) *Output { return &Output{w: w} }

// Printf writes one line of the supervisor's own (no trailing newline needed).
func (o *Output) Printf(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := fmt.Sprintf(format, args...)
	if len(s) == 0 || s[len(s)-1] != '\n' {
		s += "\n"
	}
	_, _ = io.WriteString(o.w, s)
}

// Prefixed returns a writer that emits each complete line as
// "<prefix><line>\n"; call Flush for a last line without newline.
func (o *Output) Prefixed(prefix string) *LineWriter {
	return &LineWriter{out: o, prefix: []byte(prefix)}
}

// LineWriter buffers partial lines; safe for concurrent use.
type LineWriter struct {
	out    *Output
	prefix []byte
	mu     sync.Mutex
	buf    []byte
}

// Write implements io.Writer.
func (l *LineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.emit(l.buf[:i])
		l.buf = l.buf[i+1:]
	}
	// A runaway line without newline is emitted in pieces, not buffered
	// forever.
	if len(l.buf) > 64<<10 {
		l.emit(l.buf)
		l.buf = nil
	}
	return len(p), nil
}

// Flush emits a trailing partial line.
func (l *LineWriter) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.emit(l.buf)
		l.buf = nil
	}
}

func (l *LineWriter) emit(line []byte) {
	line = bytes.TrimSuffix(line, []byte("\r"))
	l.out.mu.Lock()
	defer l.out.mu.Unlock()
	b := make([]byte, 0, len(l.prefix)+len(line)+1)
	b = append(append(append(b, l.prefix...), line...), '\n')
	_, _ = l.out.w.Write(b)
}

// Child is a running (or exited) child process.
type Child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // cmd.Wait's result, set before done is closed
}

// Start launches the child.
func Start(opts Options) (*Child, error) {
	if opts.Out == nil {
		opts.Out = NewOutput(io.Discard)
	}
	w := opts.Out.Prefixed(opts.Name + " | ")
	cmd := exec.Command(opts.Path, opts.Args...)
	cmd.Env = opts.Env
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Bound Wait if a grandchild keeps the output pipe open.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", opts.Name, err)
	}
	c := &Child{name: opts.Name, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		w.Flush()
		close(c.done)
	}()
	return c, nil
}

// Name is the child's name.
func (c *Child) Name() string { return c.name }

// Pid is the child's process id.
func (c *Child) Pid() int { return c.cmd.Process.Pid }

// Done is closed once the child has exited and its output is flushed.
func (c *Child) Done() <-chan struct{} { return c.done }

// Err is the exit error (nil for exit status 0); valid after Done.
func (c *Child) Err() error {
	<-c.done
	return c.err
}

// ExitCode is the exit status, or -1 when a signal ended the child; it
// waits for Done.
func (c *Child) ExitCode() int {
	<-c.done
	return c.cmd.ProcessState.ExitCode()
}

// Signal sends sig to the child (a no-op once it has exited).
func (c *Child) Signal(sig os.Signal) error {
	select {
	case <-c.done:
		return nil
	default:
	}
	if err := c.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %s: %w", c.name, err)
	}
	return nil
}

// ErrKilled means the child did not exit within Stop's deadline.
var ErrKilled = errors.New("did not exit in time; killed")

// Stop sends SIGTERM and waits up to timeout, then SIGKILLs. It returns nil
// when the child exited with status 0, else why not.
func (c *Child) Stop(timeout time.Duration) error {
	if err := c.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	return c.wait(timeout)
}

// Kill ends the child and anything it started (its process group) at once.
func (c *Child) Kill() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	_ = c.Signal(syscall.SIGKILL)
	<-c.done
}

func (c *Child) wait(timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		c.Kill()
		return fmt.Errorf("%s: %w after %s", c.name, ErrKilled, timeout)
	}
	if c.err != nil {
		return fmt.Errorf("%s: %w", c.name, c.err)
	}
	return nil
}
