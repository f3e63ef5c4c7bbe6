package appcode

import "runtime/debug"

// MainModule returns the path of the binary's main module, or "" when it
// has none (built from files: `go run main.go`).
func MainModule() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Path != "command-line-arguments" {
		return bi.Main.Path
	}
	return ""
}

// InPackage reports whether fn, a package-path-qualified function name, is
// of the package pkg or of a package under it: pkg followed by '.' or '/'.
func InPackage(fn, pkg string) bool {
	return len(fn) > len(pkg) && fn[:len(pkg)] == pkg && (fn[len(pkg)] == '.' || fn[len(pkg)] == '/')
}
