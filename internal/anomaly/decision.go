package anomaly

import (
	"strings"
	"sync"
)

// A Signature tells one kind of anomaly from another, for a budget that is
// fair to the rare ones: the route that served the request, the kind of
// anomaly, and where it was found — the line that leaked a body or started
// an orphan, the upstream that failed or lagged. Each part has low
// cardinality: a route template, a kind, a code location or an upstream
// name.
type Signature struct {
	Route string
	Kind  Kind
	Site  string
}

// String is the signature as log lines show it: "leak at guarded.go:165 on
// GET /api/count".
func (s Signature) String() string {
	var b strings.Builder
	b.WriteString(string(s.Kind))
	if s.Site != "" {
		b.WriteString(" at ")
		b.WriteString(s.Site)
	}
	if s.Route != "" {
		b.WriteString(" on ")
		b.WriteString(s.Route)
	}
	return b.String()
}

// A Kind is a kind of anomaly.
type Kind string

// The kinds of anomalies telltale finds.
const (
	KindLeak           Kind = "leak"            // a response body left open (Site: the call site)
	KindUpstreamFailed Kind = "upstream_failed" // a call that failed or answered 5xx (Site: the upstream)
	KindUpstreamSlow   Kind = "upstream_slow"   // a call past a slow threshold (Site: the upstream)
	KindServerError    Kind = "5xx"             // the request was answered with a 5xx (Site: error.type)
	KindPanic          Kind = "panic"           // the handler panicked
	KindDeadline       Kind = "deadline"        // answered because of its deadline, or overran it
	KindCallerGaveUp   Kind = "caller_gave_up"  // the client went away at or after the deadline it had propagated
	KindSlow           Kind = "slow"            // the request took longer than its slow threshold
	KindOrphan         Kind = "orphan"          // a goroutine outlived the request (Site: where it is blocked)
	KindReported       Kind = "reported"        // the handler reported it (Site: its reason)
)

// maxSignatures bounds the distinct signatures a request keeps.
const maxSignatures = 8

// A Decision is whether the spans of a request (or of a call made outside
// any request) that the head sampler dropped are exported after all:
// taken once, by the first replayed span, and then the answer for every
// span of the request, however late it comes.
type Decision struct {
	mu      sync.Mutex
	state   decisionState
	similar int64 // anomalies like the request's refused since the previous export
	sigs    []Signature
}

// NewDecision returns an undecided Decision on the anomalies sigs, for a
// replay outside any [Request].
func NewDecision(sigs ...Signature) *Decision {
	d := new(Decision)
	for _, sig := range sigs {
		d.addSignature(sig)
	}
	return d
}

type decisionState uint8

const (
	undecided decisionState = iota
	admitted
	refused
)

// Decide returns the decision, taking it with decide the first time: decide
// is given the request's signatures and returns whether the request is
// exported and, if it is, how many anomalies like it were refused since
// the previous one was exported.
func (d *Decision) Decide(decide func(sigs []Signature) (ok bool, similarRefused int64)) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state == undecided {
		ok, similar := decide(d.sigs)
		d.state, d.similar = refused, 0
		if ok {
			d.state, d.similar = admitted, similar
		}
	}
	return d.state == admitted
}

// Admitted reports whether the decision was taken, and to export.
func (d *Decision) Admitted() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state == admitted
}

// decided reports whether the decision was taken.
func (d *Decision) decided() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state != undecided
}

// SimilarRefused is how many anomalies like the request's were refused
// since the previous one was exported, once admitted.
func (d *Decision) SimilarRefused() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.similar
}

// addSignature adds sig to those the decision will be taken on, unless it
// is taken already or the request has as many as it keeps.
func (d *Decision) addSignature(sig Signature) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state != undecided || len(d.sigs) >= maxSignatures {
		return
	}
	for _, s := range d.sigs {
		if s == sig {
			return
		}
	}
	d.sigs = append(d.sigs, sig)
}

// setRoute gives the signatures found before the route was known their
// route.
func (d *Decision) setRoute(route string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range d.sigs {
		if d.sigs[i].Route == "" {
			d.sigs[i].Route = route
		}
	}
}

// Signatures returns the request's signatures, the first found first.
func (d *Decision) Signatures() []Signature {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Signature(nil), d.sigs...)
}
