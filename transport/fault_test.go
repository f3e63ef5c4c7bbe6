package transport_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"

	"github.com/telltale-go/telltale/internal/faulty"
	"github.com/telltale-go/telltale/transport"
)

// Each faulty upstream, called the way a handler calls it — with a
// deadline, reading the body, closing it — ends the call within the
// deadline plus a margin, with a span that says what happened, and leaves
// no body, connection or goroutine behind (goleak runs after the package's
// tests).
func TestFaultMatrix(t *testing.T) {
	for _, f := range faulty.Faults() {
		t.Run(f.Name, func(t *testing.T) {
			up := f.Start(t)
			e := newEnv(t, f.Base())
			ctx, cancel := context.WithTimeout(context.Background(), faulty.Deadline)
			defer cancel()

			start := time.Now()
			err := faulty.Call(ctx, e.client, up.URL)
			if took := time.Since(start); took > faulty.Deadline+faulty.Margin {
				t.Errorf("took %s with a %s deadline", took, faulty.Deadline)
			}
			if f.Failing() != (err != nil) {
				t.Errorf("err = %v", err)
			}
			s := e.waitEnded(t, 1)[0]
			wantStatus := codes.Unset
			if f.Failing() {
				wantStatus = codes.Error
				if got := errorType(s); got != f.ErrorType {
					t.Errorf("error.type = %q, want %q (err %v)", got, f.ErrorType, err)
				}
			}
			if s.Status().Code != wantStatus {
				t.Errorf("span status = %v, want %v", s.Status(), wantStatus)
			}
			transport.VerifyNoOpenBodies(t, e.tr)
			// The pool is bounded: the call's connection is gone once idle
			// connections are closed.
			e.tr.CloseIdleConnections()
			faulty.WaitNoConns(t, up)
		})
	}
}

// A redirect loop gives up after ten hops, each with its span ended and its
// body closed.
func TestRedirectLoopClosesEveryHop(t *testing.T) {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, srv.URL+r.URL.Path+"x", http.StatusFound)
	}))
	defer srv.Close()
	e := newEnv(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), faulty.Deadline)
	defer cancel()
	err := faulty.Call(ctx, e.client, srv.URL+"/")
	if err == nil {
		t.Fatal("a redirect loop succeeded")
	}
	spans := e.waitEnded(t, 10)
	if len(spans) != 10 {
		t.Errorf("%d spans for 10 hops", len(spans))
	}
	transport.VerifyNoOpenBodies(t, e.tr)
}
