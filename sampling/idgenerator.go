package sampling

import (
	"context"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/telltale-go/telltale/internal/anomaly"
)

// IDGenerator returns an ID generator that gives the spans telltale replays
// the ids they had when the head sampler dropped them — so that they land
// in the request's own trace, under the parent the upstreams and the logs
// already named — and leaves every other span to inner. A nil inner makes
// random ids, as the SDK's default generator does.
func IDGenerator(inner sdktrace.IDGenerator) sdktrace.IDGenerator {
	return idGenerator{inner: inner}
}

type idGenerator struct{ inner sdktrace.IDGenerator }

func (g idGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if r := anomaly.FromContext(ctx); r != nil {
		return r.IDs()
	}
	if g.inner != nil {
		return g.inner.NewIDs(ctx)
	}
	return anomaly.RandomTraceID(), anomaly.RandomSpanID()
}

func (g idGenerator) NewSpanID(ctx context.Context, traceID trace.TraceID) trace.SpanID {
	if r := anomaly.FromContext(ctx); r != nil && r.TraceID() == traceID {
		_, sid := r.IDs()
		return sid
	}
	if g.inner != nil {
		return g.inner.NewSpanID(ctx, traceID)
	}
	return anomaly.RandomSpanID()
}
