// Package faulty starts upstreams that each misbehave in one way, on
// 127.0.0.1, for the fault-matrix tests of packages transport and middleware:
// one list of faults, one way of calling them, checked through both.
package faulty
