package version

// Version is the module's version; a release sets it to its tag.
const Version = "0.1.0"

// Scope names of telltale's tracers and meters: each is the import path of
// the package that records.
const (
	TransportScope  = "github.com/telltale-go/telltale/transport"
	MiddlewareScope = "github.com/telltale-go/telltale/middleware"
	SamplingScope   = "github.com/telltale-go/telltale/sampling"
)
