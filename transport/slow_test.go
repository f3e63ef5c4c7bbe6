package transport_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

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
