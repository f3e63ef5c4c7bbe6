// Package goroutines parses the goroutine profile that runtime/pprof writes
// with debug=1 (pprof.Lookup("goroutine").WriteTo(w, 1)) into groups of
// goroutines that share a stack and labels.
//
// It is a package of its own for the reason go.uber.org/goleak keeps its
// stack parser in internal/stack: the format belongs to the runtime, not to
// us, so its parser is a unit with its own tests, driven by real profiles
// captured into testdata/ (testdata/capture writes them), while
// middleware's GoroutineMonitor only decides what a group means. It is
// internal because that monitor is its only user and the format is no
// promise of ours.
//
// It parses the text form rather than the protobuf form (WriteTo(w, 0)),
// although, measured on the same profile, the protobuf form makes a check
// cheaper: the runtime writes it faster (it symbolizes each program counter
// once, where the text form symbolizes every group's stack and aligns it
// with text/tabwriter), while parsing either costs about the same. Reading it would take github.com/google/pprof/profile, a module
// without releases, into the dependencies of every user of the library, for
// a saving of a fraction of a percent of one CPU at the default check
// interval. The README has the figures.
package goroutines
