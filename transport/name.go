package transport

import "net/http"

// spanName names a client span by the upstream it calls: "GET ads" for a
// Transport named ads (WithName), "GET <host>" otherwise — the URL's host,
// never its path or query, so that names stay few — or as the
// WithSpanNameFormatter function says. otelhttp calls it once per request;
// the name is kept for a replay.
func (t *Transport) spanName(_ string, r *http.Request) string {
	var name string
	if f := t.cfg.spanNameFormatter; f != nil {
		name = f(t.cfg.name, r)
	} else {
		target := t.cfg.name
		if target == "" && r.URL != nil {
			target = r.URL.Host
		}
		name = t.names.Name(r.Method, target)
	}
	if rec := recordFrom(r.Context()); rec != nil {
		rec.name = name
	}
	return name
}
