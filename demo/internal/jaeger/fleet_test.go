package jaeger

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// anomaly is the attribute collector.yaml keeps traces by: the key of the
// library's vocab.AttrAnomaly.
var anomaly = attribute.Bool("telltale.anomaly", true)

// The constants, the fleet's default addresses and the addresses written in
// the configs are the same.
func TestFleetAddrsMatchConfigs(t *testing.T) {
	a := defaultFleetAddrs
	for _, c := range []struct{ got, want string }{
		{"http://" + a.collectorHTTP, CollectorOTLPHTTP},
		{"http://" + a.collectorHealth + "/status", CollectorHealthURL},
		{a.storageGRPC, StorageOTLPGRPC},
		{"http://" + a.storageHTTP, StorageOTLPHTTP},
		{"http://" + a.storageHealth + "/status", StorageHealthURL},
		{"http://" + a.queryHTTP, QueryURL},
	} {
		if c.got != c.want {
			t.Errorf("default address %s, constant %s", c.got, c.want)
		}
	}
	dir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	for file, addrs := range map[string][]string{
		collectorConfig:     append(a.collector(), a.storageGRPC),
		storageConfig:       a.storage(),
		badgerStorageConfig: a.storage(),
	} {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		for _, addr := range addrs {
			if !strings.Contains(string(b), "endpoint: "+addr+"\n") {
				t.Errorf("%s: no endpoint %s", file, addr)
			}
		}
	}
}

