package middleware

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/transport"
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
			t := &tracedRequest{c: c, next: next}
			wrap(t).ServeHTTP(w, req)
			return nil
		}
	}, nil
}

// tracedRequest runs the rest of the Echo chain inside otelhttp's handler.
type tracedRequest struct {
	c    echo.Context
	next echo.HandlerFunc
}

func (t *tracedRequest) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := t.c
	// otelhttp's writer counts the status and the bytes written, and the
	// request carries the span.
	c.Response().Writer = w
	c.SetRequest(r)
	defer func() {
		// A Recover outside Trace answers after otelhttp ended the span:
		// record the panic now, and let it go on.
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				span := trace.SpanFromContext(r.Context())
				span.SetAttributes(attribute.Int("http.response.status_code", http.StatusInternalServerError), attribute.String("error.type", "panic"))
				span.SetStatus(codes.Error, "panic")
			}
			panic(p)
		}
	}()
	err := t.next(c)
	if err == nil {
		return
	}
	c.Error(err)
	span := trace.SpanFromContext(r.Context())
	if span.IsRecording() && c.Response().Status >= http.StatusInternalServerError {
		span.SetAttributes(attribute.String("error.type", errorType(err)))
		span.AddEvent("exception", trace.WithAttributes(
			attribute.String("exception.type", fmt.Sprintf("%T", err)),
			attribute.String("exception.message", redactedMessage(err))))
	}
}

// redactedMessage is err's text with the URL of the *url.Error it wraps (an
// http.Client error names the full URL, query values included) redacted.
func redactedMessage(err error) string {
	msg := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			msg = strings.ReplaceAll(msg, ue.URL, transport.RedactURL(u))
		} else {
			msg = strings.ReplaceAll(msg, ue.URL, "REDACTED")
		}
	}
	return msg
}

// errorType names an error for error.type in the words telltale uses
// elsewhere: an error's own ErrorType (as transport's errors have), then the
// deadline kinds, then the Go type of the innermost cause an *echo.HTTPError
// wraps.
func errorType(err error) string {
	var typed interface{ ErrorType() string }
	switch {
	case errors.As(err, &typed):
		return typed.ErrorType()
	case errors.Is(err, context.DeadlineExceeded):
		return string(transport.KindDeadlineExceeded)
	case errors.Is(err, context.Canceled):
		return string(transport.KindCanceled)
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
	k := spanNameKey{method: standardMethod(r.Method), route: r.Pattern}
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
