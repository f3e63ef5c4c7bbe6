package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	ttmw "github.com/telltale-go/telltale/middleware"
)

// Fault is a behaviour an upstream can be switched to.
type Fault string

// The faults an upstream can be switched to.
const (
	// Healthy answers at once with a small JSON document.
	Healthy Fault = "healthy"
	// Slow waits [Config.SlowDelay] before answering.
	Slow Fault = "slow"
	// Dead closes the listener and every connection: callers get
	// "connection refused".
	Dead Fault = "dead"
	// BlackHole accepts connections and reads requests but never answers,
	// until the fault is switched off.
	BlackHole Fault = "blackhole"
	// Trickle sends the headers at once, then the body a few bytes at a time.
	Trickle Fault = "trickle"
	// Huge answers with a body of [Config.HugeBytes].
	Huge Fault = "huge"
	// Error answers 503 Service Unavailable with a small JSON error.
	Error Fault = "error"
)

// Faults lists every [Fault], healthy first.
var Faults = []Fault{Healthy, Slow, Dead, BlackHole, Trickle, Huge, Error}

// ErrUnknownFault is returned by [Server.SetFault] for a fault not in [Faults].
var ErrUnknownFault = errors.New("upstream: unknown fault")

// Config tunes the faults. The zero value uses the defaults noted per field.
type Config struct {
	// SlowDelay is how long [Slow] waits before the headers (default 400ms).
	SlowDelay time.Duration
	// TrickleChunk is how many body bytes [Trickle] sends per tick
	// (default 16).
	TrickleChunk int
	// TrickleInterval is the pause between two [Trickle] chunks
	// (default 100ms; with the default document of about 1.7 kB the body takes
	// about 10.5s).
	TrickleInterval time.Duration
	// HugeBytes is the approximate body size of [Huge] (default 4 MiB).
	HugeBytes int
	// Items is how many items a normal document holds (default 20).
	Items int

	// TracerProvider returns the tracer provider of the upstream named
	// service, which traces its requests with telltale's middleware; nil,
	// or a nil provider, means the global one. The caller owns the
	// providers: it flushes them and shuts them down.
	TracerProvider func(service string) (trace.TracerProvider, error)
	// Timeout is the deadline of a request whose caller propagated none in
	// Connect-Timeout-Ms (default [DefaultTimeout]); a caller's deadline is
	// taken as it comes, up to Timeout.
	Timeout time.Duration
	// SlowRequest is the upstream's own slow threshold: a request still
	// running when it passes is an anomaly of the upstream, exported in its
	// caller's trace (default [DefaultSlowRequest]).
	SlowRequest time.Duration
	// Logger receives telltale's warnings; nil means slog.Default().
	Logger *slog.Logger
}

// DefaultTimeout is the deadline of a request whose caller propagated
// none: longer than the outages the demo runs (the load's sending time
// plus 2.5 s: 7.5 s by default), so that the naive gateways, which
// propagate no deadline, wait for a black hole as long as the outage
// lasts, as in the incident.
const DefaultTimeout = time.Minute

// DefaultSlowRequest is the upstream's own slow threshold: below [Slow]'s
// 400 ms, so that a slow answer is an anomaly on both sides of the call.
const DefaultSlowRequest = 300 * time.Millisecond

