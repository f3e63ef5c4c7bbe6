package transport

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// TimeoutHeader is the request header in which a [Transport] created with
// [WithDeadlinePropagation] sends the time left before the request's context
// deadline, so that the upstream can stop working when the caller stops
// waiting. The telltale Echo middleware reads the same header.
//
// The value is a non-negative decimal integer of whole milliseconds, at most
// [MaxTimeoutDigits] digits, with nothing else around it: "1500" means the
// caller gives up 1.5 s after it sent the request. The header is only sent when
// the context has a deadline, and a deadline already passed is sent as "0".
const TimeoutHeader = "Telltale-Timeout-Ms"

// MaxTimeoutDigits bounds the length of a [TimeoutHeader] value. Ten digits
// of milliseconds is about 115 days, far more than any request deserves; a
// longer value is rejected rather than parsed, so that a hostile client
// cannot make the parser do unbounded work or overflow a time.Duration.
const MaxTimeoutDigits = 10

// ErrTimeoutMalformed is returned by [ParseTimeout] for a value that is not a
// plain decimal number of milliseconds (signs, spaces, units, empty values
// and values longer than [MaxTimeoutDigits] digits are all malformed).
var ErrTimeoutMalformed = errors.New("transport: malformed " + TimeoutHeader + " value")

// FormatTimeout formats a remaining budget for [TimeoutHeader]. The budget is
// rounded down to whole milliseconds, so the upstream never thinks it has more
// time than the caller will wait; negative budgets are sent as "0".
func FormatTimeout(d time.Duration) string {
	if d <= 0 {
		return "0"
	}
	return strconv.FormatInt(int64(d/time.Millisecond), 10)
}

// ParseTimeout parses a [TimeoutHeader] value into a duration. It accepts
// exactly what [FormatTimeout] produces: 1 to [MaxTimeoutDigits] ASCII digits.
// Anything else returns an error wrapping [ErrTimeoutMalformed], which names
// the offending value (truncated) so that it can be recorded on a span.
func ParseTimeout(v string) (time.Duration, error) {
	if len(v) == 0 || len(v) > MaxTimeoutDigits {
		return 0, malformedTimeout(v)
	}
	var ms int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, malformedTimeout(v)
		}
		ms = ms*10 + int64(c-'0')
	}
	return time.Duration(ms) * time.Millisecond, nil
}

func malformedTimeout(v string) error {
	const show = 32
	if len(v) > show {
		v = v[:show] + "..."
	}
	return fmt.Errorf("%w: %q", ErrTimeoutMalformed, v)
}
