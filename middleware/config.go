package middleware

import "github.com/labstack/echo/v4"

// neverSkip is the default Skipper. The package does not import Echo's own
// middleware package (and its dependencies) for its DefaultSkipper; Skipper
// fields are plain func types, so Echo's Skipper values still fit.
func neverSkip(echo.Context) bool { return false }

// must returns what an XConfig's ToMiddleware or ToHandler built, and
// panics with its error: the XWithConfig functions follow Echo's convention.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// skippable turns serve into a middleware that calls it for every request
// skip does not skip.
func skippable(skip func(echo.Context) bool, serve func(echo.Context, echo.HandlerFunc) error) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if skip(c) {
				return next(c)
			}
			return serve(c, next)
		}
	}
}
