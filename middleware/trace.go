package middleware

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/internal/anomaly"
	"github.com/telltale-go/telltale/internal/errkind"
	"github.com/telltale-go/telltale/internal/redact"
	"github.com/telltale-go/telltale/vocab"
)

// TraceConfig configures [Trace].
type TraceConfig struct {
	// Skipper skips the middleware for a request: no span is started.
	// Defaults to never skipping. Echo's middleware.Skipper values fit.
	Skipper func(c echo.Context) bool

	// TracerProvider provides the tracer of the server spans. The global
	// provider is used when nil.
	TracerProvider trace.TracerProvider

	// MeterProvider provides otelhttp's server metrics
	// (http.server.request.duration, ...). The global provider is used when
	// nil.
	MeterProvider metric.MeterProvider

	// Propagators extract the caller's trace context from the request
	// headers. The global propagators are used when nil.
	Propagators propagation.TextMapPropagator

	// ServerName is the logical server name recorded as server.address. The
	// request's Host is used when empty.
	ServerName string
}

// Trace returns a middleware that starts a server span for every request,
// with the default [TraceConfig].
func Trace() echo.MiddlewareFunc {
	return TraceWithConfig(TraceConfig{})
}

// TraceWithConfig returns a [Trace] middleware with the given config. It
// panics if the config is invalid; use [TraceConfig.ToMiddleware] to get the
// error instead.
func TraceWithConfig(cfg TraceConfig) echo.MiddlewareFunc {
	return must(cfg.ToMiddleware())
}

// ToMiddleware validates the config and returns the [Trace] middleware.
//
// The span is otelhttp's server span, with its attributes and metrics; Echo's
// route template is given to otelhttp as the request's pattern, so the span
// is named "GET /users/:id" and carries http.route, as do the metrics. Unlike
// an otelhttp handler wrapped around the whole Echo instance, the middleware
// sees the error the handler returned: it hands it to Echo's HTTPErrorHandler
// (c.Error) while the span is still open, so that the span records the status
// the client really gets, and then returns nil, so that the error is handled
// exactly once. A 5xx error is recorded on the span as error.type and an
// exception event; 4xx errors are the client's, not the server's, and are
// not. Middleware that must see the handler's error (a logger) therefore goes
// inside Trace, and Trace should come first, after only Echo's Recover.
//
// When the head sampler drops a request, the middleware keeps what its span
// would have recorded, at the cost of two allocations, and exports it if the
// request turns out anomalous — a 5xx, a panic, a deadline answer, a client
// gone, an overrun, a leaked body, a failed or slow call, an orphaned
// goroutine — with the ids, times and attributes it would have had. That
// needs the tracer provider that package sampling builds.
func (cfg TraceConfig) ToMiddleware() (echo.MiddlewareFunc, error) {
	if cfg.Skipper == nil {
		cfg.Skipper = neverSkip
	}
	names := &spanNames{names: make(map[spanNameKey]string)}
	wrap := otelhttp.NewMiddleware("",
		otelhttp.WithTracerProvider(cfg.TracerProvider),
		otelhttp.WithMeterProvider(cfg.MeterProvider),
		otelhttp.WithPropagators(cfg.Propagators),
		otelhttp.WithServerName(cfg.ServerName),
		otelhttp.WithSpanNameFormatter(names.format),
	)
	tc := &traceConfig{TraceConfig: cfg, names: names}
	tc.replay.Init(cfg.TracerProvider, nil)
	// A tracedRequest and otelhttp's handler bound to it are reused from
	// request to request: two allocations less per request.
	tc.pool.New = func() any {
		t := &tracedRequest{cfg: tc}
		t.handler = wrap(t)
		return t
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if cfg.Skipper(c) {
				return next(c)
			}
			req := c.Request()
			res := c.Response()
			w := res.Writer
			pattern := req.Pattern
			// otelhttp names the span, and sets http.route, from the
			// request's pattern: give it Echo's route template.
			req.Pattern = c.Path()
			defer func() {
				req.Pattern = pattern
				res.Writer = w
				c.SetRequest(req)
			}()
			t := tc.pool.Get().(*tracedRequest)
			t.c, t.next, t.start = c, next, time.Now()
			t.handler.ServeHTTP(w, req)
			*t = tracedRequest{cfg: tc, handler: t.handler}
			tc.pool.Put(t)
			return nil
		}
	}, nil
}

// traceConfig is a TraceConfig ready to serve.
type traceConfig struct {
	TraceConfig
	names  *spanNames
	pool   sync.Pool                // of *tracedRequest
	replay anomaly.Replayer         // replays the spans of unsampled requests that went wrong
	fields atomic.Pointer[[]string] // the propagators' header names
}

