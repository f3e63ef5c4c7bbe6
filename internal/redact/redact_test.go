package redact

import (
	"net/url"
	"strings"
	"testing"
)

func FuzzURL(f *testing.F) {
	for _, s := range []string{
		"http://u:p@h/p?a=1&b=2#f", "http://h/?=x&&y=", "http://h/?a=%zz", "https://h/p?token=abc;def=1",
		"http://[::1]:80/?k=v", "http://h/?a==b&=&", "http://user@h/?q",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		out := URL(u)
		if slow := slowURL(u); out != slow {
			t.Fatalf("URL(%q) = %q, but url.URL.String writes %q", raw, out, slow)
		}
		if strings.Contains(out, "#") {
			t.Fatalf("fragment survives in %q", out)
		}
		// The userinfo, if any, is exactly REDACTED: no name, no password.
		if u.User != nil {
			if !strings.Contains(out, "REDACTED@") || strings.Contains(out, ":"+u.User.String()+"@") {
				t.Fatalf("userinfo of %q not redacted: %q", raw, out)
			}
			if p, ok := u.User.Password(); ok && strings.Contains(out, ":"+url.PathEscape(p)+"@") {
				t.Fatalf("password survives in %q", out)
			}
		}
		// Every query value is REDACTED.
		if i := strings.IndexByte(out, '?'); i >= 0 {
			for _, part := range strings.Split(out[i+1:], "&") {
				if _, v, ok := strings.Cut(part, "="); ok && v != "REDACTED" {
					t.Fatalf("query value %q survives in %q", v, out)
				}
			}
		}
	})
}

func TestMessage(t *testing.T) {
	for _, c := range []struct{ msg, raw, want string }{
		{`Get "http://h/p?token=abc": EOF`, "http://h/p?token=abc", `Get "http://h/p?token=REDACTED": EOF`},
		{`Get "http://u:pw@h/": EOF`, "http://u:pw@h/", `Get "http://REDACTED@h/": EOF`},
		{`Get "%zz": bad`, "%zz", `Get "REDACTED": bad`},
		{"no url here", "", "no url here"},
	} {
		if got := Message(c.msg, c.raw); got != c.want {
			t.Errorf("Message(%q, %q) = %q, want %q", c.msg, c.raw, got, c.want)
		}
	}
}

// The common URL — scheme, host, path, query — costs one allocation.
func TestURLAllocatesOnce(t *testing.T) {
	u, _ := url.Parse("https://user:pw@api.example.com:8443/v1/items?page=2&token=abc&flag")
	if got := URL(u); got != "https://REDACTED@api.example.com:8443/v1/items?page=REDACTED&token=REDACTED&flag" {
		t.Fatalf("URL = %q", got)
	}
	if n := testing.AllocsPerRun(100, func() { _ = URL(u) }); n != 1 {
		t.Errorf("%v allocations, want 1", n)
	}
}
