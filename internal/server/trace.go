package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"

	"github.com/telltale-go/telltale/internal/anomaly"
	"github.com/telltale-go/telltale/internal/errkind"
	"github.com/telltale-go/telltale/internal/redact"
	"github.com/telltale-go/telltale/internal/spanname"
	"github.com/telltale-go/telltale/vocab"
)

// TraceConfig is what every adapter's TraceConfig becomes.
type TraceConfig struct {
	TracerProvider trace.TracerProvider // nil: the global provider
	MeterProvider  metric.MeterProvider // nil: the global provider
	Propagators    propagation.TextMapPropagator
	ServerName     string
	Logger         *slog.Logger // nil: slog.Default()

	// Slow is the slow threshold of every route without one in
	// SlowRoutes; zero checks none.
	Slow       time.Duration
	SlowRoutes map[string]time.Duration

	// Errors reads the framework's HTTP errors.
	Errors ErrorDecoder
}

// An ErrorDecoder reads a framework's HTTP error: its status, its message
// as a sentence, and the error it wraps. ok is false for other errors.
type ErrorDecoder func(err error) (status int, message string, cause error, ok bool)

// A Trace starts the server span of every request with otelhttp, named by
// its route template, records its status, error and anomalies, and
// replays the spans of an unsampled request that turns out anomalous.
type Trace struct {
	cfg    TraceConfig
	wrap   func(http.Handler) http.Handler
	names  spanname.Cache
	replay *anomaly.Replayer
	logger *slog.Logger
	late   sync.Once // the warning about ReportAnomaly after the request
}

// NewTrace validates cfg and returns its Trace.
func NewTrace(cfg TraceConfig) (*Trace, error) {
	if cfg.Slow < 0 {
		return nil, errors.New("Trace: Slow must not be negative")
	}
	routes := make(map[string]time.Duration, len(cfg.SlowRoutes))
	for route, d := range cfg.SlowRoutes {
		if d < 0 {
			return nil, fmt.Errorf("Trace: slow threshold of route %q must not be negative", route)
		}
		routes[route] = d
	}
	cfg.SlowRoutes = routes // a copy: the caller's map may change
	tp := cfg.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider() // delegates to whatever provider is set later
	}
	t := &Trace{cfg: cfg, logger: cfg.Logger, replay: anomaly.NewReplayer(cfg.Logger)}
	if t.logger == nil {
		t.logger = slog.Default()
	}
	t.wrap = otelhttp.NewMiddleware("",
		otelhttp.WithTracerProvider(tracerProvider{tp: tp, t: t}),
		otelhttp.WithMeterProvider(cfg.MeterProvider),
		otelhttp.WithPropagators(cfg.Propagators),
		otelhttp.WithServerName(cfg.ServerName),
		otelhttp.WithSpanNameFormatter(t.spanName),
	)
	return t, nil
}

type tracerProvider struct {
	embedded.TracerProvider
	tp trace.TracerProvider
	t  *Trace
}

func (p tracerProvider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return tracer{inner: p.tp.Tracer(name, opts...), t: p.t}
}

// spanName names the server span "METHOD route" by the route template
// otelhttp finds as the request's pattern, "METHOD" before a route is
// known (the span is renamed when it is).
func (t *Trace) spanName(_ string, r *http.Request) string {
	return t.names.Name(r.Method, routePath(r.Pattern))
}

// slowThreshold is the slow threshold of route.
func (t *Trace) slowThreshold(route string) time.Duration {
	if d, ok := t.cfg.SlowRoutes[route]; ok {
		return d
	}
	return t.cfg.Slow
}

// Serving is an adapter's part of one request: the rest of its chain.
type Serving interface {
	// Serve runs the rest of the chain with the writer and request
	// otelhttp made, and returns the status answered when the framework
	// knows it (0 otherwise: the status otelhttp saw written is used), the
	// route template when it was learnt only now (Go's ServeMux sets it on
	// the request it was given), and the error the handler returned, if
	// the framework has errors. The error of a 5xx answer is recorded on
	// the span when it ends.
	Serve(w http.ResponseWriter, r *http.Request) (status int, route string, err error)
}