// tracedRequest runs the rest of the Echo chain inside otelhttp's handler.
type tracedRequest struct {
	c       echo.Context
	next    echo.HandlerFunc
	cfg     *traceConfig
	handler http.Handler // otelhttp's, serving this tracedRequest
	start   time.Time
	u       *unsampled // when the head sampler dropped the request
}

func (t *tracedRequest) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := t.c
	span := trace.SpanFromContext(r.Context())
	if sc := span.SpanContext(); sc.IsValid() && !sc.IsSampled() && t.cfg.replay.Enabled() {
		t.u = newUnsampled(t.cfg, r, sc, t.start)
	}
	// otelhttp's writer counts the status and the bytes written, and the
	// request carries the span.
	c.Response().Writer = w
	c.SetRequest(r)
	defer func() {
		keepForm(c.Request(), r)
		// A Recover outside Trace answers after otelhttp ended the span:
		// record the panic now, and let it go on.
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				t.recordPanic(span)
			} else if t.u != nil {
				t.end(StatusClientClosedRequest) // the handler gave up on the response
			}
			panic(p)
		}
	}()
	err := t.next(c)
	if err != nil {
		// Echo's error handler answers with the request as Trace got it:
		// the contexts Deadline and Leaks made are over.
		restoreRequest(c, r)
		c.Error(err)
		if c.Response().Status >= http.StatusInternalServerError {
			rec := recorderOf(r.Context())
			typ := errorType(err)
			if t.u != nil {
				t.u.errType = typ
			}
			rec.setAttributes(semconv.ErrorTypeKey.String(typ))
			rec.addEvent(semconv.ExceptionEventName, time.Now(),
				semconv.ExceptionType(fmt.Sprintf("%T", err)),
				semconv.ExceptionMessage(redactedMessage(err)))
		}
	}
	if t.u != nil {
		t.end(c.Response().Status)
	}
}

func (t *tracedRequest) recordPanic(span trace.Span) {
	if span.IsRecording() {
		span.SetAttributes(semconv.HTTPResponseStatusCode(http.StatusInternalServerError), semconv.ErrorTypeKey.String(vocab.ErrorPanic))
		span.SetStatus(codes.Error, "panic")
	}
	if t.u != nil {
		t.u.panicked, t.u.errType = true, vocab.ErrorPanic
		t.u.SetAttributes(semconv.ErrorTypeKey.String(vocab.ErrorPanic))
		t.end(http.StatusInternalServerError)
	}
}

// redactedMessage is err's text with the URL of the *url.Error it wraps (an
// http.Client error names the full URL, query values included) redacted.
func redactedMessage(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return redact.Message(err.Error(), ue.URL)
	}
	return err.Error()
}

// errorType names an error for error.type in the words telltale uses
// elsewhere: an error's own ErrorType, then the kinds telltale classifies
// (a failed upstream call's, a deadline's), then the Go type of the
// innermost cause an *echo.HTTPError wraps.
func errorType(err error) string {
	var typed interface{ ErrorType() string }
	if errors.As(err, &typed) {
		return typed.ErrorType()
	}
	if kind := errkind.Of(err, nil); kind != "" {
		return kind
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		if he.Internal != nil {
			return errorType(he.Internal)
		}
		return fmt.Sprintf("http_%d", he.Code)
	}
	return fmt.Sprintf("%T", err)
}

// spanNames caches span names: one string per route and method, instead of
// one concatenation per request. Methods outside the standard ones are named
// "HTTP", as otelhttp does, so a client cannot grow the cache.
type spanNames struct {
	mu    sync.RWMutex
	names map[spanNameKey]string
}

type spanNameKey struct{ method, route string }

// maxSpanNames bounds the cache; past it names are built per request.
const maxSpanNames = 4096

func (s *spanNames) format(_ string, r *http.Request) string {
	return s.name(r.Method, r.Pattern)
}

func (s *spanNames) name(method, route string) string {
	k := spanNameKey{method: standardMethod(method), route: route}
	s.mu.RLock()
	name, ok := s.names[k]
	s.mu.RUnlock()
	if ok {
		return name
	}
	name = k.method
	if k.route != "" {
		name += " " + k.route
	}
	s.mu.Lock()
	if len(s.names) < maxSpanNames {
		s.names[k] = name
	}
	s.mu.Unlock()
	return name
}

func standardMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	switch u := strings.ToUpper(m); u {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return u
	}
	return "HTTP"
}
