package timeoutheader_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telltale-go/telltale/internal/timeoutheader"
)

// FuzzParse checks that a value parses exactly when it is 1 to 10 ASCII
// digits, that it then means that many milliseconds and formats back to the
// same number, and that errors neither leak a duration nor echo long input.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"0", "1500", "9999999999", "99999999999", "-1", "+5", " 5", "5ms", "1e3", "", "0x10", "٣", "1_000", "00000000001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, err := timeoutheader.Parse(v)
		if err != nil {
			if !errors.Is(err, timeoutheader.ErrMalformed) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrMalformed", v, err)
			}
			if d != 0 {
				t.Fatalf("Parse(%q) = %v with an error", v, d)
			}
			if len(err.Error()) > 200 {
				t.Fatalf("error message of %d bytes echoes hostile input", len(err.Error()))
			}
			return
		}
		n, perr := strconv.ParseUint(v, 10, 64)
		if perr != nil || len(v) > timeoutheader.MaxDigits || time.Duration(n)*time.Millisecond != d {
			t.Fatalf("Parse(%q) = %v, but strconv says %d (%v)", v, d, n, perr)
		}
		if n == 0 {
			return // Format never writes 0
		}
		if back := timeoutheader.Format(d); strings.TrimLeft(v, "0") != back {
			t.Fatalf("Format(Parse(%q)) = %q", v, back)
		}
	})
}

func TestFormat(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second:                    "1",
		0:                               "1",
		999 * time.Microsecond:          "1",
		1500 * time.Millisecond:         "1500",
		time.Hour:                       "3600000",
		2*time.Second + time.Nanosecond: "2000",
		9999999999 * time.Millisecond:   "9999999999",
		10000000000 * time.Millisecond:  "",
		time.Duration(1<<63 - 1):        "",
	} {
		if got := timeoutheader.Format(d); got != want {
			t.Errorf("Format(%v) = %q, want %q", d, got, want)
		}
	}
}