// Something already on one of the fleet's ports is named at once, before
// either tier is started.
func TestStartFleetNamesTakenPorts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a := freeFleetAddrs(t)
	a.queryHTTP = ln.Addr().String()

	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(Binary(dir), []byte("#!/bin/sh\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = StartFleet(context.Background(), dir, dir, withAddrs(a))
	if !errors.Is(err, ErrPortsTaken) || !strings.Contains(err.Error(), ln.Addr().String()+" already in use") {
		t.Fatalf("StartFleet = %v, want %v naming %s", err, ErrPortsTaken, ln.Addr())
	}
}

// The collector tier keeps every trace with a span flagged anomalous, whole
// (the spans of both services), a thinned share of the healthy ones, and the
// spans of a kept trace that arrive after its decision; a dropped trace stays
// dropped, even if a late span of it is flagged.
func TestFleetTailSampling(t *testing.T) {
	start := time.Now()
	// The tail sampler's buffer holds 300 traces instead of 20000, so that
	// the fillers sent before the late spans push the first traces out of it:
	// a late span then finds its trace's decision in the decision cache or
	// nowhere. (A decided trace lingers in the buffer until pushed out, and
	// while it does its late spans follow the decision even without a cache.)
	const buffer, fillers = 300, 250
	f := startTestFleet(t, withCollectorSets(fmt.Sprintf("processors.tail_sampling.num_traces=%d", buffer)))
	t.Logf("fleet healthy after %s", time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	gateway := newService(ctx, t, f.OTLPHTTP, "gateway")
	upstream := newService(ctx, t, f.OTLPHTTP, "upstream")

	const healthy, anomalous = 200, 40
	var kept, others []request
	for i := range healthy + anomalous {
		// One request in six is anomalous, flagged in turn on the gateway's
		// server span, its client span, or the upstream's server span.
		flag := -1
		if i%6 == 5 {
			flag = (i / 6) % 3
		}
		r := serve(ctx, gateway, upstream, flag)
		if flag >= 0 {
			kept = append(kept, r)
		} else {
			others = append(others, r)
		}
	}
	flush(ctx, t, gateway, upstream)
	sent := time.Now()

	c := &Client{Base: f.QueryURL, HTTP: &http.Client{Timeout: 5 * time.Second}}
	t.Cleanup(c.HTTP.CloseIdleConnections)
	for _, r := range kept {
		tr, err := waitTrace(ctx, c, r.id(), 3, sent.Add(15*time.Second))
		if err != nil {
			t.Fatalf("anomalous trace (flag on span %d): %v", r.flag, err)
		}
		r.check(t, tr)
	}
	t.Logf("all %d anomalous traces stored %s after the export", anomalous, time.Since(sent).Round(time.Millisecond))

	// Every decision is made by now (all the traces arrived within one
	// decision_wait); 3s later, a span of a kept trace arrives late.
	time.Sleep(3 * time.Second)
	healthyStored := func() (stored int, dropped []request) {
		for _, r := range others {
			tr, err := c.Trace(ctx, r.id())
			switch {
			case errors.Is(err, ErrNotFound):
				dropped = append(dropped, r)
			case err != nil:
				t.Fatal(err)
			default:
				stored++
				r.check(t, tr)
			}
		}
		return stored, dropped
	}
	early, dropped := healthyStored()
	if len(dropped) == 0 {
		t.Fatal("no healthy trace dropped")
	}

	for range fillers {
		serve(ctx, gateway, upstream, -1)
	}
	flush(ctx, t, gateway, upstream)
	lateKept := late(ctx, gateway, kept[0], false)
	lateDropped := late(ctx, gateway, dropped[0], true)
	flush(ctx, t, gateway)
	lateSent := time.Now()
	tr, err := waitTrace(ctx, c, kept[0].id(), 4, lateSent.Add(10*time.Second))
	if err != nil {
		t.Fatalf("late span of a kept trace: %v", err)
	}
	found := false
	for _, s := range tr.Spans {
		if s.SpanID == lateKept.SpanID().String() {
			found = true
			if s.Parent() != kept[0].root.SpanID().String() {
				t.Errorf("late span: parent %s, want %s", s.Parent(), kept[0].root.SpanID())
			}
		}
	}
	if !found {
		t.Fatalf("late span %s of a kept trace not stored", lateKept.SpanID())
	}
	t.Logf("late span of a kept trace stored %s after its export", time.Since(lateSent).Round(time.Millisecond))

	// Had the collector forgotten the dropped trace, its flagged late span
	// would be held one decision_wait (2s), kept on its own, and stored
	// within about a second more.
	time.Sleep(time.Until(lateSent.Add(4500 * time.Millisecond)))
	if tr, err := c.Trace(ctx, dropped[0].id()); !errors.Is(err, ErrNotFound) {
		t.Errorf("flagged late span %s of a dropped trace: got %d spans (%v), want the trace still dropped", lateDropped.SpanID(), len(tr.Spans), err)
	}

	// Binomial(200, 10 %): mean 20, standard deviation 4.2. P(X < 3) is
	// 1.9e-7 and P(X > 50) is 3e-10, so outside [3, 50] the probabilistic
	// policy is not thinning at 10 % (or something else keeps traces).
	stored, _ := healthyStored()
	t.Logf("healthy traces stored: %d of %d (%d when the late spans were sent)", stored, healthy, early)
	if stored < 3 || stored > 50 {
		t.Errorf("%d of %d healthy traces stored, want a 10 %% share (3 to 50)", stored, healthy)
	}
	t.Logf("test body took %s", time.Since(start).Round(time.Millisecond))
}

// The Badger storage tier stores a trace on disk: it is still there after
// the fleet restarts on the same directory.
func TestFleetBadgerStorage(t *testing.T) {
	start := time.Now()
	data := t.TempDir()
	f := startTestFleet(t, WithBadger(data))
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	gateway := newService(ctx, t, f.OTLPHTTP, "gateway")
	upstream := newService(ctx, t, f.OTLPHTTP, "upstream")
	r := serve(ctx, gateway, upstream, 2)
	flush(ctx, t, gateway, upstream)
	c := &Client{Base: f.QueryURL, HTTP: &http.Client{Timeout: 5 * time.Second}}
	t.Cleanup(c.HTTP.CloseIdleConnections)
	tr, err := waitTrace(ctx, c, r.id(), 3, time.Now().Add(15*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	r.check(t, tr)
	if err := f.Stop(); err != nil {
		t.Fatal(err)
	}

	f = startTestFleet(t, WithBadger(data))
	c.Base = f.QueryURL
	tr, err = waitTrace(ctx, c, r.id(), 3, time.Now().Add(5*time.Second))
	if err != nil {
		t.Fatalf("after a restart: %v", err)
	}
	r.check(t, tr)
	t.Logf("took %s", time.Since(start).Round(time.Millisecond))
}

// startTestFleet starts the fleet on free ports, stopped when t ends (its
// logs printed if t failed), or skips t if the binary is not built.
func startTestFleet(t *testing.T, opts ...FleetOption) *Fleet {
	t.Helper()
	dir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(Binary(dir)); err != nil {
		t.Skipf("the Jaeger binary is not built (%s); run `make -C demo jaeger` (about 4 minutes the first time)", Binary(dir))
	}
	logs := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	f, err := StartFleet(ctx, dir, logs, append(opts, withAddrs(freeFleetAddrs(t)))...)
	if err != nil {
		printLogs(t, logs)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = f.Stop()
		if t.Failed() {
			printLogs(t, logs)
		}
	})
	return f
}

func printLogs(t *testing.T, dir string) {
	for _, name := range []string{"jaeger-storage.log", "jaeger-collector.log"} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
			t.Logf("%s:\n%s", name, b)
		}
	}
}

// freeFleetAddrs returns loopback addresses that were free a moment ago.
func freeFleetAddrs(t *testing.T) fleetAddrs {
	t.Helper()
	var addrs [8]string
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		// Closed only once all are taken, so that they differ.
		defer ln.Close()
		addrs[i] = ln.Addr().String()
	}
	return fleetAddrs{
		collectorGRPC: addrs[0], collectorHTTP: addrs[1], collectorHealth: addrs[2],
		storageGRPC: addrs[3], storageHTTP: addrs[4], storageHealth: addrs[5],
		queryHTTP: addrs[6], queryGRPC: addrs[7],
	}
}

