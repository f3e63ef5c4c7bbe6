package nethttp_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/telltale-go/telltale/middleware/nethttp"
)

// interfacesOf lists the optional interfaces of a ResponseWriter a handler
// may ask for.
func interfacesOf(w http.ResponseWriter) string {
	var has []string
	check := func(name string, ok bool) {
		if ok {
			has = append(has, name)
		}
	}
	_, ok := w.(http.Flusher)
	check("Flusher", ok)
	_, ok = w.(interface{ FlushError() error })
	check("FlushError", ok)
	_, ok = w.(http.CloseNotifier) //nolint:staticcheck // what a handler may still ask
	check("CloseNotifier", ok)
	_, ok = w.(http.Hijacker)
	check("Hijacker", ok)
	_, ok = w.(io.ReaderFrom)
	check("ReaderFrom", ok)
	_, ok = w.(interface{ SetReadDeadline(time.Time) error })
	check("SetReadDeadline", ok)
	_, ok = w.(interface{ SetWriteDeadline(time.Time) error })
	check("SetWriteDeadline", ok)
	_, ok = w.(interface{ EnableFullDuplex() error })
	check("EnableFullDuplex", ok)
	_, ok = w.(http.Pusher)
	check("Pusher", ok)
	_, ok = w.(io.StringWriter)
	check("StringWriter", ok)
	return strings.Join(has, " ")
}

// Behind Deadline, alone or in the whole stack, a handler finds exactly the
// optional interfaces it finds without it — behind nothing, or behind plain
// otelhttp — over HTTP/1.1 and HTTP/2; for net/http's own writers, through
// Deadline's own writer, not httpsnoop's.
func TestDeadlineKeepsExactlyTheWritersInterfaces(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		proto := map[bool]string{false: "HTTP/1.1", true: "HTTP/2.0"}[h2]
		t.Run(proto, func(t *testing.T) {
			v := newEnv(t)
			type seen struct{ set, typ string }
			got := make(chan seen, 1)
			probe := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got <- seen{interfacesOf(w), fmt.Sprintf("%T", w)}
				w.WriteHeader(http.StatusNoContent)
			})
			ask := func(h http.Handler) seen {
				t.Helper()
				srv := httptest.NewUnstartedServer(h)
				srv.EnableHTTP2 = h2
				srv.StartTLS()
				defer srv.Close()
				ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
				defer cancel()
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/", nil)
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.Proto != proto {
					t.Fatalf("served over %s, want %s", resp.Proto, proto)
				}
				return <-got
			}
			plain := ask(probe)
			deadline := ask(nethttp.Deadline(time.Second)(probe))
			otel := ask(otelhttp.NewHandler(probe, "server", otelhttp.WithTracerProvider(v.tp)))
			stack := ask(v.stack(probe))
			t.Logf("plain: %s; behind Deadline: %s (%s)", plain.set, deadline.set, deadline.typ)
			if deadline.set != plain.set {
				t.Errorf("behind Deadline the writer has %q, plain %q", deadline.set, plain.set)
			}
			if stack.set != otel.set {
				t.Errorf("behind the whole stack the writer has %q, behind plain otelhttp %q", stack.set, otel.set)
			}
			if !strings.Contains(deadline.typ, "nethttp.watched") {
				t.Errorf("net/http's own %s writer went through %s, not Deadline's own writer", proto, deadline.typ)
			}
		})
	}
}
