package transport_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/telltale-go/telltale/internal/faulty"
	"github.com/telltale-go/telltale/transport"
)

// holdOpen serves a body that stays open until the test ends.
func holdOpen(t *testing.T) *httptest.Server {
	t.Helper()
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "first")
		w.(http.Flusher).Flush()
		select {
		case <-done:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(done); srv.Close() })
	return srv
}

// The call site is the application's own line: a helper in the
// application's module is that line, unless WithCallSiteSkip names its
// package, and then it is the helper's caller.
func TestCallSiteIsTheApplicationsLine(t *testing.T) {
	srv := holdOpen(t)
	for _, skip := range []bool{false, true} {
		var opts []transport.Option
		if skip {
			opts = append(opts, transport.WithCallSiteSkip("github.com/telltale-go/telltale/internal/faulty"))
		}
		e := newEnv(t, nil, opts...)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = faulty.Call(ctx, e.client, srv.URL) // blocks reading the held body
		}()
		_, callerLine := here()
		callerLine -= 2
		eventually(t, "the body to be open", func() bool { return len(e.tr.OpenBodies(0)) == 1 })
		site := e.tr.OpenBodies(0)[0].CallSite
		switch {
		case skip && (!strings.HasSuffix(site.File, "callsite_test.go") || site.Line != callerLine):
			t.Errorf("with the helper skipped: call site %s, want callsite_test.go:%d", site, callerLine)
		case !skip && !strings.HasSuffix(site.File, "faulty.go"):
			t.Errorf("call site %s, want the helper's line in faulty.go", site)
		}
		cancel()
		<-done
	}
}

// The call site is the application's line however deep in a library the
// call is made, within the stack RoundTrip captures.
func TestCallSiteThroughADeepLibrary(t *testing.T) {
	srv := holdOpen(t)
	e := newEnv(t, nil, transport.WithCallSiteSkip("github.com/telltale-go/telltale/internal/faulty"))
	for _, frames := range []int{0, 3, 8, 20, 20, 0} {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = faulty.CallThrough(ctx, e.client, srv.URL, frames) // blocks reading the held body
		}()
		_, callerLine := here()
		callerLine -= 2
		eventually(t, "the body to be open", func() bool { return len(e.tr.OpenBodies(0)) == 1 })
		b := e.tr.OpenBodies(0)[0]
		if !strings.HasSuffix(b.CallSite.File, "callsite_test.go") || b.CallSite.Line != callerLine {
			t.Errorf("%d frames deep: call site %s, want callsite_test.go:%d; stack:\n%s", frames, b.CallSite, callerLine, b.Stack)
		}
		cancel()
		<-done
		eventually(t, "the body to end", func() bool { return len(e.tr.OpenBodies(0)) == 0 })
	}
}

// A report's stack is the first eight frames past net/http and the skipped
// packages, however deep in a library the call is made.
func TestReportStackKeepsEightFrames(t *testing.T) {
	srv := holdOpen(t)
	e := newEnv(t, nil, transport.WithCallSiteSkip("github.com/telltale-go/telltale/internal/faulty"))
	for _, frames := range []int{0, 3, 5, 8} {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			callerFrames(10, func() { _ = faulty.CallThrough(ctx, e.client, srv.URL, frames) })
		}()
		eventually(t, "the body to be open", func() bool { return len(e.tr.OpenBodies(0)) == 1 })
		b := e.tr.OpenBodies(0)[0]
		if n := strings.Count(b.Stack, "\n\t"); n != 8 {
			t.Errorf("%d frames deep in a skipped library: the report's stack has %d frames, want 8:\n%s", frames, n, b.Stack)
		}
		cancel()
		<-done
		eventually(t, "the body to end", func() bool { return len(e.tr.OpenBodies(0)) == 0 })
	}
}

// callerFrames calls f from n frames of the application's own code.
//
//go:noinline
func callerFrames(n int, f func()) {
	if n > 0 {
		callerFrames(n-1, f)
		return
	}
	f()
}

// Behind an httputil.ReverseProxy mounted directly, no frame of the
// application's is on the stack: the call site is the proxy, not net/http
// nor telltale; a proxy called from the application's own handler is that
// handler's line.
func TestCallSiteBehindAReverseProxy(t *testing.T) {
	upstream := holdOpen(t)
	target, _ := url.Parse(upstream.URL)
	e := newEnv(t, nil)
	p := httputil.NewSingleHostReverseProxy(target)
	p.Transport = e.tr
	var handlerLine int
	mux := http.NewServeMux()
	mux.Handle("/direct", p)
	mux.HandleFunc("/own", func(w http.ResponseWriter, r *http.Request) {
		p.ServeHTTP(w, r)
	})
	_, handlerLine = here()
	handlerLine -= 2
	front := httptest.NewServer(mux)
	defer front.Close()

	for path, want := range map[string]func(transport.CallSite) bool{
		"/direct": func(s transport.CallSite) bool {
			return strings.Contains(s.Function, "httputil.(*ReverseProxy).ServeHTTP")
		},
		"/own": func(s transport.CallSite) bool {
			return strings.HasSuffix(s.File, "callsite_test.go") && s.Line == handlerLine
		},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp := get(t, http.DefaultClient, ctx, front.URL+path)
		if _, err := resp.Body.Read(make([]byte, 5)); err != nil {
			t.Fatal(err)
		}
		open := e.tr.OpenBodies(0)
		if len(open) != 1 || !want(open[0].CallSite) {
			t.Errorf("%s: open bodies %+v", path, open)
		}
		cancel()
		_ = resp.Body.Close()
		eventually(t, "the proxied body to end", func() bool { return len(e.tr.OpenBodies(0)) == 0 })
	}
	http.DefaultClient.CloseIdleConnections()
}
