package ingest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/pkg/store"
)

// BatchAppender sends many requests' appends at once; *store.Store
// implements it.
type BatchAppender interface {
	// NewAppendCall prepares one request's append (in the caller's
	// goroutine).
	NewAppendCall(client string, limit store.Limit, ms []metric.Metric, idem store.Idempotency) *store.AppendCall
	// AppendMany sends calls and sets each one's Result or Err.
	AppendMany(ctx context.Context, calls []*store.AppendCall)
}

var _ BatchAppender = (*store.Store)(nil)

// Coalescer is an Appender that merges the appends of concurrent requests
// into one AppendMany: one round trip and one script run per partition
// carry dozens of requests instead of one each under load. Every request
// still gets its own limiter decision and its own entry ids, so a 201 still
// means Redis acknowledged that request's entries. INGEST_COALESCE=false
// uses the store directly instead.
//
// One flusher goroutine sends: while its call is in flight the next
// requests queue up, so each call carries a deeper batch. Batches are
// bounded in calls and arguments, so one call never grows without limit.
// Nothing is re-sent: a call that may have reached Redis is never sent
// again (the store re-sends only after NOSCRIPT).
type Coalescer struct {
	next  BatchAppender
	calls chan *call
	opts  CoalescerOptions

	// mu orders enqueueing against Close: once closed is set no call can
	// enter the queue, so Close fails every call it does not send.
	mu     sync.RWMutex
	closed bool
	stop   chan struct{}
	wg     sync.WaitGroup
}

// CoalescerOptions tune a Coalescer; zero values get defaults.
type CoalescerOptions struct {
	// MaxCalls bounds the requests of one AppendMany (default 256).
	MaxCalls int
	// MaxArgs bounds the metric values of one AppendMany (default 64k), so
	// no flush stalls behind megabytes of arguments.
	MaxArgs int
	// Timeout bounds one AppendMany (default 3s). It serves many requests,
	// so no single request's context may cancel it.
	Timeout time.Duration
}

// call is one request's place in the queue. Calls are recycled (callPool)
// once their request has taken the reply.
type call struct {
	ctx context.Context
	ac  *store.AppendCall
	// done receives one value when ac's outcome is set (buffered, so the
	// flusher never blocks and the channel can be reused).
	done chan struct{}
	// state is callQueued until the flusher sends the call (callSent) or
	// gives up on it unsent (callAbandoned), or its request does: which
	// of the two 503s a request whose context ends gets depends on it.
	state atomic.Int32
}

// The states of a call.
const (
	callQueued int32 = iota
	callSent
	callAbandoned
)

var callPool = sync.Pool{New: func() any { return &call{done: make(chan struct{}, 1)} }}

// Linger: when the first drain of the queue found few calls, the flusher
// yields its thread up to lingerYields times so the request goroutines that
// are about to enqueue can do so, and the call carries them too. A yield
// returns at once when nothing else is runnable, so an idle api does not
// wait. Measured in docs/benchmarks.md (Redis CPU per request).
const (
	lingerYields = 2
	lingerCalls  = 32
)

// errClosed is returned for appends after Close.
var errClosed = errors.New("ingest coalescer closed")

// NewCoalescer starts the flusher over next; Close stops it.
func NewCoalescer(next BatchAppender, opts CoalescerOptions) *Coalescer {
	if opts.MaxCalls <= 0 {
		opts.MaxCalls = 256
	}
	if opts.MaxArgs <= 0 {
		opts.MaxArgs = 64 * 1024
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 3 * time.Second
	}
	c := &Coalescer{next: next, opts: opts, calls: make(chan *call, opts.MaxCalls), stop: make(chan struct{})}
	c.wg.Add(1)
	go c.flushLoop()
	return c
}

