package spanname

import (
	"net/http"
	"strings"
	"sync"
)

// A Cache remembers span names by method and target (a route template,
// an upstream's name or host). Its zero value is ready to use.
type Cache struct {
	mu    sync.RWMutex
	names map[key]string
}

type key struct{ method, target string }

// maxNames bounds the cache; past it, names are built per span.
const maxNames = 4096

// Name returns "METHOD target", or "METHOD" for an empty target, with the
// method as [Method] names it.
func (c *Cache) Name(method, target string) string {
	k := key{method: Method(method), target: target}
	c.mu.RLock()
	name, ok := c.names[k]
	c.mu.RUnlock()
	if ok {
		return name
	}
	name = k.method
	if k.target != "" {
		name += " " + k.target
	}
	c.mu.Lock()
	if c.names == nil {
		c.names = make(map[key]string)
	}
	if len(c.names) < maxNames {
		c.names[k] = name
	}
	c.mu.Unlock()
	return name
}

// Method returns a standard HTTP method in upper case, and "HTTP" for any
// other: a client cannot make span names, or a cache of them, grow.
func Method(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	switch u := strings.ToUpper(m); u {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return u
	}
	return "HTTP"
}
