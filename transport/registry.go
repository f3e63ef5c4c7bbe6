package transport

import (
	"container/heap"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// registryShards spreads the open bodies over independent locks, so that
// tracking does not serialise concurrent requests on one mutex.
const registryShards = 64

// registry holds every tracked open body of a Transport, in intrusive lists:
// adding and removing a body allocates nothing. Each shard's list is in the
// order the bodies were handed over, the newest at its head: the oldest
// bodies are at the tails, where the inspector and the age check start.
type registry struct {
	shards  [registryShards]shard
	over    shard        // bodies past the limit: only Transport.Close walks them
	count   atomic.Int64 // bodies in the registry
	limit   int64
	dropped atomic.Int64 // bodies not tracked because the registry was full
}

type shard struct {
	mu   sync.Mutex
	head *record       // the newest
	tail *record       // the oldest
	_    [64 - 24]byte // pads the 24 bytes above to 64, a cache line: no false sharing between shards
}

// add puts rec in a random shard. It reports false, and counts the body as
// dropped, when the registry already holds its limit.
func (g *registry) add(rec *record) bool {
	s, tracked := &g.shards[rand.Uint32()%registryShards], true
	if g.count.Add(1) > g.limit {
		g.count.Add(-1)
		g.dropped.Add(1)
		s, tracked = &g.over, false
	}
	s.mu.Lock()
	rec.shard.Store(s)
	rec.next = s.head
	if s.head != nil {
		s.head.prev = rec
	} else {
		s.tail = rec
	}
	s.head = rec
	s.mu.Unlock()
	return tracked
}

// remove takes rec out of the registry if it is there. Safe to call more
// than once and from any goroutine.
func (g *registry) remove(rec *record) {
	s := rec.shard.Load()
	if s == nil {
		return
	}
	s.mu.Lock()
	if rec.shard.Load() != s { // removed concurrently
		s.mu.Unlock()
		return
	}
	if rec.prev != nil {
		rec.prev.next = rec.next
	} else {
		s.head = rec.next
	}
	if rec.next != nil {
		rec.next.prev = rec.prev
	} else {
		s.tail = rec.prev
	}
	rec.prev, rec.next = nil, nil
	rec.shard.Store(nil)
	s.mu.Unlock()
	if s != &g.over {
		g.count.Add(-1)
	}
}

// each calls fn for every record in the registry. fn runs under a shard lock:
// it must not call back into the registry.
func (g *registry) each(fn func(*record)) {
	for i := range g.shards {
		g.shards[i].each(fn)
	}
}

// each calls fn for every record of the shard, under its lock.
func (s *shard) each(fn func(*record)) {
	s.mu.Lock()
	for r := s.head; r != nil; r = r.next {
		fn(r)
	}
	s.mu.Unlock()
}

// all returns every record, the tracked and those past the limit: what
// Transport.Close reports.
func (g *registry) all() []*record {
	var out []*record
	add := func(r *record) { out = append(out, r) }
	g.each(add)
	g.over.each(add)
	return out
}

// oldest returns at most n tracked records, the oldest first, at a cost
// that grows with n, not with the open bodies: it looks at the n oldest of
// each shard, from its tail. "Oldest" is by when the body was handed over;
// the records are returned sorted by when their request started.
func (g *registry) oldest(n int) []*record {
	h := make(recordHeap, 0, n)
	for i := range g.shards {
		s := &g.shards[i]
		s.mu.Lock()
		k := 0
		for r := s.tail; r != nil && k < n; r, k = r.prev, k+1 {
			if len(h) < n {
				heap.Push(&h, r)
			} else if r.start.Before(h[0].start) {
				h[0] = r
				heap.Fix(&h, 0)
			} else {
				break // the rest of the shard is newer still
			}
		}
		s.mu.Unlock()
	}
	slices.SortFunc(h, func(a, b *record) int { return a.start.Compare(b.start) })
	return h
}

// recordHeap is a max-heap of records by opening time: its root is the
// newest of those kept.
type recordHeap []*record

func (h recordHeap) Len() int           { return len(h) }
func (h recordHeap) Less(i, j int) bool { return h[i].start.After(h[j].start) }
func (h recordHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *recordHeap) Push(x any)        { *h = append(*h, x.(*record)) }
func (h *recordHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	*h = old[:len(old)-1]
	return r
}

// olderThan returns the records opened before cutoff, walking each shard
// from its oldest until it meets a body handed over after cutoff: the age
// check costs what it finds, not what is open.
func (g *registry) olderThan(cutoff time.Time) []*record {
	var old []*record
	for i := range g.shards {
		s := &g.shards[i]
		s.mu.Lock()
		for r := s.tail; r != nil && r.headers.Before(cutoff); r = r.prev {
			if r.start.Before(cutoff) && !r.upgraded && !longLived(r.req) {
				old = append(old, r)
			}
		}
		s.mu.Unlock()
	}
	return old
}
