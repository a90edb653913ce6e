// Package live serves GET /api/metrics/series/stream: a Server-Sent Events
// stream that pushes a type's current series over a window ending now, with
// its all-time summary, every Options.Interval (2s).
//
//	GET /api/metrics/series/stream?type=cpu_usage&window=1h&step=1m
//	200 text/event-stream
//	    event: update
//	    data: {"series":{...GET /api/metrics/series body...},"summary":{...summary body...}|null}
//	    : heartbeat                                  (every Options.Heartbeat)
//	    event: problem  data: {problem}              (a read failed; the stream goes on)
//	400 problem naming the parameter at fault (as the series endpoint; from/to are refused)
//	503 problem too-many-streams + Retry-After    (Options.MaxStreams streams are open)
//
// Why it reads fresh: the cached endpoints keep an answer CACHE_TTL (60s),
// so a page polling them would show a new metric up to a minute late.
//
// Why the load is shared: all streams of one (type, window, step) are fed
// by one goroutine with one ticker, which reads the store once per tick and
// hands the same bytes to every subscriber, so N open dashboards cost one
// read per tick, not N. A subscriber that joins gets the last answer at
// once; a slow one gets only the newest (older ones are dropped, never
// queued). The feed stops when its last subscriber leaves.
//
// Bounds: a cap on concurrent streams (MaxStreams, SSE_MAX_STREAMS), a
// heartbeat comment so proxies and the browser see a live connection, a
// write deadline per event so a stuck client cannot hold a goroutine, and
// Close, which the api calls on shutdown: it ends every stream, so the HTTP
// server's graceful drain does not wait on them.
package live

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/services/api/internal/cache"
	"github.com/resilientanalytics/ra/services/api/internal/fail"
	"github.com/resilientanalytics/ra/services/api/internal/window"
)

// Defaults of Options.
const (
	DefaultMaxStreams = 100
	DefaultInterval   = 2 * time.Second
	DefaultHeartbeat  = 15 * time.Second
	DefaultTimeout    = 2 * time.Second
)

// RetryAfter is the Retry-After (seconds) of a 503 past the cap.
const RetryAfter = 5

// writeTimeout bounds writing one event to a client.
const writeTimeout = 10 * time.Second

// Source reads the current answers from the store, bypassing any cache.
// Both return cache.ErrNotFound for a type that was never aggregated.
type Source interface {
	// Series is the encoded series body of q.
	Series(ctx context.Context, q window.Query) ([]byte, error)
	// Summary is the encoded all-time summary of typ.
	Summary(ctx context.Context, typ string) ([]byte, error)
}

// Funcs adapts two functions to Source.
type Funcs struct {
	SeriesFunc  func(ctx context.Context, q window.Query) ([]byte, error)
	SummaryFunc func(ctx context.Context, typ string) ([]byte, error)
}

// Series calls SeriesFunc.
func (f Funcs) Series(ctx context.Context, q window.Query) ([]byte, error) {
	return f.SeriesFunc(ctx, q)
}

// Summary calls SummaryFunc.
func (f Funcs) Summary(ctx context.Context, typ string) ([]byte, error) {
	return f.SummaryFunc(ctx, typ)
}

