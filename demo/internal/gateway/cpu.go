package gateway

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// CPU is what a gateway process got of the machine's CPUs so far: the
// figures that tell a gateway that was slow from a gateway that was
// starved by its neighbours.
type CPU struct {
	// Time is the CPU time the process used, user and system.
	Time time.Duration `json:"time_ns"`
	// RunQueueWait is the time its threads spent runnable but waiting for
	// a CPU, summed over its threads (Linux's schedstat; zero elsewhere):
	// two threads waiting one second count two.
	RunQueueWait time.Duration `json:"runqueue_wait_ns"`
	// ProbeDelayMax is the largest delay with which the [Probe]'s
	// goroutine, which sleeps [ProbeInterval] in a loop, woke up since the
	// previous [StatsPath] read: how late a timer or a ready goroutine of
	// this process could run. Zero without a probe.
	ProbeDelayMax time.Duration `json:"probe_delay_max_ns"`
}

// ProbeInterval is how long the [Probe]'s goroutine sleeps between
// wake-ups.
const ProbeInterval = 10 * time.Millisecond

// Probe measures how late this process's goroutines get to run: a
// goroutine wakes up every [ProbeInterval] and notes how late it did.
type Probe struct {
	maxDelay atomic.Int64 // since the last read, in nanoseconds
	stop     chan struct{}
	done     chan struct{}
}

// StartProbe starts the probe's goroutine; [Probe.Close] stops it.
func StartProbe() *Probe {
	p := &Probe{stop: make(chan struct{}), done: make(chan struct{})}
	go p.run()
	return p
}

func (p *Probe) run() {
	defer close(p.done)
	t := time.NewTimer(ProbeInterval)
	defer t.Stop()
	for {
		start := time.Now()
		t.Reset(ProbeInterval)
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		delay := int64(time.Since(start) - ProbeInterval)
		for {
			old := p.maxDelay.Load()
			if delay <= old || p.maxDelay.CompareAndSwap(old, delay) {
				break
			}
		}
	}
}

// read returns the largest delay since the previous read.
func (p *Probe) read() time.Duration { return time.Duration(p.maxDelay.Swap(0)) }

// Close stops the probe's goroutine.
func (p *Probe) Close() {
	close(p.stop)
	<-p.done
}

// readCPU returns the process's CPU figures; p may be nil.
func readCPU(p *Probe) CPU {
	var c CPU
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		c.Time = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	c.RunQueueWait = runQueueWait()
	if p != nil {
		c.ProbeDelayMax = p.read()
	}
	return c
}

// runQueueWait sums the second field of /proc/self/task/*/schedstat: the
// nanoseconds each thread spent on a run queue waiting for a CPU. Threads
// that exited are not counted; the Go runtime seldom ends its threads.
func runQueueWait() time.Duration {
	paths, _ := filepath.Glob("/proc/self/task/*/schedstat")
	var sum int64
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) < 2 {
			continue
		}
		if ns, err := strconv.ParseInt(f[1], 10, 64); err == nil {
			sum += ns
		}
	}
	return time.Duration(sum)
}
