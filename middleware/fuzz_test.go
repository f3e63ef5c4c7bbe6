package middleware_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/telltale-go/telltale/internal/timeoutheader"
	ttmw "github.com/telltale-go/telltale/middleware"
)

// FuzzTimeoutHeaders sends arbitrary Connect-Timeout-Ms and
// X-Envoy-Expected-Rq-Timeout-Ms values through the Deadline middleware,
// both trusted, and checks what a hostile caller can get: never a panic,
// never a deadline past MaxTimeout, the smallest well-formed value (the
// caller's clamped to MaxTimeout, Envoy's only shortening the configured
// timeout), and the configured timeout when neither is well formed. The
// seed corpus in testdata/fuzz/FuzzTimeoutHeaders runs with every plain go
// test.
func FuzzTimeoutHeaders(f *testing.F) {
	for _, seed := range []string{"", "0", "1", "1500", "9999999999", "10000000000", "-1", "+5", "1e3", "1.5", "12ms", " 7", "٣", "0x10", "00000000000000000001"} {
		f.Add(seed, "")
		f.Add("", seed)
	}
	f.Add("4000", "1000")
	f.Add("500", "1000")
	const (
		timeout = 2 * time.Second
		max     = 10 * time.Second
	)
	e := echo.New()
	e.Use(ttmw.DeadlineWithConfig(ttmw.DeadlineConfig{Timeout: timeout, MaxTimeout: max, TrustHeader: true, TrustEnvoyHeader: true}))
	var (
		budget      time.Duration
		hasDeadline bool
	)
	e.GET("/", func(c echo.Context) error {
		var d time.Time
		d, hasDeadline = c.Request().Context().Deadline()
		budget = time.Until(d)
		return c.NoContent(http.StatusNoContent)
	})

	f.Fuzz(func(t *testing.T, connect, envoy string) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		if connect != "" {
			req.Header[timeoutheader.Connect] = []string{connect}
		}
		if envoy != "" {
			req.Header[timeoutheader.Envoy] = []string{envoy}
		}
		rec := httptest.NewRecorder()
		start := time.Now()
		e.ServeHTTP(rec, req)
		took := time.Since(start)
		if rec.Code != http.StatusNoContent || !hasDeadline {
			t.Fatalf("headers %q, %q: status %d, deadline %v", connect, envoy, rec.Code, hasDeadline)
		}
		want := timeout
		if d, err := timeoutheader.Parse(connect); err == nil {
			want = min(d, max)
		}
		if d, err := timeoutheader.Parse(envoy); err == nil {
			want = min(want, d)
		}
		if budget > want || budget < want-took-50*time.Millisecond {
			t.Fatalf("headers %q, %q: budget %s, want %s", connect, envoy, budget, want)
		}
	})
}
