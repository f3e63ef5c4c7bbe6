package server

// Must returns what an adapter's XConfig.ToMiddleware or ToHandler built,
// and panics with its error: the XWithConfig functions of every adapter
// follow Echo's convention.
func Must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