// newService returns the tracer provider of service name, exporting
// everything to the OTLP/HTTP endpoint, shut down when t ends.
func newService(ctx context.Context, t *testing.T, endpoint, name string) *sdktrace.TracerProvider {
	t.Helper()
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint+"/v1/traces"))
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(100*time.Millisecond)),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", name))),
	)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tp.Shutdown(ctx)
	})
	return tp
}

func flush(ctx context.Context, t *testing.T, tps ...*sdktrace.TracerProvider) {
	t.Helper()
	for _, tp := range tps {
		if err := tp.ForceFlush(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// request is one request through the gateway and its upstream: the
// gateway's server span, its client span, and the upstream's server span.
type request struct {
	root, client, upstream trace.SpanContext
	// flag is the span flagged anomalous (0, 1, 2 in that order), or -1.
	flag int
}

func (r request) id() string { return r.root.TraceID().String() }

// serve records one request; flag chooses the span flagged anomalous.
func serve(ctx context.Context, gateway, upstream *sdktrace.TracerProvider, flag int) request {
	gw := gateway.Tracer("gateway")
	ctx, root := gw.Start(ctx, "GET /checkout", trace.WithSpanKind(trace.SpanKindServer))
	_, client := gw.Start(ctx, "GET price", trace.WithSpanKind(trace.SpanKindClient))
	// The upstream knows the client span only from the request's
	// traceparent, as across a real network hop.
	remote := trace.ContextWithRemoteSpanContext(context.Background(), client.SpanContext())
	_, server := upstream.Tracer("upstream").Start(remote, "GET /price", trace.WithSpanKind(trace.SpanKindServer))
	spans := []trace.Span{root, client, server}
	if flag >= 0 {
		spans[flag].SetAttributes(anomaly)
	}
	server.End()
	client.End()
	root.End()
	return request{root: root.SpanContext(), client: client.SpanContext(), upstream: server.SpanContext(), flag: flag}
}

// late records a span of r's trace, a child of its root, now.
func late(ctx context.Context, gateway *sdktrace.TracerProvider, r request, flagged bool) trace.SpanContext {
	ctx = trace.ContextWithSpanContext(ctx, r.root)
	_, s := gateway.Tracer("gateway").Start(ctx, "late work")
	if flagged {
		s.SetAttributes(anomaly)
	}
	s.End()
	return s.SpanContext()
}

// check asserts that tr holds r whole: its three spans, from the right
// services, with the right parents, the flag where it was set.
func (r request) check(t *testing.T, tr Trace) {
	t.Helper()
	want := []struct {
		sc      trace.SpanContext
		service string
		parent  string
	}{
		{r.root, "gateway", ""},
		{r.client, "gateway", r.root.SpanID().String()},
		{r.upstream, "upstream", r.client.SpanID().String()},
	}
	for i, w := range want {
		var got *Span
		for j := range tr.Spans {
			if tr.Spans[j].SpanID == w.sc.SpanID().String() {
				got = &tr.Spans[j]
			}
		}
		if got == nil {
			t.Errorf("trace %s: span %d (%s) missing", r.id(), i, w.service)
			continue
		}
		flag, _ := got.Tag(string(anomaly.Key))
		if s := tr.Service(*got); s != w.service || got.Parent() != w.parent || (flag == "true") != (i == r.flag) {
			t.Errorf("trace %s: span %d: service %q, parent %q, %s %q; want %q, %q, flagged %v",
				r.id(), i, s, got.Parent(), anomaly.Key, flag, w.service, w.parent, i == r.flag)
		}
	}
}

// waitTrace polls c until trace id holds at least spans spans, or deadline.
func waitTrace(ctx context.Context, c *Client, id string, spans int, deadline time.Time) (Trace, error) {
	for {
		tr, err := c.Trace(ctx, id)
		if err == nil && len(tr.Spans) >= spans {
			return tr, nil
		}
		if err != nil && !errors.Is(err, ErrNotFound) {
			return tr, err
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("trace %s: %d spans, want %d", id, len(tr.Spans), spans)
			}
			return tr, fmt.Errorf("%w (still, after waiting)", err)
		}
		select {
		case <-ctx.Done():
			return tr, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
