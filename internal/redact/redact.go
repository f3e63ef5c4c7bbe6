package redact

import (
	"net/url"
	"strings"
)

// URL returns u safe to show: the userinfo (user name and password: the
// name is often a token) and every query value are replaced by "REDACTED",
// and the fragment is dropped. Query keys are kept: they say what was asked.
func URL(u *url.URL) string {
	if u == nil {
		return ""
	}
	r := *u
	if r.User != nil {
		r.User = url.User("REDACTED")
	}
	r.Fragment, r.RawFragment = "", ""
	if r.RawQuery != "" {
		r.RawQuery = query(r.RawQuery)
	}
	return r.String()
}

// NeedsRedaction reports whether [URL] would change more than the fragment
// of u: whether a recorder that keeps credentials out but the query in (as
// otelhttp does) has recorded something secret.
func NeedsRedaction(u *url.URL) bool {
	return u != nil && (u.RawQuery != "" || u.User != nil)
}

// Message returns msg with every occurrence of raw, a URL as an error
// message quotes it (*url.Error does), replaced by its redacted form.
func Message(msg, raw string) string {
	if raw == "" {
		return msg
	}
	if u, err := url.Parse(raw); err == nil {
		return strings.ReplaceAll(msg, raw, URL(u))
	}
	return strings.ReplaceAll(msg, raw, "REDACTED")
}

// query keeps the keys of a raw query and replaces each value by REDACTED,
// without decoding anything: a malformed query is still redacted.
func query(q string) string {
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
