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

func TestParseFlagsChecksSamplingAndGateways(t *testing.T) {
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{nil, true},
		{[]string{"-sample", "1"}, true},
		{[]string{"-sample", "0"}, true},
		{[]string{"-sample", "1.5"}, false},
		{[]string{"-sample", "-0.1"}, false},
		{[]string{"-sample", "NaN"}, false},
		{[]string{"-anomaly-budget", "0"}, false},
		{[]string{"-gateways", "guarded"}, true},
		{[]string{"-gateways", "naive, guarded"}, true},
		{[]string{"-gateways", "guarded,nope"}, false},
		{[]string{"-one-by-one", "none"}, true},
		{[]string{"-one-by-one", "all"}, true},
		{[]string{"-one-by-one", "huge,trickle"}, true},
		{[]string{"-one-by-one", "huge,nope"}, false},
		{[]string{"-echo", "v4"}, true},
		{[]string{"-echo", "v3"}, false},
		{[]string{"-fleet"}, true},
		{[]string{"-fleet", "-sample", "1"}, true},
		{[]string{"-fleet", "-sample", "0.01"}, false},
		{[]string{"-fleet", "-otlp", "http://127.0.0.1:4318"}, false},
		{[]string{"-scenario", "5xx"}, true},
	} {
		_, err := parseFlags(tc.args)
		if (err == nil) != tc.ok {
			t.Errorf("%v: err = %v, want ok=%v", tc.args, err, tc.ok)
		}
	}
	o, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.sample != defaultSample || o.anomalyBudget != defaultAnomalyBudget || len(o.gateways) != 3 || len(o.oneByOne) != 1 || !o.oneByOne["huge"] || o.echo != "v5" || o.fleet {
		t.Errorf("defaults: sample %g, anomaly budget %d, gateways %v, one by one %v, echo %s, fleet %v", o.sample, o.anomalyBudget, o.gateways, o.oneByOne, o.echo, o.fleet)
	}
	if o, err := parseFlags([]string{"-fleet"}); err != nil || o.sample != 1 {
		t.Errorf("-fleet: sample %g (%v), want every trace kept at the head", o.sample, err)
	}
}
