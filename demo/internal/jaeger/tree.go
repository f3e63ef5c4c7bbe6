package jaeger

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// treeTags are the span tags [Trace.Tree] shows, when set, after the
// status: what tells an anomalous span from a healthy one.
var treeTags = []string{
	"error.type", "peer.service",
	"telltale.anomaly", "telltale.replayed", "telltale.degraded",
	"telltale.deadline.source", "telltale.deadline.timeout_ms", "telltale.deadline.exceeded", "telltale.deadline.overrun_ms",
	"telltale.client_gone", "telltale.client_gone.at_deadline",
	"telltale.leaks", "telltale.ttfb_ms", "telltale.response.body.end",
}

// Roots returns the spans of t that have no parent in t, in start order. A
// span that names itself as its parent is a root too.
func (t Trace) Roots() []Span {
	ids := make(map[string]bool, len(t.Spans))
	for _, s := range t.Spans {
		ids[s.SpanID] = true
	}
	var roots []Span
	for _, s := range t.Spans {
		if p := s.Parent(); p == "" || p == s.SpanID || !ids[p] {
			roots = append(roots, s)
		}
	}
	sortByStart(roots)
	return roots
}

// Children returns the spans of t whose parent is s, in start order.
func (t Trace) Children(s Span) []Span {
	var out []Span
	for _, c := range t.Spans {
		if c.SpanID != s.SpanID && c.Parent() == s.SpanID {
			out = append(out, c)
		}
	}
	sortByStart(out)
	return out
}

func sortByStart(spans []Span) {
	slices.SortStableFunc(spans, func(a, b Span) int {
		if a.StartTime != b.StartTime {
			return int(a.StartTime - b.StartTime)
		}
		return strings.Compare(a.OperationName, b.OperationName)
	})
}

// Tree renders t as text, a span a line, children under their parent:
// service, name, start (from the trace's first span), duration, status and
// the tags that tell an anomaly, then the span's events, each at its time
// from the span's start. A stack trace is summed up as its line count.
func (t Trace) Tree() string {
	var b strings.Builder
	services := map[string]bool{}
	var first int64
	for i, s := range t.Spans {
		services[t.Service(s)] = true
		if i == 0 || s.StartTime < first {
			first = s.StartTime
		}
	}
	fmt.Fprintf(&b, "trace %s: %d spans, %d services\n", t.TraceID, len(t.Spans), len(services))
	seen := map[string]bool{}
	var walk func(s Span, prefix, branch string)
	walk = func(s Span, prefix, branch string) {
		if seen[s.SpanID] {
			return // a cycle: each span once
		}
		seen[s.SpanID] = true
		fmt.Fprintf(&b, "%s%s%s\n", prefix, branch, t.spanLine(s, first))
		below := prefix
		switch branch {
		case "├─ ":
			below += "│  "
		case "└─ ":
			below += "   "
		}
		children := t.Children(s)
		events := eventLines(s)
		for _, ev := range events {
			bar := "   "
			if len(children) > 0 {
				bar = "│  "
			}
			fmt.Fprintf(&b, "%s%s· %s\n", below, bar, ev)
		}
		for i, c := range children {
			if i == len(children)-1 {
				walk(c, below, "└─ ")
			} else {
				walk(c, below, "├─ ")
			}
		}
	}
	for _, r := range t.Roots() {
		walk(r, "", "")
	}
	return b.String()
}

// spanLine is one span's line of [Trace.Tree].
func (t Trace) spanLine(s Span, first int64) string {
	line := fmt.Sprintf("%s %s  +%s %s", t.Service(s), s.OperationName, micros(s.StartTime-first), micros(s.Duration))
	if kind, ok := s.Tag("span.kind"); ok {
		line += "  " + kind
	}
	if status, ok := s.Tag("http.response.status_code"); ok {
		line += " " + status
	}
	if p := s.Parent(); p == s.SpanID {
		line += "  (its own parent)"
	}
	var tags []string
	for _, k := range treeTags {
		if v, ok := s.Tag(k); ok {
			tags = append(tags, k+"="+v)
		}
	}
	if len(tags) > 0 {
		line += "  " + strings.Join(tags, " ")
	}
	return line
}

// eventLines are a span's events, in time order, for [Trace.Tree].
func eventLines(s Span) []string {
	logs := slices.Clone(s.Logs)
	slices.SortStableFunc(logs, func(a, b Log) int { return int(a.Timestamp - b.Timestamp) })
	var out []string
	for _, l := range logs {
		name, _ := l.Field("event")
		var fields []string
		for _, f := range l.Fields {
			switch f.Key {
			case "event":
			case "code.stacktrace":
				fields = append(fields, fmt.Sprintf("code.stacktrace=(%d lines)", strings.Count(f.String(), "\n")+1))
			default:
				fields = append(fields, f.Key+"="+f.String())
			}
		}
		slices.Sort(fields)
		out = append(out, fmt.Sprintf("@%s %s %s", micros(l.Timestamp-s.StartTime), name, strings.Join(fields, " ")))
	}
	return out
}

// micros writes a duration given in microseconds, to the millisecond.
func micros(us int64) string {
	d := time.Duration(us) * time.Microsecond
	if d < time.Millisecond {
		return fmt.Sprintf("%dµs", us)
	}
	return d.Round(time.Millisecond).String()
}