// Options configure a Hub.
type Options struct {
	// MaxStreams bounds the concurrent streams (SSE_MAX_STREAMS, default 100).
	MaxStreams int
	// Interval is the time between two reads of a feed (default 2s).
	Interval time.Duration
	// Heartbeat is the time between two heartbeat comments (default 15s).
	Heartbeat time.Duration
	// Timeout bounds one read of the store (default 2s).
	Timeout time.Duration
	// Retention is BUCKET_RETENTION, the longest window.
	Retention time.Duration
	// Logger receives read failures (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Hub serves the streams and owns their feeds.
type Hub struct {
	src    Source
	opts   Options
	ctx    context.Context
	cancel context.CancelFunc
	open   atomic.Int64
	wg     sync.WaitGroup

	mu    sync.Mutex
	feeds map[string]*feed

	// ticks makes a feed's ticker; tests replace it to tick by hand.
	ticks func(d time.Duration) (<-chan time.Time, func())
}

var _ http.Handler = (*Hub)(nil)

// New returns a Hub reading src.
func New(src Source, opts Options) (*Hub, error) {
	if src == nil {
		return nil, errors.New("live: nil source")
	}
	if opts.Retention <= 0 {
		return nil, fmt.Errorf("live: Options.Retention must be > 0, got %s", opts.Retention)
	}
	if opts.MaxStreams <= 0 {
		opts.MaxStreams = DefaultMaxStreams
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Hub{src: src, opts: opts, ctx: ctx, cancel: cancel, feeds: map[string]*feed{},
		ticks: func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(d)
			return t.C, t.Stop
		}}, nil
}

// Open is the number of streams open now.
func (h *Hub) Open() int { return int(h.open.Load()) }

// Close ends every stream and stops every feed; streams asked for later
// get a 503. It returns when the feeds have stopped.
func (h *Hub) Close() {
	h.cancel()
	h.wg.Wait()
}

// ServeHTTP answers GET /api/metrics/series/stream.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	vals := r.URL.Query()
	if vals.Has("from") || vals.Has("to") {
		badRequest(w, r, []metric.FieldError{{Field: "window",
			Message: "is required: a stream follows a window ending now, so from and to cannot be given"}})
		return
	}
	if !vals.Has("window") {
		badRequest(w, r, []metric.FieldError{{Field: "window", Message: "is required, e.g. 15m, 1h, 24h or 168h"}})
		return
	}
	q, errs := window.ParseSeries(vals, h.opts.Now(), window.Limits{Retention: h.opts.Retention})
	if len(errs) > 0 {
		badRequest(w, r, errs)
		return
	}
	span, _ := time.ParseDuration(vals.Get("window")) // ParseSeries accepted it
	if h.ctx.Err() != nil {
		unavailable(w, r, "service-unavailable", "Service unavailable", "the api is shutting down")
		return
	}
	if h.open.Add(1) > int64(h.opts.MaxStreams) {
		h.open.Add(-1)
		unavailable(w, r, "too-many-streams", "Too many live streams", "the api serves at most "+strconv.Itoa(h.opts.MaxStreams)+
			" live streams (SSE_MAX_STREAMS); retry later or poll GET /api/metrics/series")
		return
	}
	defer h.open.Add(-1)

	sub, leave := h.join(spec{typ: q.Type, span: span, step: q.Step})
	defer leave()

	rc := http.NewResponseController(w)
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	// The retry hint is for EventSource clients; ours reconnect on their own.
	if !h.write(w, rc, []byte("retry: 3000\n\n")) {
		return
	}
	beat := time.NewTicker(h.opts.Heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-h.ctx.Done():
			_ = h.write(w, rc, []byte("event: shutdown\ndata: {}\n\n"))
			return
		case <-beat.C:
			if !h.write(w, rc, []byte(": heartbeat\n\n")) {
				return
			}
		case ev := <-sub:
			if !h.write(w, rc, ev) {
				return
			}
		}
	}
}

// write sends b under a write deadline (which also lifts the server's
// WriteTimeout, meant for ordinary responses) and flushes it.
func (h *Hub) write(w http.ResponseWriter, rc *http.ResponseController, b []byte) bool {
	_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := w.Write(b); err != nil {
		return false
	}
	return rc.Flush() == nil
}

// spec names a feed: the streams it feeds asked for the same answer.
type spec struct {
	typ  string
	span time.Duration
	step time.Duration
}

func (s spec) key() string {
	return s.typ + "|" + strconv.FormatInt(int64(s.span), 10) + "|" + strconv.FormatInt(int64(s.step), 10)
}

// feed is one spec's reader and its subscribers.
type feed struct {
	spec   spec
	cancel context.CancelFunc
	subs   map[chan []byte]struct{}
	last   []byte // the last event sent, for subscribers that join
}

