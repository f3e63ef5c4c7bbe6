package transport

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"runtime"
)

// ErrLeakRepaired is returned by Read on a body that telltale closed because
// it leaked (it was unreachable, its scope ended, it grew too old, or the
// Transport was closed): the code reading it runs after the request it
// belonged to. errors.Is recognises it.
var ErrLeakRepaired = errors.New("transport: response body was closed by telltale as leaked")

// track hands the caller a copy of the base transport's response whose body
// is tracked. The copy matters: net/http's read loop keeps its own
// *http.Response alive until the body is finished, so a wrapper stored in
// that struct would stay reachable and hide a leak from the garbage
// collector.
func (t *Transport) track(rec *record, resp *http.Response) *http.Response {
	orig := rec.orig
	if orig == nil { // the base answered without reaching innerTransport's end: nothing to track
		t.finish(rec, finishNoBody, 0, nil)
		return resp
	}
	orig.Body = rec.under // otelhttp's wrapper of the placeholder is dropped
	if orig.Body == nil {
		orig.Body = http.NoBody // as otelhttp makes it, for RoundTrippers that leave it nil
	}
	if orig.Request == rec.forwarded {
		// Response.Request is the request the caller sent, as the base
		// transport alone would have answered it, not the copy telltale
		// and otelhttp forwarded (with a backstop deadline and a
		// traceparent).
		orig.Request = rec.req
	}
	if holdsNothing(rec.under) {
		// http.NoBody, HTTP/2's empty bodies: nothing can leak. The
		// caller gets the body as the base returned it.
		t.finish(rec, finishNoBody, 0, nil)
		return orig
	}
	b := &body{rec: rec, resp: *orig}
	b.resp.Body = b
	if _, ok := rec.under.(io.ReadWriteCloser); ok && (orig.StatusCode == http.StatusSwitchingProtocols ||
		rec.req.Method == http.MethodConnect && orig.StatusCode/100 == 2) {
		rec.upgraded = true
		b.resp.Body = upgradedBody{b}
	}
	t.inst.bodyOpened()
	if !t.reg.add(rec) {
		t.inst.bodyUntracked()
	}
	if s := scopeFrom(rec.Context); s != nil {
		s.add(rec)
	}
	b.cleanup = runtime.AddCleanup(b, (*record).unreachable, rec)
	return &b.resp
}

// holdsNothing reports whether a response body can hold no resource: nil,
// or of a type without fields (http.NoBody, HTTP/2's body of a response
// that ended with its headers). Such a body is handed over untouched and
// not tracked. Every other body is tracked, whatever the status code or
// Content-Length say: an HTTP/2 response with Content-Length: 0 can still
// carry trailers, and a hand-written RoundTripper's body may hold data
// whatever its ContentLength field says.
func holdsNothing(b io.ReadCloser) bool {
	return b == nil || reflect.TypeOf(b).Size() == 0
}

// body is the response body handed to the caller. It holds the caller's
// copy of the response, so that trailers net/http writes into its own copy
// at the end of the body can be copied over.
type body struct {
	resp    http.Response
	rec     *record
	cleanup runtime.Cleanup
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.rec.read(p)
	if err == io.EOF {
		b.syncTrailer()
	}
	runtime.KeepAlive(b) // a body being read is not unreachable
	return n, err
}

// Close drains what is left of the body (up to the drain limit), closes it
// and ends the request's span. It is idempotent and safe to call from any
// goroutine, concurrently with Read.
func (b *body) Close() error {
	err, drainedToEOF := b.rec.close()
	if drainedToEOF {
		b.syncTrailer()
	}
	b.cleanup.Stop()
	return err
}

// syncTrailer gives the caller's response the trailers net/http wrote into
// its own when the body reached its end. Announced trailers share one map
// already; unannounced ones (grpc-status, http.TrailerPrefix) arrive in a
// map net/http creates at the end of the body.
func (b *body) syncTrailer() {
	if t := b.rec.orig.Trailer; t != nil {
		b.resp.Trailer = t
	}
}

// upgradedBody is the body of a 101 Switching Protocols response, or of a
// successful CONNECT: the connection itself, writable.
type upgradedBody struct{ *body }

func (u upgradedBody) Write(p []byte) (int, error) {
	n, err := u.rec.under.(io.Writer).Write(p)
	runtime.KeepAlive(u.body)
	return n, err
}

// CloseWrite half-closes the connection, as net/http's 101 body does
// (httputil.ReverseProxy relies on it).
func (u upgradedBody) CloseWrite() error {
	if cw, ok := u.rec.under.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return fmt.Errorf("transport: CloseWrite: %w", http.ErrNotSupported)
}

// placeholderBody stands for the real body while otelhttp holds the
// response; nobody reads it.
type placeholderBody struct{}

var errPlaceholder = errors.New("transport: internal placeholder body used")

func (placeholderBody) Read([]byte) (int, error)  { return 0, errPlaceholder }
func (placeholderBody) Write([]byte) (int, error) { return 0, errPlaceholder }
func (placeholderBody) Close() error              { return nil }

func (r *record) read(p []byte) (int, error) {
	if r.repaired.Load() {
		return 0, ErrLeakRepaired
	}
	n, err := r.under.Read(p)
	r.bytesRead.Add(int64(n))
	if err != nil {
		if r.repaired.Load() {
			return n, ErrLeakRepaired
		}
		if r.state.CompareAndSwap(stateOpen, stateDone) {
			if err == io.EOF {
				r.t.finish(r, finishEOF, 0, nil)
			} else {
				r.t.finish(r, finishReadError, 0, err)
			}
		}
	}
	return n, err
}

// close drains and closes the body; it reports whether the drain reached
// the end of the body.
func (r *record) close() (error, bool) {
	if r.state.CompareAndSwap(stateOpen, stateClosing) {
		drained, eof := r.drain()
		err := r.closeUnder()
		r.state.Store(stateDone)
		how := finishClosedEarly
		if eof {
			how = finishClosedDrained
		}
		r.t.finish(r, how, drained, nil)
		return err, eof
	}
	return r.closeUnder(), false
}

// closeUnder closes the real body once.
func (r *record) closeUnder() error {
	if r.underClosed.CompareAndSwap(false, true) {
		return r.under.Close()
	}
	return nil
}
