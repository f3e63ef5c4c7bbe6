package jaeger

import "syscall"

// stopWithParent makes the kernel send SIGTERM to Jaeger if the demo dies
// without stopping it (SIGKILL, a closed pipe on its output): Jaeger has a
// process group of its own, so nothing else would reach it.
func stopWithParent(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGTERM }
