package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
)

// An ErrorKind classifies why an outbound call failed, in the words an
// on-call engineer searches for. It is recorded on the client span as
// error.type.
type ErrorKind string

// The kinds telltale tells apart. Errors it cannot classify keep otelhttp's
// error.type (the Go type of the error).
const (
	KindDeadlineExceeded       ErrorKind = "deadline_exceeded"        // the request context's deadline passed
	KindCanceled               ErrorKind = "canceled"                 // the request context was canceled, e.g. the client went away
	KindConnectionRefused      ErrorKind = "connection_refused"       // nothing listens: the upstream is down
	KindConnectionReset        ErrorKind = "connection_reset"         // the peer reset or closed the connection mid-exchange
	KindTimeoutAwaitingHeaders ErrorKind = "timeout_awaiting_headers" // connected, request sent, no response headers in time (a black hole)
	KindDialTimeout            ErrorKind = "dial_timeout"             // the TCP connect did not finish in time
	KindTLSHandshakeTimeout    ErrorKind = "tls_handshake_timeout"    // the TLS handshake did not finish in time
	KindTLS                    ErrorKind = "tls_error"                // certificate or handshake failure
	KindDNS                    ErrorKind = "dns_error"                // the host name did not resolve
	KindMalformedResponse      ErrorKind = "malformed_response"       // the upstream did not speak HTTP
	KindTimeout                ErrorKind = "timeout"                  // another network timeout
)

// An Error is an outbound call's error as a telltale [Transport] returns it:
// the original error, unchanged in message and in what [errors.Is] and
// [errors.As] find, with its [ErrorKind].
type Error struct {
	Kind ErrorKind
	Err  error
}

// Error returns the original error's message.
func (e *Error) Error() string { return e.Err.Error() }

// Unwrap returns the original error.
func (e *Error) Unwrap() error { return e.Err }

// ErrorType returns the kind; OpenTelemetry's semantic conventions use it as
// the error.type attribute.
func (e *Error) ErrorType() string { return string(e.Kind) }

// Timeout reports whether the error is a timeout, as net.Error does, so that
// callers checking url.Error.Timeout keep working.
func (e *Error) Timeout() bool {
	switch e.Kind {
	case KindDeadlineExceeded, KindTimeoutAwaitingHeaders, KindDialTimeout, KindTLSHandshakeTimeout, KindTimeout:
		return true
	}
	var te interface{ Timeout() bool }
	return errors.As(e.Err, &te) && te.Timeout()
}

// classify wraps err in an [*Error] when its kind is known. ctxErr is the
// request context's error at the time of the failure: net/http reports a
// canceled context in several shapes, and the context tells which it was.
func classify(err, ctxErr error) error {
	if err == nil {
		return nil
	}
	var already *Error
	if errors.As(err, &already) {
		return err
	}
	if k := kindOf(err, ctxErr); k != "" {
		return &Error{Kind: k, Err: err}
	}
	return err
}

func kindOf(err, ctxErr error) ErrorKind {
	msg := err.Error()
	var (
		dnsErr  *net.DNSError
		recErr  tls.RecordHeaderError
		certErr *tls.CertificateVerificationError
		unkAuth x509.UnknownAuthorityError
		opErr   *net.OpError
		netErr  net.Error
	)
	// net/http's own timeouts also match context.DeadlineExceeded: tell
	// them apart first, by the state of the request's context.
	switch {
	case strings.Contains(msg, "timeout awaiting response headers"):
		return KindTimeoutAwaitingHeaders
	case strings.Contains(msg, "TLS handshake timeout"):
		return KindTLSHandshakeTimeout
	case errors.Is(ctxErr, context.DeadlineExceeded):
		return KindDeadlineExceeded
	case errors.Is(ctxErr, context.Canceled), errors.Is(err, context.Canceled):
		return KindCanceled
	case errors.Is(err, syscall.ECONNREFUSED):
		return KindConnectionRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return KindConnectionReset
	case errors.As(err, &dnsErr):
		return KindDNS
	case strings.Contains(msg, "malformed HTTP"):
		return KindMalformedResponse
	case errors.As(err, &recErr), errors.As(err, &certErr), errors.As(err, &unkAuth):
		return KindTLS
	case errors.As(err, &opErr) && opErr.Op == "dial" && opErr.Timeout():
		return KindDialTimeout
	case errors.Is(err, context.DeadlineExceeded):
		return KindDeadlineExceeded
	case errors.As(err, &netErr) && netErr.Timeout():
		return KindTimeout
	}
	return ""
}