// Append queues the request for the next AppendMany and waits for its
// outcome or its context. A context that ends before the call is sent
// takes it out of the queue (store.ErrUnavailable: nothing was sent); one
// that ends while the call is in flight leaves the outcome unknown
// (store.ErrOutcomeUnknown), like any timed-out write.
func (c *Coalescer) Append(ctx context.Context, client string, limit store.Limit, ms []metric.Metric, idem store.Idempotency) (store.AppendResult, error) {
	cl := callPool.Get().(*call)
	cl.ctx, cl.ac = ctx, c.next.NewAppendCall(client, limit, ms, idem)
	cl.state.Store(callQueued)
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return store.AppendResult{}, fmt.Errorf("%w: %w", store.ErrUnavailable, errClosed)
	}
	select {
	case c.calls <- cl:
	case <-ctx.Done():
		c.mu.RUnlock()
		return store.AppendResult{}, fmt.Errorf("%w: %w", store.ErrUnavailable, ctx.Err())
	}
	c.mu.RUnlock()
	select {
	case <-cl.done:
		res, err := cl.ac.Result, cl.ac.Err
		cl.ac.Release()
		cl.ctx, cl.ac = nil, nil
		callPool.Put(cl)
		return res, err
	case <-ctx.Done():
		// The call may still be in a batch being sent: leave it to the
		// garbage collector rather than recycle it.
		if cl.state.CompareAndSwap(callQueued, callAbandoned) || cl.state.Load() == callAbandoned {
			return store.AppendResult{}, fmt.Errorf("%w: not sent: %w", store.ErrUnavailable, ctx.Err())
		}
		return store.AppendResult{}, fmt.Errorf("%w: the request ended while its append was in flight: %w", store.ErrOutcomeUnknown, ctx.Err())
	}
}

// Close stops the flusher; appends still queued fail. Calling it again
// does nothing. Close after the HTTP server has drained, so in-flight
// requests still get answers.
func (c *Coalescer) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.mu.Unlock()
	close(c.stop)
	c.wg.Wait()
	for {
		select {
		case cl := <-c.calls:
			if cl.state.CompareAndSwap(callQueued, callAbandoned) {
				cl.ac.Err = fmt.Errorf("%w: %w", store.ErrUnavailable, errClosed)
				cl.done <- struct{}{}
			}
		default:
			return
		}
	}
}

func (c *Coalescer) flushLoop() {
	defer c.wg.Done()
	batch := make([]*call, 0, c.opts.MaxCalls)
	for {
		batch = batch[:0]
		select {
		case cl := <-c.calls:
			batch = append(batch, cl)
		case <-c.stop:
			return
		}
		args := batch[0].ac.Values()
		for yields := 0; ; yields++ {
			batch, args = c.drain(batch, args)
			if yields == lingerYields || len(batch) >= lingerCalls || len(batch) == c.opts.MaxCalls || args >= c.opts.MaxArgs {
				break
			}
			runtime.Gosched()
		}
		c.flush(batch)
	}
}

// drain adds queued calls to batch while it has room.
func (c *Coalescer) drain(batch []*call, args int) ([]*call, int) {
	for len(batch) < c.opts.MaxCalls && args < c.opts.MaxArgs {
		select {
		case cl := <-c.calls:
			batch = append(batch, cl)
			args += cl.ac.Values()
		default:
			return batch, args
		}
	}
	return batch, args
}

func (c *Coalescer) flush(batch []*call) {
	send := make([]*store.AppendCall, 0, len(batch))
	live := batch[:0:0]
	for _, cl := range batch {
		if err := cl.ctx.Err(); err != nil {
			// The client gave up before anything was sent: not sending is safe.
			if cl.state.CompareAndSwap(callQueued, callAbandoned) {
				cl.ac.Err = fmt.Errorf("%w: %w", store.ErrUnavailable, err)
				cl.done <- struct{}{}
			}
			continue
		}
		if !cl.state.CompareAndSwap(callQueued, callSent) {
			continue // its request gave up on it first
		}
		send = append(send, cl.ac)
		live = append(live, cl)
	}
	if len(send) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	c.next.AppendMany(ctx, send)
	for _, cl := range live {
		cl.done <- struct{}{}
	}
}

// Queued is the number of requests waiting for the next AppendMany.
func (c *Coalescer) Queued() int { return len(c.calls) }
