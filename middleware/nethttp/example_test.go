package nethttp_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/telltale-go/telltale/middleware/nethttp"
	"github.com/telltale-go/telltale/transport"
)

// A handler that gives up on its context returns without writing; Deadline
// answers the 504 for it, as JSON.
func ExampleDeadline() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /report", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // an upstream that never answers
	})
	handler := nethttp.Deadline(50 * time.Millisecond)(mux)

	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/report", nil))
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
	// Output: 504 application/json {"message":"request deadline of 50ms exceeded","timeout_ms":50}
}

// The whole stack around Go's ServeMux, as a gateway sets it up: a server
// span per request named by its pattern, a deadline that follows the
// caller's budget, leak accounting with a goroutine monitor, and the
// inspector.
func Example() {
	users := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"42"}`)
	}))
	defer users.Close()

	tr := transport.New(nil, transport.WithDeadlinePropagation())
	defer tr.Close()
	client := tr.Client()
	monitor := nethttp.NewGoroutineMonitor(nethttp.GoroutineMonitorConfig{})
	monitor.Start()
	defer monitor.Stop()

	mux := http.NewServeMux()
	mux.Handle("GET /debug/telltale", nethttp.Inspector(nethttp.InspectorConfig{
		Transports: []*transport.Transport{tr},
		Goroutines: monitor,
	}))
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, users.URL+"/users/"+r.PathValue("id"), nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		resp, err := client.Do(req)
		if err != nil {
			if r.Context().Err() != nil {
				return // Deadline answers: 504, or 499 for a client gone
			}
			http.Error(w, "users: "+err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})
	handler := nethttp.Trace()(nethttp.DeadlineWithConfig(nethttp.DeadlineConfig{
		Timeout:     2 * time.Second,
		Routes:      map[string]time.Duration{"GET /reports/{id}": 10 * time.Second},
		RouteFunc:   func(r *http.Request) string { _, pattern := mux.Handler(r); return pattern },
		TrustHeader: true,
		MaxTimeout:  10 * time.Second,
	})(nethttp.LeaksWithConfig(nethttp.LeaksConfig{Goroutines: monitor})(mux)))

	srv := httptest.NewServer(handler) // http.ListenAndServe(":8080", handler)
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/users/42")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(body))
	// Output: 200 {"id":"42"}
}
