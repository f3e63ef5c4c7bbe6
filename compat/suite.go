package compat

// A Suite is a third-party package whose tests the harness runs twice: as
// published ("plain"), and with every request its code makes going through
// telltale ("wrapped").
type Suite struct {
	// Name names the suite in the report and its directory under the work
	// directory.
	Name string

	// Module is the module whose tests run, at the version compat/go.mod
	// pins; the harness copies it from the module cache. Empty for a
	// package of the standard library.
	Module string

	// Std is the import path of the standard library package whose tests
	// run (from GOROOT), when Module is empty. It is copied, with the
	// std-internal packages it imports, into a module of its own.
	Std string

	// Inject is the directory under testdata/inject whose files are added
	// to the wrapped copy of the package.
	Inject string

	// Patches are applied to the wrapped copy of the package, after the
	// injection: each makes the package call the injected code where it
	// builds or uses its transport.
	Patches []Patch

	// Skip lists the tests that cannot run here. They are skipped in both
	// runs and reported as skipped.
	Skip []Skip
}

// A Patch replaces Old by New in File, a path relative to the package
// directory. Old must occur exactly once: a patch that no longer applies
// (the package changed) stops the harness instead of silently testing the
// package unwrapped.
type Patch struct {
	File, Old, New string
}

// A Skip is a top-level test that is not run, and why.
type Skip struct {
	Test, Why string
}

// Suites returns the suites the harness knows, in the order it runs them.
func Suites() []Suite {
	return []Suite{
		{
			Name:   "retryablehttp",
			Module: "github.com/hashicorp/go-retryablehttp",
			Inject: "retryablehttp",
			Patches: []Patch{{
				// NewClient and Do (when HTTPClient is nil) build
				// the client's transport here.
				File: "client.go",
				Old:  "HTTPClient:   cleanhttp.DefaultPooledClient(),",
				New:  "HTTPClient:   telltaleCompatWrap(cleanhttp.DefaultPooledClient()),",
			}, {
				File: "client.go",
				Old:  "c.HTTPClient = cleanhttp.DefaultPooledClient()",
				New:  "c.HTTPClient = telltaleCompatWrap(cleanhttp.DefaultPooledClient())",
			}},
			Skip: []Skip{{
				Test: "TestRoundTripper_TransportFailureErrorHandling",
				Why:  "resolves the host 999.999.999.999 through the machine's DNS server",
			}},
		},
		{
			Name:   "resty",
			Module: "github.com/go-resty/resty/v2",
			Inject: "resty",
			Patches: []Patch{{
				// Every request of every resty client is sent here.
				File: "client.go",
				Old:  "resp, err := c.httpClient.Do(req.RawRequest)",
				New:  "resp, err := telltaleCompatClient(c.httpClient).Do(req.RawRequest)",
			}},
		},
		{
			Name:   "httputil",
			Std:    "net/http/httputil",
			Inject: "httputil",
			Patches: []Patch{{
				// ReverseProxy.ServeHTTP's one call to its transport
				// (p.Transport, or http.DefaultTransport).
				File: "reverseproxy.go",
				Old:  "res, err := transport.RoundTrip(outreq)",
				New:  "res, err := telltaleCompatTransport(transport).RoundTrip(outreq)",
			}},
		},
	}
}
