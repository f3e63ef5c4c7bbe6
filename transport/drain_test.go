package transport_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/telltale-go/telltale/internal/faulty"
	"github.com/telltale-go/telltale/transport"
	"github.com/telltale-go/telltale/vocab"
)

// reuseTrace records, request by request, whether the connection was reused.
func reuseTrace() (context.Context, *[]bool) {
	var reused []bool
	return httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { reused = append(reused, i.Reused) },
	}), &reused
}

// A body closed before its end is drained, so that its connection serves
// the next request; the drained bytes are counted.
func TestCloseDrainsSoTheConnectionIsReused(t *testing.T) {
	srv := payloadServer(t, 32<<10) // under the drain limit
	e := newEnv(t, nil)
	ctx, reused := reuseTrace()
	first := get(t, e.client, ctx, srv.URL)
	if _, err := first.Body.Read(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if err := first.Body.Close(); err != nil {
		t.Fatal(err)
	}
	drainClose(get(t, e.client, ctx, srv.URL))
	if len(*reused) != 2 || (*reused)[0] || !(*reused)[1] {
		t.Fatalf("GotConnInfo.Reused = %v, want [false true]", *reused)
	}
	if got := e.sum(t, vocab.MetricBytesDrained, attribute.KeyValue{}); got < 32<<10-100-4096 || got > 32<<10-100 {
		t.Errorf("%s = %d, want the unread rest of the body", vocab.MetricBytesDrained, got)
	}
}

// A body larger than the drain limit is not read to its end: its
// connection is closed, and the next request dials.
func TestCloseBeyondTheDrainLimitDropsTheConnection(t *testing.T) {
	srv := payloadServer(t, 1<<20)
	e := newEnv(t, nil, transport.WithDrain(4<<10, time.Second))
	ctx, reused := reuseTrace()
	_ = get(t, e.client, ctx, srv.URL).Body.Close()
	drainClose(get(t, e.client, ctx, srv.URL))
	if len(*reused) != 2 || (*reused)[1] {
		t.Fatalf("Reused = %v, want the second request on a new connection", *reused)
	}
}

// A trickling body is drained for at most the drain timeout: Close never
// blocks longer.
func TestDrainIsBoundedInTime(t *testing.T) {
	up := faulty.Counting(t, faulty.Trickle(10*time.Millisecond))
	e := newEnv(t, nil, transport.WithDrain(1<<20, 50*time.Millisecond))
	resp := get(t, e.client, context.Background(), up.URL)
	start := time.Now()
	_ = resp.Body.Close()
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("Close took %s with a 50ms drain timeout", took)
	}
	e.waitEnded(t, 1)
	transport.VerifyNoOpenBodies(t, e.tr)
}

// A stream — server-sent events, or a request made LongLived — is not
// drained: Close returns at once, without reading what the caller never
// asked for, as the plain transport's does.
func TestStreamsAreNotDrained(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/events" {
			w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		}
		for {
			if _, err := w.Write([]byte("data: tick\n\n")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}))
	defer srv.Close()
	e := newEnv(t, nil, transport.WithDrain(1<<20, 2*time.Second))
	for name, c := range map[string]struct {
		ctx context.Context
		url string
	}{
		"server-sent events": {context.Background(), srv.URL + "/events"},
		"LongLived":          {transport.LongLived(context.Background()), srv.URL + "/stream"},
	} {
		resp := get(t, e.client, c.ctx, c.url)
		if _, err := resp.Body.Read(make([]byte, 5)); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_ = resp.Body.Close()
		if took := time.Since(start); took > time.Second {
			t.Errorf("%s: Close took %s: it waited for the drain", name, took)
		}
	}
	if got := e.sum(t, vocab.MetricBytesDrained, attribute.KeyValue{}); got != 0 {
		t.Errorf("%s = %d: a stream was drained", vocab.MetricBytesDrained, got)
	}
}
