package main

import "testing"

func TestParseFlagsChecksOTLP(t *testing.T) {
	for _, tc := range []struct {
		otlp string
		ok   bool
	}{
		{"http://127.0.0.1:4318", true},
		{"https://collector.example:4318/base", true},
		{"localhost:4318", false},
		{"127.0.0.1:4318", false},
		{"grpc://127.0.0.1:4317", false},
	} {
		_, err := parseFlags([]string{"-otlp", tc.otlp})
		if (err == nil) != tc.ok {
			t.Errorf("-otlp %s: err = %v, want ok=%v", tc.otlp, err, tc.ok)
		}
	}
}