// A Handle serves requests through a Trace, with an adapter's Serving for
// the rest of each request's chain. Adapters keep one in each of their
// pooled per-request structs: otelhttp's handler is bound to it once.
type Handle struct {
	handler http.Handler
	in      *inner
}

// NewHandle returns a Handle whose requests s serves.
func (t *Trace) NewHandle(s Serving) Handle {
	in := &inner{t: t, s: s}
	return Handle{handler: t.wrap(in), in: in}
}

// ServeRoute serves r through otelhttp. route is the route template if
// known now (Echo's c.Path()), "" if it will be learnt from the request's
// pattern once a mux has matched it.
func (h Handle) ServeRoute(w http.ResponseWriter, r *http.Request, route string) {
	if route != "" {
		// otelhttp names the span, and sets http.route, from the
		// request's pattern; it serves a copy, which the handler gets.
		pattern := r.Pattern
		r.Pattern = route
		defer func() { r.Pattern = pattern }()
	}
	h.handler.ServeHTTP(w, r)
}

// inner runs inside otelhttp's handler, where the span exists.
type inner struct {
	t *Trace
	s Serving
}

func (in *inner) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := stateFrom(r.Context())
	if st == nil { // nothing records
		_, route, _ := in.s.Serve(w, r)
		NoteRoute(r.Context(), route)
		return
	}
	st.route, st.routeAttr = r.Pattern, r.Pattern != ""
	st.otel.method = r.Method
	st.SetRoute(st.route)
	if st.Replayable() {
		st.otel.keep(r, in.t.cfg.ServerName)
	}
	defer func() {
		if p := recover(); p != nil {
			// A recover outside Trace answers after otelhttp ended the
			// span: record the panic now, and let it go on.
			if p == http.ErrAbortHandler {
				st.aborted = true
				st.status = StatusClientClosedRequest
				st.SetAttributes(semconv.HTTPResponseStatusCode(StatusClientClosedRequest))
			} else {
				st.panicked = true
				st.status = http.StatusInternalServerError
				st.SetAttributes(semconv.HTTPResponseStatusCode(http.StatusInternalServerError), semconv.ErrorTypeKey.String(vocab.ErrorPanic))
				st.errMsg = "panic"
			}
			panic(p)
		}
	}()
	status, route, err := in.s.Serve(w, r)
	NoteRoute(r.Context(), route)
	if status > 0 {
		st.status = status
	}
	if err != nil {
		st.err = err // recorded when the span ends, if the answer was a 5xx
	}
}

// recordError records the handler's error of a request answered 5xx: its
// error.type, an exception event, and its sentence as the span's status
// description (set over otelhttp's when the span ends).
func (r *request) recordError(err error) {
	msg := Sentence(err, r.t.cfg.Errors)
	r.SetAttributes(semconv.ErrorTypeKey.String(r.t.errorType(err)))
	r.AddEvent(semconv.ExceptionEventName, time.Now(),
		semconv.ExceptionType(exceptionType(err, r.t.cfg.Errors)), semconv.ExceptionMessage(msg))
	r.errMsg = msg
}

// NoteRoute tells the Trace of the request ctx belongs to the request's
// route template, learnt after the span started — the pattern Go's
// ServeMux set on the copy of the request it was given, a router's own
// answer — when it does not know it yet: the span is renamed when it ends
// and gets http.route, and otelhttp's metrics get http.route through its
// labeler. Nothing is written to any request. It runs on the request's
// goroutine, before its span ends.
func NoteRoute(ctx context.Context, route string) {
	if route == "" {
		return
	}
	st := stateFrom(ctx)
	if st != nil && st.route != "" {
		return // known from the start, or noted already
	}
	if st != nil {
		st.route = route
		st.SetRoute(route)
	}
	if l, ok := otelhttp.LabelerFromContext(ctx); ok {
		l.Add(semconv.HTTPRoute(routePath(route)))
	}
}

