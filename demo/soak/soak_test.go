package soak_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/demo/internal/gateway"
	"github.com/telltale-go/telltale/demo/internal/upstream"
	"github.com/telltale-go/telltale/vocab"
)

// leakCounter counts leak events per client span, so that a leak reported
// twice (or a span ended twice) shows.
type leakCounter struct {
	mu      sync.Mutex
	perSpan map[trace.SpanID]int
	ended   atomic.Int64
}

func (l *leakCounter) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (l *leakCounter) OnEnd(s sdktrace.ReadOnlySpan) {
	if s.SpanKind() != trace.SpanKindClient {
		return
	}
	l.ended.Add(1)
	for _, ev := range s.Events() {
		if ev.Name == vocab.EventBodyLeaked {
			l.mu.Lock()
			l.perSpan[s.SpanContext().SpanID()]++
			l.mu.Unlock()
		}
	}
}
func (l *leakCounter) Shutdown(context.Context) error   { return nil }
func (l *leakCounter) ForceFlush(context.Context) error { return nil }

type sample struct {
	at         time.Duration
	goroutines int
	conns      int64
	heap       uint64
	inFlight   int64
}

func measure(start time.Time, ups []*upstream.Server, inFlight int64) sample {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var conns int64
	for _, u := range ups {
		conns += u.OpenConns()
	}
	return sample{at: time.Since(start).Round(time.Second), goroutines: runtime.NumGoroutine(), conns: conns, heap: ms.HeapInuse, inFlight: inFlight}
}

func TestSoak(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("TELLTALE_SOAK"))
	if err != nil || d <= 0 {
		t.Skip("set TELLTALE_SOAK to a duration (make -C demo soak runs 30s)")
	}

	// Three upstreams: articles (required) healthy, users black-holed, ads
	// healthy.
	ups, err := gateway.StartUpstreams(upstream.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ups {
		defer s.Close()
	}
	spec := gateway.Describe(ups)
	if err := ups[1].SetFault(upstream.BlackHole); err != nil {
		t.Fatal(err)
	}

	counter := &leakCounter{perSpan: map[trace.SpanID]int{}}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(counter))
	defer tp.Shutdown(context.Background())
	h, closeGateway := gateway.NewGuarded(gateway.Config{Upstreams: spec, TracerProvider: tp}, slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 200}}

	// Load: a fixed rate of requests, feed (fans out, waits for the black
	// hole until the deadline) and count (leaks a body) alternating.
	const rate = 100 // requests per second
	var (
		feeds, counts, partial, failed atomic.Int64
		inFlight                       atomic.Int64
		wg                             sync.WaitGroup
	)
	do := func(path string) {
		defer wg.Done()
		defer inFlight.Add(-1)
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			failed.Add(1)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			failed.Add(1)
		}
		if resp.Header.Get(gateway.MissingHeader) != "" {
			partial.Add(1)
		}
	}

	start := time.Now()
	baseline := measure(start, ups, 0)
	var samples []sample
	tick := time.NewTicker(time.Second / rate)
	every := time.NewTicker(5 * time.Second)
	stop := time.After(d)
	for i := 0; ; i++ {
		select {
		case <-tick.C:
			wg.Add(1)
			inFlight.Add(1)
			if i%2 == 0 {
				feeds.Add(1)
				go do(gateway.FeedPath)
			} else {
				counts.Add(1)
				go do(gateway.CountPath)
			}
			continue
		case <-every.C:
			samples = append(samples, measure(start, ups, inFlight.Load()))
			continue
		case <-stop:
		}
		break
	}
	tick.Stop()
	every.Stop()
	wg.Wait()
	client.CloseIdleConnections()
	_ = ups[1].SetFault(upstream.Healthy) // release the black hole's connections
	time.Sleep(200 * time.Millisecond)
	if err := closeGateway(); err != nil {
		t.Fatal(err)
	}
	after := measure(start, ups, 0)

	t.Logf("load: %d feed (%d partial) + %d count requests in %s at %d/s, %d failed", feeds.Load(), partial.Load(), counts.Load(), d, rate, failed.Load())
	t.Logf("%8s %10s %8s %10s %9s", "t", "goroutines", "conns", "heap", "in flight")
	t.Logf("%8s %10d %8d %10s %9d", "before", baseline.goroutines, baseline.conns, mib(baseline.heap), 0)
	for _, s := range samples {
		t.Logf("%8s %10d %8d %10s %9d", s.at, s.goroutines, s.conns, mib(s.heap), s.inFlight)
	}
	t.Logf("%8s %10d %8d %10s %9d", "after", after.goroutines, after.conns, mib(after.heap), 0)

	if failed.Load() != 0 {
		t.Errorf("%d requests failed: a black-holed optional upstream must give partial answers", failed.Load())
	}
	if partial.Load() != feeds.Load() {
		t.Errorf("%d of %d feeds were partial, want all", partial.Load(), feeds.Load())
	}
	// Flat: after the first interval, nothing grows with time. The load is
	// steady, so the last sample must not exceed the first by more than
	// noise.
	if len(samples) >= 2 {
		first, last := samples[0], samples[len(samples)-1]
		if last.goroutines > first.goroutines*3/2+20 {
			t.Errorf("goroutines grew from %d to %d under steady load", first.goroutines, last.goroutines)
		}
		if last.conns > first.conns*3/2+10 {
			t.Errorf("upstream connections grew from %d to %d under steady load", first.conns, last.conns)
		}
		if last.heap > first.heap*2+8<<20 {
			t.Errorf("heap grew from %s to %s under steady load", mib(first.heap), mib(last.heap))
		}
	}
	if after.goroutines > baseline.goroutines+10 {
		t.Errorf("goroutines after the load: %d, baseline %d", after.goroutines, baseline.goroutines)
	}

	// Every leak reported exactly once: one leak event per leaking call,
	// no span with two.
	counter.mu.Lock()
	defer counter.mu.Unlock()
	var twice int
	for _, n := range counter.perSpan {
		if n != 1 {
			twice++
		}
	}
	if got := int64(len(counter.perSpan)); got != counts.Load() || twice != 0 {
		t.Errorf("leak reports: %d spans with a leak event (%d with more than one), want exactly one per count request: %d", got, twice, counts.Load())
	}
	t.Logf("leaks: %d count requests, %d leaked client spans, each reported once; %d client spans ended", counts.Load(), len(counter.perSpan), counter.ended.Load())
}

func mib(b uint64) string { return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20)) }
