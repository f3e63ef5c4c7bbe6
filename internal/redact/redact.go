package redact

import (
	"net/url"
	"strings"
)

// URL returns u safe to show: the userinfo (user name and password: the
// name is often a token) and every query value are replaced by "REDACTED",
// and the fragment is dropped. Query keys are kept: they say what was asked.
//
// It runs on every outbound request whose URL has a query, so the common
// URL — scheme, plain host, path, query — is written in one allocation;
// anything else goes through url.URL.String, which writes the same.
func URL(u *url.URL) string {
	if u == nil {
		return ""
	}
	if s, ok := fastURL(u); ok {
		return s
	}
	return slowURL(u)
}

// fastURL writes a hierarchical URL whose scheme and host need no escaping.
func fastURL(u *url.URL) (string, bool) {
	if u.Opaque != "" || u.Scheme == "" || u.Host == "" || !plain(u.Scheme) || !plain(u.Host) {
		return "", false
	}
	path := u.EscapedPath()
	if path != "" && path[0] != '/' {
		return "", false
	}
	const userinfo = "REDACTED@"
	n := len(u.Scheme) + len("://") + len(u.Host) + len(path)
	if u.User != nil {
		n += len(userinfo)
	}
	if u.ForceQuery || u.RawQuery != "" {
		n += 1 + len(u.RawQuery) + strings.Count(u.RawQuery, "=")*len("REDACTED")
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(u.Scheme)
	b.WriteString("://")
	if u.User != nil {
		b.WriteString(userinfo)
	}
	b.WriteString(u.Host)
	b.WriteString(path)
	if u.ForceQuery || u.RawQuery != "" {
		b.WriteByte('?')
		writeQuery(&b, u.RawQuery)
	}
	return b.String(), true
}

// plain reports whether s is made of letters, digits and . - + : [ ]
// only: what url.URL.String writes as it is in a scheme or a host.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(".-+:[]", c) >= 0) {
			return false
		}
	}
	return true
}

func slowURL(u *url.URL) string {
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

// NeedsRedaction reports whether [URL] records u otherwise than a recorder
// that keeps credentials out but the query and the fragment in, as otelhttp
// does: whether what that recorder wrote must be replaced.
func NeedsRedaction(u *url.URL) bool {
	return u != nil && (u.RawQuery != "" || u.User != nil || u.Fragment != "")
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
	b.Grow(len(q) + strings.Count(q, "=")*len("REDACTED"))
	writeQuery(&b, q)
	return b.String()
}

func writeQuery(b *strings.Builder, q string) {
	for i := 0; ; i++ {
		part, rest, more := strings.Cut(q, "&")
		if i > 0 {
			b.WriteByte('&')
		}
		key, _, hasValue := strings.Cut(part, "=")
		b.WriteString(key)
		if hasValue {
			b.WriteString("=REDACTED")
		}
		if !more {
			return
		}
		q = rest
	}
}