// NoteError gives the Trace of the request ctx belongs to the error of an
// answer a layer below it wrote — net/http handlers have no errors, so a
// Deadline answering a 504 says why — unless the handler's own is known.
// It is recorded if the answer is a 5xx.
func NoteError(ctx context.Context, err error) {
	if st := stateFrom(ctx); st != nil && st.err == nil {
		st.err = err
	}
}

// errorType names an error for error.type in the words telltale uses
// elsewhere: an error's own ErrorType, then the kinds telltale classifies
// (a failed upstream call's, a deadline's), then the cause a framework's
// HTTP error wraps, then its status ("http_502"), then the Go type.
func (t *Trace) errorType(err error) string {
	var typed interface{ ErrorType() string }
	if errors.As(err, &typed) {
		return typed.ErrorType()
	}
	if kind := errkind.Of(err, nil); kind != "" {
		return kind
	}
	if t.cfg.Errors != nil {
		if status, _, cause, ok := t.cfg.Errors(err); ok {
			if cause != nil {
				return t.errorType(cause)
			}
			return "http_" + strconv.Itoa(status)
		}
	}
	return fmt.Sprintf("%T", err)
}

// exceptionType is the Go type of the error a handler met: the innermost
// of err's chain, through a framework's HTTP error (read by decode) and
// the wrappers fmt.Errorf and the adapters add — so that the same failure
// reads the same behind every adapter, and a wrapper's type never stands
// for it.
func exceptionType(err error, decode ErrorDecoder) string {
	for range 32 { // a chain deeper than this is a cycle
		if decode != nil {
			if _, _, cause, ok := decode(err); ok && cause != nil {
				err = cause
				continue
			}
		}
		next := errors.Unwrap(err)
		if next == nil {
			break
		}
		err = next
	}
	return fmt.Sprintf("%T", err)
}

// Sentence is an error as a person reads it: a framework's HTTP error
// (read by decode, which may be nil) as its message and its cause
// ("request deadline of 1s exceeded: Get \"http://ads/items\": context
// deadline exceeded"), never a struct dump; the query values of a URL it
// quotes redacted.
func Sentence(err error, decode ErrorDecoder) string {
	msg := err.Error()
	if decode != nil {
		if status, m, cause, ok := decode(err); ok {
			if m == "" {
				m = http.StatusText(status)
			}
			if cause != nil {
				m += ": " + Sentence(cause, decode)
			}
			msg = m
		}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return redact.Message(msg, ue.URL)
	}
	return msg
}

// endStatus sets telltale's description over otelhttp's empty one, once
// otelhttp has set the status.
func (r *request) endStatus() {
	if r.errMsg != "" && (r.status >= http.StatusInternalServerError || r.panicked) {
		r.SetStatus(codes.Error, r.errMsg)
	}
}

// ReportAnomaly records an anomaly the handler of the request ctx belongs
// to reports (a partial answer, a fallback): an event telltale.anomaly on
// the server span, the span marked telltale.anomaly, and the request
// exported even if the head sampler dropped it. After the request ended it
// is dropped, and that is logged once.
func ReportAnomaly(ctx interface{ Value(any) any }, why string) {
	st, _ := ctx.Value(stateKey{}).(*request)
	if st == nil {
		return
	}
	if st.ended.Load() {
		st.t.late.Do(func() {
			st.t.logger.Warn("telltale: ReportAnomaly was called after its request ended, and is dropped: call it before the handler returns", "reason", why)
		})
		return
	}
	st.reported.Store(true)
	st.AddEvent(vocab.EventAnomaly, time.Now(), attribute.String(vocab.AttrAnomalyReason, why))
	st.Anomaly(anomaly.KindReported, signatureSite(why))
}

// signatureSite keeps a reason short enough to tell anomalies apart by.
func signatureSite(why string) string {
	const max = 64
	if len(why) > max {
		return why[:max]
	}
	return why
}

// StatusClientClosedRequest is the status nginx made up for a request whose
// client went away before the answer.
const StatusClientClosedRequest = 499
