package password

import (
	"runtime"
	"syscall"
	"time"
	"unsafe"
)

// hashSlice is the time slice a hash thread asks the kernel for: the
// longest it allows.
const hashSlice = 100 * time.Millisecond

// schedAttr is the kernel's struct sched_attr (sched_setattr(2)).
type schedAttr struct {
	size     uint32
	policy   uint32 // SCHED_OTHER: 0
	flags    uint64
	nice     int32
	priority uint32
	runtime  uint64 // for SCHED_OTHER since Linux 6.12: the slice, in ns
	deadline uint64
	period   uint64
	utilMin  uint32
	utilMax  uint32
}

// yieldToRequests makes the calling OS thread (only it: Linux schedules
// threads) ask for long time slices. The EEVDF scheduler (Linux 6.12 and
// later) runs first the eligible thread whose virtual deadline, its start
// plus its slice, comes first: a thread that wakes to serve a request,
// with the default slice of a few milliseconds, is run before a hash
// thread, which runs on when no one else waits. The hash thread keeps the
// weight of nice 0, so its share of the CPU does not shrink: a lower
// priority (nice 19 weighs 15 against 1024) would let a flood of cheap
// requests, each answered at once, starve every login. Older kernels
// ignore the slice; a failure leaves the thread as it was.
func yieldToRequests() {
	nr := sysSchedSetattr()
	if nr == 0 {
		return
	}
	tid := syscall.Gettid()
	prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid) // the raw call answers 20 - nice
	if err != nil {
		return
	}
	// The call sets the nice value too: keep the thread's.
	a := schedAttr{nice: int32(20 - prio), runtime: uint64(hashSlice)}
	a.size = uint32(unsafe.Sizeof(a))
	_, _, _ = syscall.Syscall(nr, uintptr(tid), uintptr(unsafe.Pointer(&a)), 0)
}

// sysSchedSetattr is the number of the sched_setattr system call, which
// package syscall does not name on every architecture; 0 where unknown.
func sysSchedSetattr() uintptr {
	switch runtime.GOARCH {
	case "amd64":
		return 314
	case "386":
		return 351
	case "arm":
		return 380
	case "arm64", "riscv64", "loong64":
		return 274
	case "ppc64", "ppc64le":
		return 355
	case "s390x":
		return 345
	}
	return 0
}
