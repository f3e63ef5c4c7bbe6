package transport

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// warnings logs one warning per leaked body, at most perSecond a second, so
// that a leak storm cannot flood the logs; spans and metrics still record
// every leak. The warnings it suppresses are counted, and the count is
// logged once when the second in which they were suppressed is over —
// whether or not another leak follows — or at Close.
type warnings struct {
	logger    *slog.Logger
	perSecond int

	mu         sync.Mutex
	window     time.Time // start of the current second
	inWindow   int
	suppressed int
	flush      *time.Timer // logs the suppressed count at the end of the window
	closed     bool
}

func (w *warnings) init(logger *slog.Logger, perSecond int) {
	w.logger, w.perSecond = logger, perSecond
}

// leaked logs the warning of one leak, unless the limit is reached, saying
// whether the trace it names is in the trace backend.
func (w *warnings) leaked(leak Leak, transportName string, inBackend bool) {
	if !w.allow(time.Now()) {
		return
	}
	why := slog.Attr{}
	if !inBackend {
		why = slog.String("why", "the head sampler dropped the request, and its tracer provider does not export anomalies (see sampling.NewTracerProvider)")
		if leak.TraceID == "" {
			why = slog.String("why", "the request was not traced")
		}
	}
	w.logger.LogAttrs(context.Background(), slog.LevelWarn, "telltale: response body leaked",
		slog.String("transport", transportName),
		slog.String("reason", string(leak.Reason)),
		slog.String("call_site", leak.CallSite.String()),
		slog.String("method", leak.Method),
		slog.String("url", leak.URL),
		slog.Int64("bytes_read", leak.BytesRead),
		slog.Duration("age", leak.Age),
		slog.Bool("repaired", leak.Repaired),
		slog.String("trace_id", leak.TraceID),
		slog.String("span_id", leak.SpanID),
		slog.Bool("in_trace_backend", inBackend),
		why,
	)
}

// allow reports whether one more warning may be logged now.
func (w *warnings) allow(now time.Time) bool {
	if w.perSecond <= 0 {
		return true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if now.Sub(w.window) >= time.Second {
		w.window, w.inWindow = now, 0
	}
	if w.inWindow < w.perSecond {
		w.inWindow++
		return true
	}
	w.suppressed++
	if w.flush == nil && !w.closed {
		w.flush = time.AfterFunc(w.window.Add(time.Second).Sub(now), w.logSuppressed)
	}
	return false
}

// logSuppressed logs how many warnings were suppressed, if any.
func (w *warnings) logSuppressed() {
	w.mu.Lock()
	n := w.suppressed
	w.suppressed, w.flush = 0, nil
	w.mu.Unlock()
	if n > 0 {
		w.logger.LogAttrs(context.Background(), slog.LevelWarn, "telltale: leak warnings suppressed",
			slog.Int("suppressed", n), slog.Int("limit_per_second", w.perSecond))
	}
}

// close stops the flush timer and logs what it would have logged.
func (w *warnings) close() {
	w.mu.Lock()
	w.closed = true
	if w.flush != nil {
		w.flush.Stop()
	}
	w.mu.Unlock()
	w.logSuppressed()
}
