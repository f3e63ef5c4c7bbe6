package transport_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telltale-go/telltale/transport"
)

func FuzzParseTimeout(f *testing.F) {
	for _, s := range []string{"0", "1500", "9999999999", "99999999999", "-1", "+5", " 5", "5ms", "1e3", "", "0x10", "٣", "1_000", "00000000001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, err := transport.ParseTimeout(v)
		if err != nil {
			if !errors.Is(err, transport.ErrTimeoutMalformed) {
				t.Fatalf("ParseTimeout(%q) error %v does not wrap ErrTimeoutMalformed", v, err)
			}
			if d != 0 {
				t.Fatalf("ParseTimeout(%q) = %v with an error", v, d)
			}
			if len(err.Error()) > 200 {
				t.Fatalf("error message of %d bytes echoes hostile input", len(err.Error()))
			}
			return
		}
		if d < 0 {
			t.Fatalf("ParseTimeout(%q) = %v, negative", v, d)
		}
		// What parses is exactly a decimal number of milliseconds, and
		// formats back to the same number.
		n, perr := strconv.ParseUint(v, 10, 64)
		if perr != nil || time.Duration(n)*time.Millisecond != d {
			t.Fatalf("ParseTimeout(%q) = %v, but strconv says %d (%v)", v, d, n, perr)
		}
		if back := transport.FormatTimeout(d); strings.TrimLeft(v, "0") != strings.TrimLeft(back, "0") {
			t.Fatalf("FormatTimeout(ParseTimeout(%q)) = %q", v, back)
		}
	})
}

func TestFormatTimeout(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second:                    "0",
		0:                               "0",
		999 * time.Microsecond:          "0",
		1500 * time.Millisecond:         "1500",
		time.Hour:                       "3600000",
		2*time.Second + time.Nanosecond: "2000",
	} {
		if got := transport.FormatTimeout(d); got != want {
			t.Errorf("FormatTimeout(%v) = %q, want %q", d, got, want)
		}
	}
}
