package jaeger

import (
	"encoding/json"
	"testing"
)

// A trace as the query API returns it: a gateway's server span, two
// client spans (one with an event), and the upstream's server span under
// one of them.
const treeJSON = `{"traceID":"t1","processes":{"p1":{"serviceName":"gateway"},"p2":{"serviceName":"ads"}},"spans":[
 {"traceID":"t1","spanID":"c2","operationName":"GET ads","processID":"p1","startTime":1002000,"duration":900000,
  "references":[{"refType":"CHILD_OF","traceID":"t1","spanID":"s1"}],
  "tags":[{"key":"span.kind","type":"string","value":"client"},{"key":"http.response.status_code","type":"int64","value":504},{"key":"error.type","type":"string","value":"504"}],
  "logs":[{"timestamp":1252000,"fields":[{"key":"event","type":"string","value":"telltale.upstream.slow"},{"key":"telltale.upstream.slow.kind","type":"string","value":"ttfb"},{"key":"code.stacktrace","type":"string","value":"a\nb"}]}]},
 {"traceID":"t1","spanID":"s1","operationName":"GET /api/feed","processID":"p1","startTime":1000000,"duration":903000,
  "references":[],"tags":[{"key":"span.kind","type":"string","value":"server"},{"key":"telltale.replayed","type":"bool","value":true}]},
 {"traceID":"t1","spanID":"c1","operationName":"GET articles","processID":"p1","startTime":1001000,"duration":2000,
  "references":[{"refType":"CHILD_OF","traceID":"t1","spanID":"s1"}],"tags":[{"key":"span.kind","type":"string","value":"client"}]},
 {"traceID":"t1","spanID":"u1","operationName":"GET /items","processID":"p2","startTime":1003000,"duration":899000,
  "references":[{"refType":"CHILD_OF","traceID":"t1","spanID":"c2"}],"tags":[{"key":"span.kind","type":"string","value":"server"}]}
]}`

func TestTreeRendersChildrenUnderTheirParent(t *testing.T) {
	var tr Trace
	if err := json.Unmarshal([]byte(treeJSON), &tr); err != nil {
		t.Fatal(err)
	}
	want := `trace t1: 4 spans, 2 services
gateway GET /api/feed  +0µs 903ms  server  telltale.replayed=true
├─ gateway GET articles  +1ms 2ms  client
└─ gateway GET ads  +2ms 900ms  client 504  error.type=504
   │  · @250ms telltale.upstream.slow code.stacktrace=(2 lines) telltale.upstream.slow.kind=ttfb
   └─ ads GET /items  +3ms 899ms  server
`
	if got := tr.Tree(); got != want {
		t.Errorf("tree:\n%s\nwant:\n%s", got, want)
	}
}

// A span that names itself as its parent is shown as a root, once, and
// said to be its own parent.
func TestTreeShowsASelfParentedSpanAsARoot(t *testing.T) {
	tr := Trace{TraceID: "t2", Processes: map[string]TraceProcess{"p": {ServiceName: "svc"}}, Spans: []Span{
		{SpanID: "a", OperationName: "GET /x", ProcessID: "p", References: []Reference{{RefType: "CHILD_OF", SpanID: "a"}}},
		{SpanID: "b", OperationName: "GET y", ProcessID: "p", StartTime: 1000, References: []Reference{{RefType: "CHILD_OF", SpanID: "a"}}},
	}}
	want := `trace t2: 2 spans, 1 services
svc GET /x  +0µs 0µs  (its own parent)
└─ svc GET y  +1ms 0µs
`
	if got := tr.Tree(); got != want {
		t.Errorf("tree:\n%s\nwant:\n%s", got, want)
	}
	if roots := tr.Roots(); len(roots) != 1 || roots[0].SpanID != "a" {
		t.Errorf("roots %v, want a", roots)
	}
}