func (c Config) withDefaults() Config {
	if c.SlowDelay <= 0 {
		c.SlowDelay = 400 * time.Millisecond
	}
	if c.TrickleChunk <= 0 {
		c.TrickleChunk = 16
	}
	if c.TrickleInterval <= 0 {
		c.TrickleInterval = 100 * time.Millisecond
	}
	if c.HugeBytes <= 0 {
		c.HugeBytes = 4 << 20
	}
	if c.Items <= 0 {
		c.Items = 20
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.SlowRequest <= 0 {
		c.SlowRequest = DefaultSlowRequest
	}
	return c
}

// Document is the JSON body every upstream answers with.
type Document struct {
	// Service is the name of the upstream that produced the document.
	Service string `json:"service"`
	// Items is the payload.
	Items []Item `json:"items"`
}

// Item is one entry of a [Document].
type Item struct {
	// ID numbers the item within its document.
	ID int `json:"id"`
	// Title is filler text.
	Title string `json:"title"`
}

// TotalCountHeader carries the number of items of the document; the demo's
// leaking handler reads only this header and never touches the body.
const TotalCountHeader = "X-Total-Count"

// ItemsPath is the path every upstream serves its [Document] on.
const ItemsPath = "/items"

// Server is one upstream service. Its address stays the same across faults,
// including [Dead], so callers keep calling the same URL.
type Server struct {
	name string
	cfg  Config
	addr string
	app  http.Handler // the Echo app, the same across faults

	mu      sync.Mutex
	fault   Fault
	srv     *http.Server
	changed chan struct{} // closed, then replaced, on every fault change
	closed  bool

	docOnce  sync.Once
	doc      []byte // the normal document, encoded once
	hugeOnce sync.Once
	huge     []byte // the huge document, encoded once
	items    int
	hugeN    int

	open     atomic.Int64 // connections currently open to this server
	accepted atomic.Int64 // connections accepted since start
	serving  sync.WaitGroup
}

// Start listens on an ephemeral port of 127.0.0.1 and serves healthy
// answers, as the service name: an Echo app traced by telltale (its
// server span named "GET /items", in its caller's trace), that takes its
// caller's deadline from Connect-Timeout-Ms, reports its own slow requests
// and accounts for leaks, as a second telltale service behind the gateway.
func Start(name string, cfg Config) (*Server, error) {
	s := &Server{
		name:    name,
		cfg:     cfg.withDefaults(),
		fault:   Healthy,
		changed: make(chan struct{}),
	}
	var tp trace.TracerProvider
	if cfg.TracerProvider != nil {
		var err error
		if tp, err = cfg.TracerProvider(name); err != nil {
			return nil, fmt.Errorf("upstream: tracer provider of %s: %w", name, err)
		}
	}
	app, err := s.newApp(tp)
	if err != nil {
		return nil, err
	}
	s.app = app
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("upstream: listen for %s: %w", name, err)
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	return s, nil
}

// connContextKey keys, in the Echo context, the request's context as it
// was before the deadline: it ends only when the caller goes away.
const connContextKey = "upstream.conn"

// newApp builds the Echo app: telltale's Trace, Deadline and Leaks, as a
// service behind a telltale gateway sets them up.
func (s *Server) newApp(tp trace.TracerProvider) (http.Handler, error) {
	traced, err := ttmw.TraceConfig{
		TracerProvider: tp,
		// The runner sets no global propagator: the caller's traceparent is
		// read with W3C trace context, as the gateways send it.
		Propagators: propagation.TraceContext{},
		Slow:        s.cfg.SlowRequest,
		Logger:      s.cfg.Logger,
	}.ToMiddleware()
	if err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	deadline, err := ttmw.DeadlineConfig{
		Timeout: s.cfg.Timeout,
		// The gateway's transport sends how long it will wait
		// (WithDeadlinePropagation): the upstream stops when it does.
		TrustHeader: true,
	}.ToMiddleware()
	if err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.Use(traced)
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Set(connContextKey, c.Request().Context())
			return next(c)
		}
	})
	e.Use(deadline)
	e.Use(ttmw.Leaks())
	e.GET(ItemsPath, s.serveItems)
	return e, nil
}

// Name returns the service name given to [Start].
func (s *Server) Name() string { return s.name }

// URL returns the base URL of the server, for example http://127.0.0.1:40123.
func (s *Server) URL() string { return "http://" + s.addr }

// Fault returns the current fault.
func (s *Server) Fault() Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fault
}

// OpenConns returns how many client connections are open to the server now.
func (s *Server) OpenConns() int64 { return s.open.Load() }

// AcceptedConns returns how many connections the server accepted since
// [Start]; a client that reuses its connections keeps this number low.
func (s *Server) AcceptedConns() int64 { return s.accepted.Load() }

// SetFault switches the server to f. Leaving [BlackHole] releases the requests
// it holds (they get a normal answer, as when a stuck service comes back);
// entering [Dead] closes every connection and the listener; leaving it
// listens again on the same address.
func (s *Server) SetFault(f Fault) error {
	known := false
	for _, k := range Faults {
		known = known || k == f
	}
	if !known {
		return fmt.Errorf("%w %q", ErrUnknownFault, f)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("upstream: %s is closed", s.name)
	}
	if f == s.fault {
		return nil
	}
	prev := s.fault
	s.fault = f
	close(s.changed)
	s.changed = make(chan struct{})
	switch {
	case f == Dead:
		srv := s.srv
		s.srv = nil
		_ = srv.Close()
	case prev == Dead:
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			s.fault = Dead
			return fmt.Errorf("upstream: %s back from dead: %w", s.name, err)
		}
		s.serve(ln)
	}
	return nil
}

