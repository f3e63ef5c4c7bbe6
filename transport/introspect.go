package transport

import (
	"cmp"
	"slices"
	"time"
)

// BodyInfo describes a tracked response body. URLs are redacted: no
// credentials, no query values.
type BodyInfo struct {
	Method    string        `json:"method"`
	URL       string        `json:"url"`
	Host      string        `json:"host"`
	Status    int           `json:"status"`
	CallSite  CallSite      `json:"call_site"`
	Stack     string        `json:"stack,omitempty"`
	Opened    time.Time     `json:"opened"`
	Age       time.Duration `json:"age_ns"`
	BytesRead int64         `json:"bytes_read"`
	TraceID   string        `json:"trace_id,omitempty"`
	SpanID    string        `json:"span_id,omitempty"`
}

// OpenBodies lists the bodies the Transport tracks that are still open,
// oldest first, with their call sites.
func (t *Transport) OpenBodies() []BodyInfo {
	now := time.Now()
	var recs []*record
	t.reg.each(func(r *record) { recs = append(recs, r) })
	out := make([]BodyInfo, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.info(now))
	}
	slices.SortFunc(out, func(a, b BodyInfo) int { return a.Opened.Compare(b.Opened) })
	return out
}

// RecentLeaks returns the most recent leaks (up to 256), oldest first.
func (t *Transport) RecentLeaks() []Leak {
	l, _ := t.leaks.recent()
	return l
}

// Name returns the name given with [WithName], or "".
func (t *Transport) Name() string { return t.cfg.name }

// Stats are a Transport's counters since it was created.
type Stats struct {
	Open      int64 `json:"open"`      // tracked bodies still open
	Leaked    int64 `json:"leaked"`    // bodies reported as leaked
	Untracked int64 `json:"untracked"` // bodies not tracked because of the cap
}

// Stats returns the Transport's counters.
func (t *Transport) Stats() Stats {
	_, leaked := t.leaks.recent()
	return Stats{Open: t.reg.count.Load(), Leaked: leaked, Untracked: t.reg.dropped.Load()}
}

// byCallSite orders infos for stable reports.
func byCallSite(a, b BodyInfo) int {
	return cmp.Or(cmp.Compare(a.CallSite.File, b.CallSite.File), cmp.Compare(a.CallSite.Line, b.CallSite.Line))
}
