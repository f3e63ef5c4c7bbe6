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

// FuzzParseTimeoutHeader sends arbitrary Telltale-Timeout-Ms values through
// the Deadline middleware and checks what a hostile caller can get: never a
// panic, never a deadline past MaxTimeout, the header's value exactly when it
// is well formed, and the configured timeout otherwise. The seed corpus in
// testdata/fuzz/FuzzParseTimeoutHeader runs with every plain go test.
func FuzzParseTimeoutHeader(f *testing.F) {
	for _, seed := range []string{"", "0", "1", "1500", "9999999999", "10000000000", "-1", "+5", "1e3", "1.5", "12ms", " 7", "٣", "0x10", "00000000000000000001"} {
		f.Add(seed)
	}
	const (
		timeout = 2 * time.Second
		max     = 10 * time.Second
	)
	e := echo.New()
	e.Use(ttmw.DeadlineWithConfig(ttmw.DeadlineConfig{Timeout: timeout, MaxTimeout: max, TrustHeader: true}))
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

	f.Fuzz(func(t *testing.T, value string) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		if value != "" {
			req.Header[timeoutheader.Connect] = []string{value}
		}
		rec := httptest.NewRecorder()
		start := time.Now()
		e.ServeHTTP(rec, req)
		took := time.Since(start)
		if rec.Code != http.StatusNoContent || !hasDeadline {
			t.Fatalf("header %q: status %d, deadline %v", value, rec.Code, hasDeadline)
		}
		want := timeout
		if d, err := timeoutheader.Parse(value); err == nil {
			want = min(d, max)
		}
		if budget > want || budget < want-took-50*time.Millisecond {
			t.Fatalf("header %q: budget %s, want %s", value, budget, want)
		}
	})
}
