package password

import (
	"context"
	"runtime"
	"syscall"
	"testing"
	"unsafe"
)

// threadSlice reads the time slice of thread tid with sched_getattr,
// whose number is sched_setattr's plus one on every architecture that
// sysSchedSetattr knows.
func threadSlice(t *testing.T, tid int) uint64 {
	t.Helper()
	var a schedAttr
	if _, _, errno := syscall.Syscall6(sysSchedSetattr()+1, uintptr(tid), uintptr(unsafe.Pointer(&a)), unsafe.Sizeof(a), 0, 0, 0); errno != 0 {
		t.Fatalf("sched_getattr: %v", errno)
	}
	return a.runtime
}

// Hashes run on the pool's own threads, which ask for long slices at the
// nice value they had; the caller's thread keeps its own; a panic in the
// work reaches the caller.
func TestPool_HashesRunOnThreadsThatYieldToRequests(t *testing.T) {
	if sysSchedSetattr() == 0 {
		t.Skipf("sched_setattr unknown on %s", runtime.GOARCH)
	}
	p, err := NewPoolWithParams(2, 0, Params{MemoryKiB: 64, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var workerTID int
	var workerSlice uint64
	var workerPrio int
	if err := p.run(context.Background(), func() {
		workerTID = syscall.Gettid()
		workerSlice = threadSlice(t, workerTID)
		workerPrio, _ = syscall.Getpriority(syscall.PRIO_PROCESS, workerTID)
	}); err != nil {
		t.Fatal(err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if workerTID == syscall.Gettid() {
		t.Fatal("the hash ran on the caller's thread")
	}
	mine := threadSlice(t, syscall.Gettid())
	if mine == uint64(hashSlice) {
		t.Fatal("the caller's thread has the hash threads' slice")
	}
	if mine == 0 {
		t.Skip("this kernel reports no time slice (before Linux 6.12)")
	}
	if workerSlice != uint64(hashSlice) {
		t.Fatalf("the worker thread's slice is %d ns, want %d", workerSlice, hashSlice)
	}
	if myPrio, _ := syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Gettid()); workerPrio != myPrio {
		t.Fatalf("the worker thread's nice is %d, the caller's %d: want the same", 20-workerPrio, 20-myPrio)
	}
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Fatalf("recovered %v, want the work's panic", r)
			}
		}()
		_ = p.run(context.Background(), func() { panic("boom") })
	}()
	// The pool still works after a panic.
	if _, err := p.Hash(context.Background(), "correct horse battery staple"); err != nil {
		t.Fatal(err)
	}
}
