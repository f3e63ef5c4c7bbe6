package transport

import (
	"net/url"
	"strings"
)

// redactURL returns u as a string that is safe to put in spans, events, logs
// and the leak inspector: the password of the userinfo and every query value
// are replaced by "REDACTED" (the user name goes too: it is often a token),
// and the fragment is dropped. Query keys are kept, they say what was asked.
func redactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	r := *u
	if r.User != nil {
		r.User = url.User("REDACTED")
	}
	r.Fragment, r.RawFragment = "", ""
	if r.RawQuery != "" {
		r.RawQuery = redactQuery(r.RawQuery)
	}
	return r.String()
}

// redactQuery keeps the keys of a raw query and replaces each value by
// REDACTED, without decoding anything: a malformed query is still redacted.
func redactQuery(q string) string {
	var b strings.Builder
	b.Grow(len(q))
	for i, part := range strings.Split(q, "&") {
		if i > 0 {
			b.WriteByte('&')
		}
		key, _, hasValue := strings.Cut(part, "=")
		b.WriteString(key)
		if hasValue {
			b.WriteString("=REDACTED")
		}
	}
	return b.String()
}
