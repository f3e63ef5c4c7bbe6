package middleware

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/telltale-go/telltale/internal/server"
)

// neverSkip is the default Skipper. The package does not import Echo's own
// middleware package (and its dependencies) for its DefaultSkipper; Skipper
// fields are plain func types, so Echo's Skipper values still fit.
func neverSkip(echo.Context) bool { return false }

// wrapErr prefixes an error of the server core with the package name.
func wrapErr(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("middleware: %w", err)
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

// decodeError reads Echo's *echo.HTTPError for the server core: its
// status, its message as text, the error it wraps.
func decodeError(err error) (int, string, error, bool) {
	var he *echo.HTTPError
	if !errors.As(err, &he) {
		return 0, "", nil, false
	}
	var msg string
	switch m := he.Message.(type) {
	case nil:
	case string:
		msg = m
	case fmt.Stringer:
		msg = m.String()
	default:
		msg = fmt.Sprint(m)
	}
	return he.Code, msg, he.Internal, true
}

// restoreRequest gives c the request to back, with the multipart form the
// handler parsed on whatever request c has now.
func restoreRequest(c echo.Context, to *http.Request) {
	server.KeepForm(c.Request(), to)
	c.SetRequest(to)
}
