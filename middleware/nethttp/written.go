package nethttp

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/felixge/httpsnoop"
)

// written notes whether a handler answered: a final status, a byte, a
// flush (which sends the headers) or a hijacked connection. Informational
// statuses (1xx but 101) leave the answer to come.
type written struct {
	wrote, hijacked bool
}

func (s *written) header(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols || code < 100 {
		s.wrote = true
	}
}

// The optional interfaces of a ResponseWriter that a handler may ask for,
// and that the writer Deadline hands on keeps exactly (as httpsnoop does).
type (
	flushErrorer      interface{ FlushError() error }
	readDeadliner     interface{ SetReadDeadline(time.Time) error }
	writeDeadliner    interface{ SetWriteDeadline(time.Time) error }
	fullDuplexEnabler interface{ EnableFullDuplex() error }
)

// writerInterfaces is the set of optional interfaces w has, a bit each.
func writerInterfaces(w http.ResponseWriter) uint16 {
	var set uint16
	has := func(bit uint16, ok bool) {
		if ok {
			set |= bit
		}
	}
	_, ok := w.(http.Flusher)
	has(1<<0, ok)
	_, ok = w.(flushErrorer)
	has(1<<1, ok)
	_, ok = w.(http.CloseNotifier) //nolint:staticcheck // kept for the handlers that still ask
	has(1<<2, ok)
	_, ok = w.(http.Hijacker)
	has(1<<3, ok)
	_, ok = w.(io.ReaderFrom)
	has(1<<4, ok)
	_, ok = w.(readDeadliner)
	has(1<<5, ok)
	_, ok = w.(writeDeadliner)
	has(1<<6, ok)
	_, ok = w.(fullDuplexEnabler)
	has(1<<7, ok)
	_, ok = w.(http.Pusher)
	has(1<<8, ok)
	_, ok = w.(io.StringWriter)
	has(1<<9, ok)
	return set
}

// The sets of net/http's own writers, also behind otelhttp, which keeps
// them: HTTP/1.1's, and HTTP/2's.
var (
	setHTTP1 = writerInterfaces(&watchedHTTP1{})
	setHTTP2 = writerInterfaces(&watchedHTTP2{})
)

// watch returns the writer Deadline hands on — w, noting in the returned
// written whether the handler answered — with exactly the optional
// interfaces w has, and Unwrap for http.ResponseController. For the sets
// of net/http's own writers, a writer of telltale's: one allocation; for
// any other, httpsnoop's, which keeps every combination at the price of a
// closure per hook.
func watch(w http.ResponseWriter) (http.ResponseWriter, *written) {
	switch writerInterfaces(w) {
	case setHTTP1:
		ww := &watchedHTTP1{watched{ResponseWriter: w}}
		return ww, &ww.written
	case setHTTP2:
		ww := &watchedHTTP2{watched{ResponseWriter: w}}
		return ww, &ww.written
	}
	s := new(written)
	return s.snoop(w), s
}

// watched is the writer Deadline hands on: the methods of every
// ResponseWriter, and the optional ones net/http's HTTP/1.1 and HTTP/2
// writers both have; it is only used as watchedHTTP1 or watchedHTTP2,
// which add those of their own.
type watched struct {
	http.ResponseWriter
	written
}

func (w *watched) WriteHeader(code int) {
	w.header(code)
	w.ResponseWriter.WriteHeader(code)
}

func (w *watched) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach w's own methods.
func (w *watched) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *watched) Flush() {
	w.wrote = true
	w.ResponseWriter.(http.Flusher).Flush()
}

func (w *watched) FlushError() error {
	w.wrote = true
	return w.ResponseWriter.(flushErrorer).FlushError()
}

func (w *watched) CloseNotify() <-chan bool {
	return w.ResponseWriter.(http.CloseNotifier).CloseNotify() //nolint:staticcheck // kept for the handlers that still ask
}

func (w *watched) SetReadDeadline(t time.Time) error {
	return w.ResponseWriter.(readDeadliner).SetReadDeadline(t)
}

func (w *watched) SetWriteDeadline(t time.Time) error {
	return w.ResponseWriter.(writeDeadliner).SetWriteDeadline(t)
}

func (w *watched) EnableFullDuplex() error {
	return w.ResponseWriter.(fullDuplexEnabler).EnableFullDuplex()
}

func (w *watched) WriteString(s string) (int, error) {
	w.wrote = true
	return w.ResponseWriter.(io.StringWriter).WriteString(s)
}

// watchedHTTP1 has the interfaces of net/http's HTTP/1.1 writer.
type watchedHTTP1 struct{ watched }

func (w *watchedHTTP1) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := w.ResponseWriter.(http.Hijacker).Hijack()
	if err == nil {
		w.hijacked = true
	}
	return conn, rw, err
}

func (w *watchedHTTP1) ReadFrom(src io.Reader) (int64, error) {
	w.wrote = true
	return w.ResponseWriter.(io.ReaderFrom).ReadFrom(src)
}

// watchedHTTP2 has the interfaces of net/http's HTTP/2 writer.
type watchedHTTP2 struct{ watched }

func (w *watchedHTTP2) Push(target string, opts *http.PushOptions) error {
	return w.ResponseWriter.(http.Pusher).Push(target, opts)
}

// snoop wraps w with httpsnoop, which keeps the interfaces w has, whatever
// they are.
func (s *written) snoop(w http.ResponseWriter) http.ResponseWriter {
	return httpsnoop.Wrap(w, httpsnoop.Hooks{
		WriteHeader: func(next httpsnoop.WriteHeaderFunc) httpsnoop.WriteHeaderFunc {
			return func(code int) {
				s.header(code)
				next(code)
			}
		},
		// WriteString and FlushError go through these two as well.
		Write: func(next httpsnoop.WriteFunc) httpsnoop.WriteFunc {
			return func(b []byte) (int, error) {
				s.wrote = true
				return next(b)
			}
		},
		Flush: func(next httpsnoop.FlushFunc) httpsnoop.FlushFunc {
			return func() {
				s.wrote = true
				next()
			}
		},
		ReadFrom: func(next httpsnoop.ReadFromFunc) httpsnoop.ReadFromFunc {
			return func(src io.Reader) (int64, error) {
				s.wrote = true
				return next(src)
			}
		},
		Hijack: func(next httpsnoop.HijackFunc) httpsnoop.HijackFunc {
			return func() (net.Conn, *bufio.ReadWriter, error) {
				conn, rw, err := next()
				if err == nil {
					s.hijacked = true
				}
				return conn, rw, err
			}
		},
	})
}
