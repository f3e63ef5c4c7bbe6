package transport_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/telltale-go/telltale/transport"
	"github.com/telltale-go/telltale/vocab"
)

// A call past the slow thresholds gets one event per threshold, at the time
// it was crossed, and is counted by kind and upstream.
func TestSlowUpstream(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(60 * time.Millisecond)
		_, _ = w.Write([]byte("late"))
	}))
	defer srv.Close()
	e := newEnv(t, nil, transport.WithSlowThreshold(20*time.Millisecond, 30*time.Millisecond))
	drainClose(get(t, e.client, context.Background(), srv.URL))
	s := e.waitEnded(t, 1)[0]
	var kinds []string
	for _, ev := range s.Events() {
		if ev.Name == vocab.EventUpstreamSlow {
			k, _ := attrOf(ev.Attributes, vocab.AttrSlowKind)
			kinds = append(kinds, k.AsString())
			if obs, _ := attrOf(ev.Attributes, vocab.AttrSlowObserved); obs.AsInt64() < 60 {
				t.Errorf("%s event: observed %vms, want at least 60", k.AsString(), obs.Emit())
			}
			if ev.Time.Before(s.StartTime()) || ev.Time.After(s.EndTime()) {
				t.Errorf("%s event at %v, outside the span", k.AsString(), ev.Time)
			}
		}
	}
	if strings.Join(kinds, ",") != "ttfb,total" {
		t.Errorf("slow events = %v, want ttfb,total", kinds)
	}
	for _, kind := range []string{vocab.SlowTTFB, vocab.SlowTotal} {
		if got := e.sum(t, vocab.MetricUpstreamSlow, attribute.String(vocab.AttrSlowKind, kind)); got != 1 {
			t.Errorf("%s{kind=%s} = %d, want 1", vocab.MetricUpstreamSlow, kind, got)
		}
	}
	if got := e.sum(t, vocab.MetricUpstreamSlow, attribute.String("server.address", "127.0.0.1")); got != 2 {
		t.Errorf("%s{server.address=127.0.0.1} = %d, want 2", vocab.MetricUpstreamSlow, got)
	}
}

// A call within the thresholds has no slow event.
func TestFastUpstreamIsNotSlow(t *testing.T) {
	srv := payloadServer(t, 10)
	e := newEnv(t, nil, transport.WithSlowThreshold(time.Second, time.Second))
	drainClose(get(t, e.client, context.Background(), srv.URL))
	if s := e.waitEnded(t, 1)[0]; len(s.Events()) != 0 {
		t.Errorf("events %v", s.Events())
	}
}

// slowEvents returns the span's slow events by kind.
func slowEvents(s sdktrace.ReadOnlySpan) map[string]sdktrace.Event {
	evs := map[string]sdktrace.Event{}
	for _, ev := range s.Events() {
		if ev.Name == vocab.EventUpstreamSlow {
			k, _ := attrOf(ev.Attributes, vocab.AttrSlowKind)
			evs[k.AsString()] = ev
		}
	}
	return evs
}

// Every call still waiting when a threshold passes gets the slow event,
// however it ends — here a black hole, failing at its deadline — stamped
// when the threshold passed (the call's start plus the threshold), saying
// what the call was waiting for then and how long that wait lasted.
func TestSlowEventOfACallThatFails(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer func() { close(release); srv.Close() }()
	e := newEnv(t, nil, transport.WithSlowThreshold(50*time.Millisecond, 150*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	if _, err := e.client.Do(req); err == nil {
		t.Fatal("no error")
	}
	s := e.waitEnded(t, 1)[0]
	evs := slowEvents(s)
	for kind, threshold := range map[string]time.Duration{vocab.SlowTTFB: 50 * time.Millisecond, vocab.SlowTotal: 150 * time.Millisecond} {
		ev, ok := evs[kind]
		if !ok {
			t.Errorf("no %s slow event: %v", kind, s.Events())
			continue
		}
		if at := ev.Time.Sub(s.StartTime()); at < threshold-5*time.Millisecond || at > threshold+5*time.Millisecond {
			t.Errorf("%s event %s after the start, want at the threshold, %s", kind, at, threshold)
		}
		if w, _ := attrOf(ev.Attributes, vocab.AttrSlowWaitingFor); w.AsString() != vocab.WaitingForHeaders {
			t.Errorf("%s event: waiting for %q, want %q", kind, w.AsString(), vocab.WaitingForHeaders)
		}
		if th, _ := attrOf(ev.Attributes, vocab.AttrSlowThreshold); th.AsInt64() != threshold.Milliseconds() {
			t.Errorf("%s event: threshold %v", kind, th.Emit())
		}
		if obs, _ := attrOf(ev.Attributes, vocab.AttrSlowObserved); obs.AsInt64() < 290 {
			t.Errorf("%s event: observed %vms, want about 300 (the call waited until its deadline)", kind, obs.Emit())
		}
	}
	if errorType(s) != vocab.ErrorDeadlineExceeded {
		t.Errorf("error.type %q", errorType(s))
	}
}

// A body read slowly (or held open) past the total threshold is slow while
// it waits for the body; its headers came in time.
func TestSlowEventOfABodyHeldOpen(t *testing.T) {
	srv := payloadServer(t, 10)
	e := newEnv(t, nil, transport.WithSlowThreshold(time.Second, 40*time.Millisecond))
	resp := get(t, e.client, context.Background(), srv.URL)
	time.Sleep(60 * time.Millisecond)
	drainClose(resp)
	s := e.waitEnded(t, 1)[0]
	evs := slowEvents(s)
	if _, ok := evs[vocab.SlowTTFB]; ok {
		t.Error("the headers came in time, yet a ttfb event")
	}
	ev, ok := evs[vocab.SlowTotal]
	if !ok {
		t.Fatalf("no total slow event: %v", s.Events())
	}
	if w, _ := attrOf(ev.Attributes, vocab.AttrSlowWaitingFor); w.AsString() != vocab.WaitingForBody {
		t.Errorf("waiting for %q, want %q", w.AsString(), vocab.WaitingForBody)
	}
}

// A stream made LongLived is meant to stay open: it is never slow in
// total.
func TestLongLivedBodyIsNotSlowInTotal(t *testing.T) {
	srv := payloadServer(t, 10)
	e := newEnv(t, nil, transport.WithSlowThreshold(time.Second, 20*time.Millisecond))
	resp := get(t, e.client, transport.LongLived(context.Background()), srv.URL)
	time.Sleep(40 * time.Millisecond)
	drainClose(resp)
	if evs := slowEvents(e.waitEnded(t, 1)[0]); len(evs) != 0 {
		t.Errorf("slow events on a long-lived body: %v", evs)
	}
}
