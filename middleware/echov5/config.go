package echov5

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v5"

	"github.com/telltale-go/telltale/internal/server"
)

// neverSkip is the default Skipper. The package does not import Echo's own
// middleware package (and its dependencies) for its DefaultSkipper; Skipper
// fields are plain func types, so Echo's Skipper values still fit.
func neverSkip(*echo.Context) bool { return false }

// wrapErr prefixes an error of the server core with the package name.
func wrapErr(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("echov5: %w", err)
}

// skippable turns serve into a middleware that calls it for every request
// skip does not skip.
func skippable(skip func(*echo.Context) bool, serve func(*echo.Context, echo.HandlerFunc) error) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			if skip(c) {
				return next(c)
			}
			return serve(c, next)
		}
	}
}

// decodeError reads an Echo v5 error for the server core: its status, its
// message as text, the error it wraps. Echo v5 answers any error that
// implements echo.HTTPStatusCoder with its status — *echo.HTTPError, the
// predefined echo.ErrNotFound and friends (which are not *echo.HTTPError),
// Deadline's own answers — so all of them are read, the outermost first,
// as Echo's DefaultHTTPErrorHandler picks it: the status the core reads is
// the status the client gets.
func decodeError(err error) (int, string, error, bool) {
	var coder echo.HTTPStatusCoder
	if !errors.As(err, &coder) {
		return 0, "", nil, false
	}
	status := coder.StatusCode()
	if status == 0 {
		status = http.StatusInternalServerError // as Echo answers it
	}
	switch e := coder.(type) {
	case *deadlineError:
		return e.res.Status, e.res.Message, e.err, true
	case *echo.HTTPError:
		return status, e.Message, e.Unwrap(), true
	}
	// The predefined errors say their status text; another type's text is
	// all there is to say, cause included as it chooses to put it.
	return status, coder.(error).Error(), nil, true
}

// committed reports whether c's answer has been written: Echo's Response
// knows, wherever the writers wrapped around it hide it.
func committed(c *echo.Context) bool {
	res, err := echo.UnwrapResponse(c.Response())
	return err == nil && res.Committed
}

// restoreRequest gives c the request to back, with the multipart form the
// handler parsed on whatever request c has now.
func restoreRequest(c *echo.Context, to *http.Request) {
	server.KeepForm(c.Request(), to)
	c.SetRequest(to)
}
