package password

import (
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"
)

// hasherNice is the nice value of a hashing process: the lowest priority
// that still gets a share of a busy CPU (a thread of nice 0 weighs about 70
// times as much). SCHED_IDLE would not: other work at normal priority
// could hold back every login for as long as it ran.
const hasherNice = 19

// startHasherProcess starts cmd at hasherNice. Linux gives each thread its
// own nice value, and a new process the one of the thread that forks it:
// cmd starts from a thread of its own, locked to a goroutine that lowers its
// priority, forks, and ends without unlocking, so that the Go runtime
// discards the thread (a process without CAP_SYS_NICE could not raise its
// priority back).
//
// The main thread is never the one: Go cannot end it, and its nice value
// is the one that tools such as top show for the whole server. A goroutine
// that finds itself there holds it while another goroutine, on another
// thread, does the work.
func startHasherProcess(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked (but on the main thread): the thread ends with the goroutine
		if syscall.Gettid() == syscall.Getpid() {
			errc <- startHasherProcess(cmd)
			runtime.UnlockOSThread()
			return
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), hasherNice); err != nil {
			errc <- err
			return
		}
		errc <- cmd.Start()
	}()
	return <-errc
}

// pollable returns f (a pipe) switched to non-blocking mode, so that the
// Go runtime waits for it in its poller. A read that blocks in the kernel
// keeps its processor until the runtime's monitor takes it back, up to
// 10 ms later in a process that is mostly idle, and the goroutine that the
// reader had just started for a hash waited that long to run: hashes began
// 6–7 ms after their request came (measured), a fifth of a hash's time.
func pollable(f *os.File) *os.File {
	if err := syscall.SetNonblock(int(f.Fd()), true); err != nil {
		return f
	}
	return os.NewFile(f.Fd(), f.Name())
}

// ignoreStopSignals keeps a hashing process alive through the SIGINT of a
// terminal's Ctrl-C and the SIGTERM of a service manager, which reach every
// process of the group: the server stops gracefully on them and may still
// verify logins meanwhile. The process ends when the server closes its
// stdin, or exits.
func ignoreStopSignals() { signal.Ignore(syscall.SIGINT, syscall.SIGTERM) }

// selfExe returns the file of this process's program: /proc/self/exe,
// which Linux resolves to the program the process runs even after its path
// was replaced (an upgrade in place) or removed.
func selfExe(string) string { return "/proc/self/exe" }
