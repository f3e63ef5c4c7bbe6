// Package appcode tells the application's own code from the rest of a
// stack: the call site of a leaked body (package transport) and an
// orphaned goroutine (package middleware) are both the first frame of it.
package appcode
