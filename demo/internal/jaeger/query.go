package jaeger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// Client reads traces through Jaeger's HTTP query API (the one its UI uses).
type Client struct {
	// Base is the query service URL; empty means [QueryURL].
	Base string
	// HTTP is the client used; nil means http.DefaultClient.
	HTTP *http.Client
}

// ErrNotFound is returned by [Client.Trace] for a trace Jaeger does not hold.
var ErrNotFound = errors.New("jaeger: trace not found")

// Trace is one trace as the query API returns it.
type Trace struct {
	// TraceID is the hex trace id.
	TraceID string `json:"traceID"`
	// Spans are the trace's spans, in no particular order.
	Spans []Span `json:"spans"`
	// Processes maps a span's ProcessID to the service that emitted it.
	Processes map[string]TraceProcess `json:"processes"`
}

// Span is one span of a [Trace].
type Span struct {
	// TraceID is the hex trace id.
	TraceID string `json:"traceID"`
	// SpanID is the hex span id.
	SpanID string `json:"spanID"`
	// OperationName is the span name.
	OperationName string `json:"operationName"`
	// ProcessID keys [Trace.Processes].
	ProcessID string `json:"processID"`
	// Tags are the span attributes (plus span.kind, otel.status_code...).
	Tags []KeyValue `json:"tags"`
	// Logs are the span events; the event name is in field "event".
	Logs []Log `json:"logs"`
	// StartTime is in microseconds since the epoch.
	StartTime int64 `json:"startTime"`
	// Duration is in microseconds.
	Duration int64 `json:"duration"`
	// References link the span to its parent.
	References []Reference `json:"references"`
}

// Reference links a span to another: refType CHILD_OF names its parent.
type Reference struct {
	// RefType is CHILD_OF or FOLLOWS_FROM.
	RefType string `json:"refType"`
	// TraceID and SpanID name the other span.
	TraceID string `json:"traceID"`
	SpanID  string `json:"spanID"`
}

// Parent returns the span id of s's parent, or "" for a root span.
func (s Span) Parent() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}

// TraceProcess names the service a span came from.
type TraceProcess struct {
	// ServiceName is the resource's service.name.
	ServiceName string `json:"serviceName"`
}

// Log is a span event.
type Log struct {
	// Timestamp is in microseconds since the epoch.
	Timestamp int64 `json:"timestamp"`
	// Fields are the event attributes; "event" holds its name.
	Fields []KeyValue `json:"fields"`
}

// KeyValue is a typed attribute.
type KeyValue struct {
	// Key is the attribute name.
	Key string `json:"key"`
	// Type is string, bool, int64, float64 or binary.
	Type string `json:"type"`
	// Value is the decoded JSON value.
	Value any `json:"value"`
}

// String returns the value as text; integers print without a fraction.
func (kv KeyValue) String() string {
	switch v := kv.Value.(type) {
	case string:
		return v
	case float64:
		if v == float64(int64(v)) {
			return strconv.FormatInt(int64(v), 10)
		}
		return strconv.FormatFloat(v, 'g', -1, 64)
	default:
		return fmt.Sprint(v)
	}
}

// Tag returns the value of the span tag key, and whether it is set.
func (s Span) Tag(key string) (string, bool) { return lookup(s.Tags, key) }

// Field returns the value of the log field key, and whether it is set.
func (l Log) Field(key string) (string, bool) { return lookup(l.Fields, key) }

// Event returns the first log of s whose event name is name.
func (s Span) Event(name string) (Log, bool) {
	for _, l := range s.Logs {
		if ev, _ := l.Field("event"); ev == name {
			return l, true
		}
	}
	return Log{}, false
}

func lookup(kvs []KeyValue, key string) (string, bool) {
	for _, kv := range kvs {
		if kv.Key == key {
			return kv.String(), true
		}
	}
	return "", false
}

// Service returns the service name of span s of t.
func (t Trace) Service(s Span) string { return t.Processes[s.ProcessID].ServiceName }

type response struct {
	Data   []Trace `json:"data"`
	Errors []struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	} `json:"errors"`
}

// Trace fetches one trace by id.
func (c *Client) Trace(ctx context.Context, id string) (Trace, error) {
	traces, err := c.get(ctx, "/api/traces/"+url.PathEscape(id))
	if err != nil {
		return Trace{}, err
	}
	if len(traces) == 0 {
		return Trace{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return traces[0], nil
}

// Traces fetches the most recent traces (at most limit) of service.
func (c *Client) Traces(ctx context.Context, service string, limit int) ([]Trace, error) {
	q := url.Values{"service": {service}, "limit": {strconv.Itoa(limit)}, "lookback": {"1h"}}
	return c.get(ctx, "/api/traces?"+q.Encode())
}

func (c *Client) get(ctx context.Context, path string) ([]Trace, error) {
	base := c.Base
	if base == "" {
		base = QueryURL
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return nil, fmt.Errorf("jaeger: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jaeger: query: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("jaeger: query: %w", err)
	}
	if resp.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, path)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jaeger: query %s: %s: %.200s", path, resp.Status, body)
	}
	var r response
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("jaeger: query %s: %w", path, err)
	}
	if len(r.Errors) > 0 && len(r.Data) == 0 {
		if r.Errors[0].Code == http.StatusNotFound {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, path)
		}
		return nil, fmt.Errorf("jaeger: query %s: %s", path, r.Errors[0].Msg)
	}
	return r.Data, nil
}

// TraceURL returns the UI address of trace id.
func TraceURL(base, id string) string {
	if base == "" {
		base = QueryURL
	}
	return base + "/trace/" + id
}

// TracesURL returns the API address listing the recent traces of service.
func TracesURL(base, service string) string {
	if base == "" {
		base = QueryURL
	}
	return base + "/api/traces?" + url.Values{"service": {service}}.Encode()
}
