package testkit

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Eventually waits up to 5 s for cond, checking it every 5 ms, and fails
// the test, naming what it waited for, if it never holds.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 5s for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// AttrOf returns the value of key among attrs.
func AttrOf(attrs []attribute.KeyValue, key string) (attribute.Value, bool) {
	for _, a := range attrs {
		if string(a.Key) == key {
			return a.Value, true
		}
	}
	return attribute.Value{}, false
}

// SyncBuffer is a log sink safe for concurrent writers: leak reports are
// logged from goroutines of their own.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Logger returns a text logger writing to w.
func Logger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// SetDefaultLogger makes l slog's default logger and returns how to put
// the previous one back. Tests that use it must not run in parallel.
func SetDefaultLogger(l *slog.Logger) (restore func()) {
	prev := slog.Default()
	slog.SetDefault(l)
	return func() { slog.SetDefault(prev) }
}

// SpanDiff lists how b differs from a, as a person reading both in a
// trace UI would see it, ids and times aside: the name, the kind, the
// status, the attributes (keys and values; for a key ending in _ms, the
// key only: a duration differs from run to run), and the events (names,
// attribute keys). Keys under telltale.replay (the mark of a replay and
// its counts) are left out, and so is network.peer.port, which names the
// client's connection, not the request. It is how a test checks that the
// same request exported sampled and replayed reads the same.
func SpanDiff(a, b sdktrace.ReadOnlySpan) []string {
	var diffs []string
	if a.Name() != b.Name() {
		diffs = append(diffs, fmt.Sprintf("name %q, %q", a.Name(), b.Name()))
	}
	if a.SpanKind() != b.SpanKind() {
		diffs = append(diffs, fmt.Sprintf("kind %v, %v", a.SpanKind(), b.SpanKind()))
	}
	if a.Status() != b.Status() {
		diffs = append(diffs, fmt.Sprintf("status %v, %v", a.Status(), b.Status()))
	}
	as, bs := comparable(a.Attributes()), comparable(b.Attributes())
	for k, v := range as {
		if w, ok := bs[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("attribute %s=%s only in the first", k, v))
		} else if v != w {
			diffs = append(diffs, fmt.Sprintf("attribute %s=%s, %s", k, v, w))
		}
	}
	for k, w := range bs {
		if _, ok := as[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("attribute %s=%s only in the second", k, w))
		}
	}
	ae, be := eventShapes(a.Events()), eventShapes(b.Events())
	if !slices.Equal(ae, be) {
		diffs = append(diffs, fmt.Sprintf("events %v, %v", ae, be))
	}
	return diffs
}

func comparable(attrs []attribute.KeyValue) map[string]string {
	m := make(map[string]string, len(attrs))
	for _, a := range attrs {
		k := string(a.Key)
		if strings.HasPrefix(k, "telltale.replay") || k == "network.peer.port" {
			continue
		}
		v := a.Value.Emit() + " (" + a.Value.Type().String() + ")"
		if strings.HasSuffix(k, "_ms") {
			v = "(" + a.Value.Type().String() + ")"
		}
		m[k] = v
	}
	return m
}

func eventShapes(evs []sdktrace.Event) []string {
	out := make([]string, 0, len(evs))
	for _, ev := range evs {
		keys := make([]string, 0, len(ev.Attributes))
		for _, a := range ev.Attributes {
			keys = append(keys, string(a.Key))
		}
		slices.Sort(keys)
		out = append(out, ev.Name+"{"+strings.Join(keys, ",")+"}")
	}
	return out
}
