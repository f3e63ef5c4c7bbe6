package testkit

import (
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Ended is what a span recorder gives: the spans ended so far.
type Ended interface {
	Ended() []sdktrace.ReadOnlySpan
}

// WaitSpan waits until a span matching match has ended and returns it;
// failing, it says which spans did end.
func WaitSpan(t testing.TB, rec Ended, what string, match func(sdktrace.ReadOnlySpan) bool) sdktrace.ReadOnlySpan {
	t.Helper()
	var found sdktrace.ReadOnlySpan
	defer func() {
		if found == nil {
			var names []string
			for _, s := range rec.Ended() {
				names = append(names, s.Name()+"/"+s.SpanKind().String())
			}
			t.Logf("ended spans: %v", names)
		}
	}()
	Eventually(t, what+" to end", func() bool {
		for _, s := range rec.Ended() {
			if match(s) {
				found = s
				return true
			}
		}
		return false
	})
	return found
}

// MustAttr returns the value of s's attribute key, and fails the test
// without it.
func MustAttr(t testing.TB, s sdktrace.ReadOnlySpan, key string) attribute.Value {
	t.Helper()
	v, ok := AttrOf(s.Attributes(), key)
	if !ok {
		t.Fatalf("span %q has no attribute %s; has %v", s.Name(), key, s.Attributes())
	}
	return v
}
