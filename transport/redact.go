package transport

import (
	"net/url"
	"strings"
)

// RedactURL returns u as telltale writes it everywhere — spans, events,
// logs, the leak inspector — safe to show: the userinfo (user name and
// password: the name is often a token) and every query value are replaced by
// "REDACTED", and the fragment is dropped. Query keys are kept: they say what
// was asked.
func RedactURL(u *url.URL) string {
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
