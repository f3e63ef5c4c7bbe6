package timeoutheader

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Header names.
const (
	// Connect is the Connect protocol's timeout header: the time the
	// caller will wait, in whole milliseconds.
	Connect = "Connect-Timeout-Ms"

	// Envoy is the header in which Envoy (and Istio) tell an upstream the
	// timeout of the route that called it.
	Envoy = "X-Envoy-Expected-Rq-Timeout-Ms"
)

// MaxDigits bounds the length of a value, as the Connect protocol does: ten
// digits of milliseconds is about 115 days. A longer value is malformed, so
// that a hostile client cannot make the parser do unbounded work or overflow
// a time.Duration.
const MaxDigits = 10

// ErrMalformed is wrapped by the errors of [Parse].
var ErrMalformed = errors.New("malformed timeout")

// Format writes the time left, d, as a header value: whole milliseconds,
// rounded down but at least 1 (as Connect's own client does: 0 would mean
// "already late" to some servers and "no timeout" to others). It returns ""
// when d needs more than [MaxDigits] digits, which the Connect protocol
// treats as no timeout: the header should then not be sent.
func Format(d time.Duration) string {
	v := strconv.FormatInt(max(int64(d/time.Millisecond), 1), 10)
	if len(v) > MaxDigits {
		return ""
	}
	return v
}

// Parse reads a header value: 1 to [MaxDigits] ASCII digits of
// milliseconds, nothing else (no sign, no space, no unit). Anything else
// returns an error wrapping [ErrMalformed] that quotes the value, truncated,
// so that it can be recorded.
func Parse(v string) (time.Duration, error) {
	if len(v) == 0 || len(v) > MaxDigits {
		return 0, malformed(v)
	}
	var ms int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, malformed(v)
		}
		ms = ms*10 + int64(c-'0')
	}
	return time.Duration(ms) * time.Millisecond, nil
}

func malformed(v string) error {
	const show = 32
	if len(v) > show {
		v = v[:show] + "..."
	}
	return fmt.Errorf("%w %q: want 1 to %d ASCII digits of milliseconds", ErrMalformed, v, MaxDigits)
}