// join subscribes to spec's feed, starting it if it is the first
// subscriber. leave unsubscribes and stops the feed after the last one.
func (h *Hub) join(s spec) (<-chan []byte, func()) {
	ch := make(chan []byte, 1)
	h.mu.Lock()
	defer h.mu.Unlock()
	f, ok := h.feeds[s.key()]
	if !ok {
		ctx, cancel := context.WithCancel(h.ctx)
		f = &feed{spec: s, cancel: cancel, subs: map[chan []byte]struct{}{}}
		h.feeds[s.key()] = f
		h.wg.Go(func() { h.run(ctx, f) })
	}
	f.subs[ch] = struct{}{}
	if f.last != nil {
		ch <- f.last
	}
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(f.subs, ch)
		if len(f.subs) == 0 && h.feeds[s.key()] == f {
			delete(h.feeds, s.key())
			f.cancel()
		}
	}
}

// run reads f's answer now and on every tick and hands it to f's
// subscribers, until ctx ends.
func (h *Hub) run(ctx context.Context, f *feed) {
	tick, stop := h.ticks(h.opts.Interval)
	defer stop()
	for {
		ev := h.load(ctx, f.spec)
		if ctx.Err() != nil {
			return
		}
		h.mu.Lock()
		f.last = ev
		for ch := range f.subs {
			select { // keep only the newest event for a slow subscriber
			case <-ch:
			default:
			}
			ch <- ev
		}
		h.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
	}
}

// update is the data of an update event.
type update struct {
	Series  json.RawMessage `json:"series"`
	Summary json.RawMessage `json:"summary"`
}

// load reads one answer and encodes it as an event: an update, or a
// problem when the read failed.
func (h *Hub) load(feedCtx context.Context, s spec) []byte {
	ctx, cancel := context.WithTimeout(feedCtx, h.opts.Timeout)
	defer cancel()
	q, errs := window.ParseSeries(map[string][]string{"type": {s.typ}, "window": {s.span.String()},
		"step": {s.step.String()}}, h.opts.Now(), window.Limits{Retention: h.opts.Retention})
	if len(errs) > 0 { // cannot happen: the same values passed in ServeHTTP
		return event("problem", fail.Errorf(fail.Internal, "the window could not be computed").Problem())
	}
	series, err := h.src.Series(ctx, q)
	if err == nil {
		var sum []byte
		sum, err = h.src.Summary(ctx, s.typ)
		if errors.Is(err, cache.ErrNotFound) {
			sum, err = []byte("null"), nil // buckets written, summary not yet: rare, not an error
		}
		if err == nil {
			return event("update", update{Series: series, Summary: sum})
		}
	}
	switch {
	case errors.Is(err, cache.ErrNotFound):
		return event("problem", fail.Errorf(fail.NotFound, "no metric of type %s has been aggregated yet", strconv.Quote(s.typ)).Problem())
	case feedCtx.Err() != nil:
		return nil // the feed stopped: nobody reads it
	}
	// Through the api's one mapping: a corrupt type is summary-corrupt
	// (retrying cannot help); any other failure service-unavailable, and
	// the stream retries.
	fe := fail.Classify(nil, err)
	if fe.Code != fail.Corrupt {
		fe = &fail.Error{Code: fail.Unavailable, Err: err,
			Detail: "the metrics store is unavailable; the stream retries every " + h.opts.Interval.String()}
	}
	h.opts.Logger.WarnContext(ctx, "live read failed", "type", s.typ, "err", err)
	return event("problem", fe.Problem())
}

func event(name string, v any) []byte {
	data, _ := json.Marshal(v)
	var b bytes.Buffer
	b.Grow(len(name) + len(data) + 16)
	b.WriteString("event: ")
	b.WriteString(name)
	b.WriteString("\ndata: ")
	b.Write(data) // JSON has no raw newlines, so one data line suffices
	b.WriteString("\n\n")
	return b.Bytes()
}

func badRequest(w http.ResponseWriter, r *http.Request, errs []metric.FieldError) {
	fail.Write(w, r, nil, &fail.Error{Code: fail.Invalid, Detail: "query parameter " + errs[0].Field + " " + errs[0].Message, Fields: errs})
}

func unavailable(w http.ResponseWriter, r *http.Request, kind, title, detail string) {
	fail.Write(w, r, nil, &fail.Error{Code: fail.Unavailable, Kind: kind, Title: title, Detail: detail, RetryAfter: RetryAfter})
}
