package errkind

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/telltale-go/telltale/vocab"
)

// Of returns the kind of err, one of the vocab.Error* values, or "" when it
// is none of them. ctxErr is the request context's error at the time of the
// failure, if known: net/http reports a canceled or expired context in
// several shapes, and the context tells which it was.
func Of(err, ctxErr error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	var (
		dnsErr  *net.DNSError
		recErr  tls.RecordHeaderError
		certErr *tls.CertificateVerificationError
		unkAuth x509.UnknownAuthorityError
		hostErr x509.HostnameError
		invErr  x509.CertificateInvalidError
		opErr   *net.OpError
		netErr  net.Error
	)
	// net/http's own timeouts also match context.DeadlineExceeded: tell
	// them apart first, by the state of the request's context.
	switch {
	case strings.Contains(msg, "timeout awaiting response headers"):
		return vocab.ErrorTimeoutAwaitingHeaders
	case strings.Contains(msg, "TLS handshake timeout"):
		return vocab.ErrorTLSHandshakeTimeout
	case errors.Is(ctxErr, context.DeadlineExceeded):
		return vocab.ErrorDeadlineExceeded
	case errors.Is(ctxErr, context.Canceled), errors.Is(err, context.Canceled):
		return vocab.ErrorCanceled
	case errors.Is(err, syscall.ECONNREFUSED):
		return vocab.ErrorConnectionRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return vocab.ErrorConnectionReset
	case errors.As(err, &dnsErr):
		return vocab.ErrorDNS
	case strings.Contains(msg, "malformed HTTP"):
		return vocab.ErrorMalformedResponse
	case errors.As(err, &recErr), errors.As(err, &certErr), errors.As(err, &unkAuth),
		errors.As(err, &hostErr), errors.As(err, &invErr):
		return vocab.ErrorTLS
	case errors.As(err, &opErr) && opErr.Op == "dial" && opErr.Timeout():
		return vocab.ErrorDialTimeout
	case errors.Is(err, context.DeadlineExceeded):
		return vocab.ErrorDeadlineExceeded
	case errors.As(err, &netErr) && netErr.Timeout():
		return vocab.ErrorTimeout
	}
	return ""
}

// Typed is an error carrying its kind, for instrumentation that reads
// error.type from an ErrorType method (otelhttp does). It never reaches the
// caller: whoever wraps an error in it unwraps it again.
type Typed struct {
	Kind string
	Err  error
}

// Error returns the original error's message.
func (e *Typed) Error() string { return e.Err.Error() }

// Unwrap returns the original error.
func (e *Typed) Unwrap() error { return e.Err }

// ErrorType returns the kind.
func (e *Typed) ErrorType() string { return e.Kind }
