package errkind_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"

	"github.com/telltale-go/telltale/internal/errkind"
	"github.com/telltale-go/telltale/vocab"
)

// Each shape in which Go reports an HTTP failure gets the kind an on-call
// engineer would name it by; the request context's state decides between
// the shapes that match context errors. The transport and middleware
// fault matrices check the same against real failures.
func TestOf(t *testing.T) {
	dial := func(err error) error { return &net.OpError{Op: "dial", Net: "tcp", Err: err} }
	wrap := func(err error) error { return &url.Error{Op: "Get", URL: "http://h/", Err: err} }
	cases := []struct {
		name   string
		err    error
		ctxErr error
		want   string
	}{
		{"refused", wrap(dial(os.NewSyscallError("connect", syscall.ECONNREFUSED))), nil, vocab.ErrorConnectionRefused},
		{"reset", wrap(&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}), nil, vocab.ErrorConnectionReset},
		{"unexpected EOF", io.ErrUnexpectedEOF, nil, vocab.ErrorConnectionReset},
		{"header timeout", errors.New("net/http: timeout awaiting response headers"), context.DeadlineExceeded, vocab.ErrorTimeoutAwaitingHeaders},
		{"tls handshake timeout", errors.New("net/http: TLS handshake timeout"), nil, vocab.ErrorTLSHandshakeTimeout},
		{"deadline", wrap(context.DeadlineExceeded), context.DeadlineExceeded, vocab.ErrorDeadlineExceeded},
		{"deadline without context", context.DeadlineExceeded, nil, vocab.ErrorDeadlineExceeded},
		{"canceled", wrap(context.Canceled), context.Canceled, vocab.ErrorCanceled},
		{"canceled context, other error", io.ErrUnexpectedEOF, context.Canceled, vocab.ErrorCanceled},
		{"dns", wrap(dial(&net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true})), nil, vocab.ErrorDNS},
		{"malformed", errors.New(`net/http: HTTP/1.x transport connection broken: malformed HTTP response "SSH-2.0"`), nil, vocab.ErrorMalformedResponse},
		{"unknown authority", wrap(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), nil, vocab.ErrorTLS},
		{"host name", wrap(x509.HostnameError{Host: "h"}), nil, vocab.ErrorTLS},
		{"dial timeout", wrap(dial(timeoutErr{})), nil, vocab.ErrorDialTimeout},
		{"read timeout", wrap(&net.OpError{Op: "read", Err: timeoutErr{}}), nil, vocab.ErrorTimeout},
		{"other", fmt.Errorf("something else"), nil, ""},
		{"nil", nil, nil, ""},
	}
	for _, c := range cases {
		if got := errkind.Of(c.err, c.ctxErr); got != c.want {
			t.Errorf("%s: Of(%v, %v) = %q, want %q", c.name, c.err, c.ctxErr, got, c.want)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// A Typed error is its original to errors.Is and errors.As, with the same
// message, and carries its kind.
func TestTyped(t *testing.T) {
	orig := &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}
	var err error = &errkind.Typed{Kind: vocab.ErrorConnectionRefused, Err: orig}
	var op *net.OpError
	if !errors.As(err, &op) || op != orig || err.Error() != orig.Error() || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Error("Typed hides its original")
	}
	if err.(interface{ ErrorType() string }).ErrorType() != vocab.ErrorConnectionRefused {
		t.Error("ErrorType")
	}
}
