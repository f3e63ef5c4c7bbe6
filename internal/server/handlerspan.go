package server

import (
	"context"
	"fmt"
	"reflect"
	"runtime"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// handlerSpan is the server span as the handler finds it in its context
// (trace.SpanFromContext) when the head sampler dropped it and the request
// is kept for a replay. Like the SDK's span it stands for, it does not
// record — IsRecording is false, End does nothing — but the attributes,
// events, errors and status the handler sets on it are kept with the
// request, so that its replayed server span holds them as a sampled one
// would. Within the request's bounds (anomaly.MaxAttributes, MaxEvents);
// a new name is not kept.
type handlerSpan struct {
	trace.Span // the SDK's non-recording span
	r          *request
}

func (s *handlerSpan) SetAttributes(kvs ...attribute.KeyValue) { s.r.Request.SetAttributes(kvs...) }

func (s *handlerSpan) AddEvent(name string, opts ...trace.EventOption) {
	cfg := trace.NewEventConfig(opts...)
	s.r.Request.AddEvent(name, cfg.Timestamp(), cfg.Attributes()...)
}

// RecordError records err as the SDK does: an exception event with its
// type and message, and its stack when asked.
func (s *handlerSpan) RecordError(err error, opts ...trace.EventOption) {
	if err == nil {
		return
	}
	cfg := trace.NewEventConfig(opts...)
	attrs := append([]attribute.KeyValue{
		semconv.ExceptionType(errorTypeName(err)),
		semconv.ExceptionMessage(err.Error()),
	}, cfg.Attributes()...)
	if cfg.StackTrace() {
		buf := make([]byte, 2048)
		for {
			n := runtime.Stack(buf, false)
			if n < len(buf) {
				buf = buf[:n]
				break
			}
			buf = make([]byte, 2*len(buf))
		}
		attrs = append(attrs, semconv.ExceptionStacktrace(string(buf)))
	}
	s.r.Request.AddEvent(semconv.ExceptionEventName, cfg.Timestamp(), attrs...)
}

func (s *handlerSpan) SetStatus(code codes.Code, description string) {
	s.r.Request.SetStatus(code, description)
}

func (s *handlerSpan) End(...trace.SpanEndOption) {}

func (s *handlerSpan) SetName(string) {}

func (s *handlerSpan) AddLink(trace.Link) {}

// errorTypeName names an error's type as the SDK's RecordError does.
func errorTypeName(err error) string {
	t := reflect.TypeOf(err)
	if t.PkgPath() == "" && t.Name() == "" {
		return t.String() // a pointer, a slice…: its own spelling
	}
	return fmt.Sprintf("%s.%s", t.PkgPath(), t.Name())
}

// spanKey is the context key under which package trace keeps the current
// span, learnt once by asking trace.SpanFromContext: the request, as a
// context, answers it with its handlerSpan.
var spanKey = func() any {
	var p keyProbe
	trace.SpanFromContext(&p)
	return p.key
}()

// keyProbe is a context that notes the key it is asked for.
type keyProbe struct {
	context.Context
	key any
}

func (p *keyProbe) Value(key any) any {
	p.key = key
	return nil
}

func (p *keyProbe) Deadline() (time.Time, bool) { return time.Time{}, false }
func (p *keyProbe) Done() <-chan struct{}       { return nil }
func (p *keyProbe) Err() error                  { return nil }
