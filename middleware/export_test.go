package middleware

import "time"

// SetMonitorClock makes m read the time from now: tests advance a fake clock
// past Grace and Interval instead of sleeping. Set it before m is used.
func SetMonitorClock(m *GoroutineMonitor, now func() time.Time) { m.now = now }