// Close stops the server, releases held requests and waits for its serving
// goroutine to end.
func (s *Server) Close() error {
	s.mu.Lock()
	var err error
	if !s.closed {
		s.closed = true
		close(s.changed)
		s.changed = make(chan struct{})
		if s.srv != nil {
			err = s.srv.Close()
			s.srv = nil
		}
	}
	s.mu.Unlock()
	s.serving.Wait()
	return err
}

// serve starts an http.Server on ln. s.mu is held or s is not yet shared.
func (s *Server) serve(ln net.Listener) {
	srv := &http.Server{
		Handler:           s.app,
		ReadHeaderTimeout: 5 * time.Second,
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				s.open.Add(1)
				s.accepted.Add(1)
			case http.StateClosed, http.StateHijacked:
				s.open.Add(-1)
			}
		},
	}
	s.srv = srv
	s.serving.Add(1)
	go func() {
		defer s.serving.Done()
		_ = srv.Serve(ln)
	}()
}

// state returns the current fault and the channel closed when it changes.
func (s *Server) state() (Fault, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fault, s.changed
}

// serveItems serves [ItemsPath] as the current fault says. A fault that holds
// the request (slow, black hole) lets go of it when its context ends — the
// caller went away, or the deadline it propagated passed —, and the
// deadline middleware answers 504 (or 499). A trickling body keeps
// trickling until the caller goes away, as a slow network does.
func (s *Server) serveItems(c echo.Context) error {
	fault, changed := s.state()
	ctx := c.Request().Context()
	switch fault {
	case Slow:
		if !wait(ctx, changed, s.cfg.SlowDelay) {
			return fmt.Errorf("upstream: %s, slow: %w", s.name, ctx.Err())
		}
	case BlackHole:
		select {
		case <-ctx.Done():
			return fmt.Errorf("upstream: %s, black hole: %w", s.name, ctx.Err())
		case <-changed:
		}
	case Error:
		return echo.NewHTTPError(http.StatusServiceUnavailable, s.name+" is unavailable")
	}

	body, items := s.document(fault == Huge)
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	w.Header().Set(TotalCountHeader, strconv.Itoa(items))
	// Stream the body like a real service that encodes as it goes: the
	// headers are flushed first, so the body is chunked and its end arrives
	// separately, as it does in production.
	w.WriteHeader(http.StatusOK)
	w.Flush()
	if fault != Trickle {
		_, _ = w.Write(body)
		return nil
	}
	conn, _ := c.Get(connContextKey).(context.Context)
	if conn == nil {
		conn = ctx
	}
	for len(body) > 0 {
		n := min(s.cfg.TrickleChunk, len(body))
		if _, err := w.Write(body[:n]); err != nil {
			return nil
		}
		body = body[n:]
		w.Flush()
		if len(body) > 0 && !wait(conn, nil, s.cfg.TrickleInterval) {
			return nil
		}
	}
	return nil
}

// document returns the encoded body and its item count; both are built once.
func (s *Server) document(huge bool) ([]byte, int) {
	if huge {
		s.hugeOnce.Do(func() {
			// Each item encodes to about 90 bytes.
			s.hugeN = max(s.cfg.HugeBytes/90, 1)
			s.huge = encode(s.name, s.hugeN)
		})
		return s.huge, s.hugeN
	}
	s.docOnce.Do(func() {
		s.items = s.cfg.Items
		s.doc = encode(s.name, s.items)
	})
	return s.doc, s.items
}

func encode(service string, items int) []byte {
	doc := Document{Service: service, Items: make([]Item, items)}
	for i := range doc.Items {
		doc.Items[i] = Item{ID: i, Title: fmt.Sprintf("%s item %d: lorem ipsum dolor sit amet, consectetur adipiscing", service, i)}
	}
	body, err := json.Marshal(doc)
	if err != nil {
		panic(err) // cannot happen: the document holds only strings and ints
	}
	return append(body, '\n')
}

// wait sleeps for d; it returns false if ctx ends first. A change of fault
// (when changed is not nil) cuts the wait short.
func wait(ctx context.Context, changed <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-changed:
		return true
	case <-ctx.Done():
		return false
	}
}
