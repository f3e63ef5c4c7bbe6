package transport_test

import (
	"context"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"

	"github.com/telltale-go/telltale/transport"
	"github.com/telltale-go/telltale/vocab"
)

// A leak warning names the transport it comes from.
func TestLeakWarningNamesTheTransport(t *testing.T) {
	srv := payloadServer(t, 10)
	logs := &syncBuffer{}
	e := newEnv(t, nil, transport.WithLogger(slogTo(logs)), transport.WithName(" payments "))
	if e.tr.Name() != "payments" {
		t.Errorf("Name() = %q, want payments", e.tr.Name())
	}
	ctx, scope := transport.WithScope(context.Background())
	_ = get(t, e.client, ctx, srv.URL)
	scope.End()
	if !strings.Contains(logs.String(), "transport=payments") {
		t.Errorf("leak warning does not name the transport:\n%s", logs)
	}
}

// Past the limit, warnings are suppressed, and their count is logged once
// the second is over even if no other leak follows; spans and metrics
// count every leak.
func TestLeakWarningsAreRateLimitedAndTheRestCounted(t *testing.T) {
	srv := payloadServer(t, 10)
	logs := &syncBuffer{}
	e := newEnv(t, nil, transport.WithLogger(slogTo(logs)), transport.WithLeakLogLimit(3))
	const n = 10
	ctx, scope := transport.WithScope(context.Background())
	var open []*http.Response // reachable: the scope, not the collector, finds them
	for range n {
		open = append(open, get(t, e.client, ctx, srv.URL))
	}
	leaks := scope.End()
	runtime.KeepAlive(open)
	if len(leaks) != n {
		t.Fatalf("%d leaks, want %d", len(leaks), n)
	}
	if got := strings.Count(logs.String(), "response body leaked"); got != 3 {
		t.Errorf("logged %d warnings, want the limit, 3", got)
	}
	if got := e.sum(t, vocab.MetricBodiesLeaked, attribute.KeyValue{}); got != n {
		t.Errorf("leak metric = %d, want every leak, %d", got, n)
	}
	eventually(t, "the count of suppressed warnings", func() bool {
		return strings.Contains(logs.String(), "leak warnings suppressed") && strings.Contains(logs.String(), "suppressed=7")
	})
}

// Close logs the count of warnings suppressed in the current second.
func TestCloseLogsTheSuppressedCount(t *testing.T) {
	srv := payloadServer(t, 10)
	logs := &syncBuffer{}
	e := newEnv(t, nil, transport.WithLogger(slogTo(logs)), transport.WithLeakLogLimit(1))
	ctx, scope := transport.WithScope(context.Background())
	var open []*http.Response // reachable: the scope, not the collector, finds them
	for range 3 {
		open = append(open, get(t, e.client, ctx, srv.URL))
	}
	scope.End()
	runtime.KeepAlive(open)
	_ = e.tr.Close()
	if !strings.Contains(logs.String(), "suppressed=2") {
		t.Errorf("after Close:\n%s", logs)
	}
}
