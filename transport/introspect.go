package transport

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/telltale-go/telltale/internal/redact"
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

// describe describes rec for a report or an introspection, symbolizing its
// call site (through the cache): not for the request path.
func (t *Transport) describe(rec *record, now time.Time) BodyInfo {
	bi := BodyInfo{
		Status:    rec.status,
		Opened:    rec.start,
		Age:       now.Sub(rec.start),
		BytesRead: rec.bytesRead.Load(),
	}
	bi.Method, bi.URL = rec.req.Method, redact.URL(rec.req.URL)
	if rec.req.URL != nil {
		bi.Host = rec.req.URL.Host
	}
	bi.CallSite, bi.Stack = t.sites.lookup(t.cfg.sites, rec.pcs, rec.npcs)
	if rec.span != nil {
		if sc := rec.span.SpanContext(); sc.IsValid() {
			bi.TraceID, bi.SpanID = sc.TraceID().String(), sc.SpanID().String()
		}
	}
	return bi
}

// OpenBodies lists the oldest bodies the Transport tracks that are still
// open, at most max of them (all of them when max is zero or less), oldest
// first, with their call sites. Its cost grows with max, not with the
// number of open bodies: an operator may call it in the middle of a leak
// storm.
func (t *Transport) OpenBodies(max int) []BodyInfo {
	now := time.Now()
	var recs []*record
	if max > 0 {
		recs = t.reg.oldest(max)
	} else {
		t.reg.each(func(r *record) { recs = append(recs, r) })
		slices.SortFunc(recs, func(a, b *record) int { return a.start.Compare(b.start) })
	}
	out := make([]BodyInfo, 0, len(recs))
	for _, r := range recs {
		out = append(out, t.describe(r, now))
	}
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

// recentLeaks is how many leaks a Transport remembers for introspection.
const recentLeaks = 256

// leakLog keeps the most recent leaks, and counts all of them.
type leakLog struct {
	mu    sync.Mutex
	limit int
	ring  []Leak
	next  int
	total int64
}

func (l *leakLog) add(leak Leak) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total++
	if len(l.ring) < l.limit {
		l.ring = append(l.ring, leak)
		return
	}
	l.ring[l.next] = leak
	l.next = (l.next + 1) % l.limit
}

// recent returns the remembered leaks, oldest first, and the total count.
func (l *leakLog) recent() ([]Leak, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Leak, 0, len(l.ring))
	out = append(out, l.ring[l.next:]...)
	out = append(out, l.ring[:l.next]...)
	return out, l.total
}

// byCallSite orders infos for stable reports.
func byCallSite(a, b BodyInfo) int {
	return cmp.Or(cmp.Compare(a.CallSite.File, b.CallSite.File), cmp.Compare(a.CallSite.Line, b.CallSite.Line))
}
