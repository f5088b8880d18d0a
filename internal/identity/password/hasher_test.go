package password

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// processPool returns a pool of testParams whose hashes run in a hashing
// process (this test binary, started again), closed at the test's end.
func processPool(t *testing.T, workers, queue int) *Pool {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("hashing processes are only started on Linux")
	}
	p, err := NewProcessPool(workers, queue, testParams)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// procStat returns the fields of /proc/PID/stat after the command name
// (field 3, the state, first), or nil once the process is gone.
func procStat(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
}

// gone reports whether process pid has exited and been reaped (or is a
// zombie no one waits for).
func gone(pid int) bool {
	f := procStat(pid)
	return f == nil || f[0] == "Z"
}

// A hashing process answers what the functions would in this process:
// hashes that verify here, the verdicts and rehash advice of each scheme,
// the same error for a hash that cannot be used.
func TestProcessPool_AnswersAsThisProcessWould(t *testing.T) {
	p := processPool(t, 2, 4)
	if p.ProcessID() == 0 || p.ProcessID() == os.Getpid() {
		t.Fatalf("ProcessID = %d, want another process's", p.ProcessID())
	}
	ctx := context.Background()
	const pw = "correct horse battery staple ünïcode"
	encoded, err := p.Hash(ctx, pw)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(encoded, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("Hash = %q, want an argon2id hash of the pool's cost", encoded)
	}
	if ok, rehash, err := Verify(encoded, pw, testParams); !ok || rehash || err != nil {
		t.Fatalf("the process's hash verified here: %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
	again, err := p.Hash(ctx, pw)
	if err != nil || again == encoded {
		t.Fatalf("second hash %q (%v): want a new salt", again, err)
	}

	bc, err := bcrypt.GenerateFromPassword([]byte("imported password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	old, err := Hash(pw, Params{MemoryKiB: 128, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, encoded, pw string }{
		{"argon2id, right", encoded, pw},
		{"argon2id, wrong", encoded, pw + "!"},
		{"argon2id of another cost", old, pw},
		{"bcrypt, right", string(bc), "imported password"},
		{"bcrypt, wrong", string(bc), "imported passwore"},
		{"sha512, right", "sha512$salt$1bad1df881698c4f6a0931f37a5dc4bcb5ff20d530144a1f14ba153c03c020a2a5fbec48265d76cb56f6bedd9297b645d38dff3d054807936c5da4a04a19737c", "correct horse battery staple"},
		{"sha512, wrong", "sha512$salt$1bad1df881698c4f6a0931f37a5dc4bcb5ff20d530144a1f14ba153c03c020a2a5fbec48265d76cb56f6bedd9297b645d38dff3d054807936c5da4a04a19737c", "correct horse battery stapl"},
	}
	for _, tc := range malformedHashes {
		cases = append(cases, struct{ name, encoded, pw string }{"malformed: " + tc.name, tc.encoded, pw})
	}
	for _, tc := range cases {
		wantOK, wantRehash, wantErr := Verify(tc.encoded, tc.pw, testParams)
		ok, rehash, err := p.Verify(ctx, tc.encoded, tc.pw)
		if ok != wantOK || rehash != wantRehash || (err == nil) != (wantErr == nil) {
			t.Errorf("%s: pool Verify = %v, %v, %v; here %v, %v, %v", tc.name, ok, rehash, err, wantOK, wantRehash, wantErr)
			continue
		}
		if wantErr != nil && (!errors.Is(err, ErrMalformed) || err.Error() != wantErr.Error()) {
			t.Errorf("%s: pool error %q, here %q; want the same, wrapping ErrMalformed", tc.name, err, wantErr)
		}
	}
	if err := p.DummyVerify(ctx, pw); err != nil {
		t.Errorf("DummyVerify: %v", err)
	}
}

// The hashing process and every thread of it run at nice 19, and the
// server's own threads keep their priority.
func TestProcessPool_HashesAtTheLowestPriority(t *testing.T) {
	p := processPool(t, 2, 4)
	if _, err := p.Hash(context.Background(), "warm the process up"); err != nil {
		t.Fatal(err)
	}
	pid := p.ProcessID()
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil || len(tasks) == 0 {
		t.Fatalf("threads of the hashing process: %v (%d)", err, len(tasks))
	}
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + task.Name() + "/stat")
		if err != nil {
			continue // the thread ended meanwhile
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if f[16] != "19" { // field 19 of stat, the nice value
			t.Errorf("thread %s of the hashing process has nice %s, want 19", task.Name(), f[16])
		}
	}
	if f := procStat(os.Getpid()); f[16] != "0" {
		t.Errorf("this process's nice is %s, want 0 still", f[16])
	}
	prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, 0) // this thread; the kernel returns 20 - nice
	if err != nil || prio != 20 {
		t.Errorf("this thread's priority: %d (%v), want 20 (nice 0)", prio, err)
	}
}

// A hashing process that dies costs no call its answer: the call hashes
// here, and a later call starts another process.
func TestProcessPool_OutlivesItsProcess(t *testing.T) {
	p := processPool(t, 1, 4)
	ctx := context.Background()
	encoded, err := Hash("the password", testParams)
	if err != nil {
		t.Fatal(err)
	}
	first := p.ProcessID()
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(guard)
	for !gone(first) {
		if time.Now().After(deadline) {
			t.Fatal("the killed hashing process did not end")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ok, _, err := p.Verify(ctx, encoded, "the password"); !ok || err != nil {
		t.Fatalf("Verify after the process died: %v, %v; want true, nil", ok, err)
	}
	if ok, _, err := p.Verify(ctx, encoded, "not the password"); ok || err != nil {
		t.Fatalf("wrong password after the process died: %v, %v; want false, nil", ok, err)
	}
	// The next process starts a second after the death was seen.
	for {
		if _, _, err := p.Verify(ctx, encoded, "the password"); err != nil {
			t.Fatal(err)
		}
		if pid := p.ProcessID(); pid != 0 && pid != first {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no new hashing process was started")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ok, _, err := p.Verify(ctx, encoded, "the password"); !ok || err != nil {
		t.Fatalf("Verify in the new process: %v, %v; want true, nil", ok, err)
	}
}

// Close ends the hashing process, and the pool then refuses calls as
// before.
func TestProcessPool_CloseEndsItsProcess(t *testing.T) {
	p := processPool(t, 2, 4)
	if _, err := p.Hash(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
	pid := p.ProcessID()
	procs := runtime.GOMAXPROCS(0)
	p.Close()
	if !gone(pid) {
		t.Errorf("hashing process %d still runs after Close", pid)
	}
	if got := runtime.GOMAXPROCS(0); got != procs {
		t.Errorf("GOMAXPROCS %d after closing a process pool, was %d: it lends no processors", got, procs)
	}
	if _, err := p.Hash(context.Background(), "x"); !errors.Is(err, ErrClosed) {
		t.Errorf("Hash after Close: %v, want ErrClosed", err)
	}
}

// A hashing process given something other than requests ends with an
// error, without answering; at the end of its input it ends cleanly.
func TestServeHasher_EndsOnBadInput(t *testing.T) {
	var out bytes.Buffer
	if code := serveHasher(strings.NewReader("not a gob stream at all"), &out); code != 1 || out.Len() != 0 {
		t.Errorf("garbage in: exit %d with %d bytes out, want 1 and none", code, out.Len())
	}
	if code := serveHasher(strings.NewReader(""), &out); code != 0 || out.Len() != 0 {
		t.Errorf("empty input: exit %d with %d bytes out, want 0 and none", code, out.Len())
	}
}

// The hashing process is the program this process runs, even once the
// file it was started from is gone (an upgrade in place replaces it): a
// copy of this test binary removes itself, then starts a pool.
func TestProcessPool_StartsAfterItsProgramFileIsGone(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("hashing processes are only started on Linux")
	}
	if os.Getenv("BULWARK_TEST_PROGRAM_GONE") == "1" {
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(exe); err != nil {
			t.Fatal(err)
		}
		p := processPool(t, 1, 1)
		encoded, err := p.Hash(context.Background(), "the password")
		if err != nil {
			t.Fatal(err)
		}
		if ok, _, err := Verify(encoded, "the password", testParams); !ok || err != nil {
			t.Fatalf("hash of the process started from a removed program: %v, %v", ok, err)
		}
		return
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	prog, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	cp := t.TempDir() + "/copy.test"
	if err := os.WriteFile(cp, prog, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cp, "-test.run=^TestProcessPool_StartsAfterItsProgramFileIsGone$", "-test.v")
	cmd.Env = append(os.Environ(), "BULWARK_TEST_PROGRAM_GONE=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("the copy: %v\n%s", err, out)
	}
	if _, err := os.Stat(cp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the copy did not remove itself: %v", err)
	}
}
