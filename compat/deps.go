//go:build compatdeps

package compat

// The suites the harness runs, imported here only so that go.mod pins their
// versions and go.sum holds their hashes: the harness copies them from the
// module cache at run time, and no build of this module links them (the tag
// is never set; go mod tidy considers every tag but "ignore").
import (
	_ "github.com/go-resty/resty/v2"
	_ "github.com/hashicorp/go-retryablehttp"
	_ "golang.org/x/net/http/httpguts" // the std-vendored package that httputil's copy imports
)
