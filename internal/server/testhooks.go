package server

import "time"

// SetMonitorClock makes m read the time from now: tests advance a fake clock
// past Grace and Interval instead of sleeping. Set it before m is used.
func SetMonitorClock(m *GoroutineMonitor, now func() time.Time) { m.now = now }

// IsAppFunction reports whether m counts fn, a package-path-qualified
// function name, as the application's code.
func IsAppFunction(m *GoroutineMonitor, fn string) bool { return m.isApp(fn) }
