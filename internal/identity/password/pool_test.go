package password

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"bulwark/internal/apperr"
)

// guard is how long a test waits for something that must happen before it
// calls the code broken; it bounds a hang, it measures nothing.
const guard = 30 * time.Second

// gatedPool returns a pool of testParams whose hashes, once they hold a
// slot, announce themselves on started and wait for release to close.
func gatedPool(t *testing.T, workers, queue int) (p *Pool, started <-chan struct{}, release func()) {
	t.Helper()
	p, err := NewPoolWithParams(workers, queue, testParams)
	if err != nil {
		t.Fatal(err)
	}
	st := make(chan struct{}, 100)
	gate := make(chan struct{})
	p.testHook = func() {
		st <- struct{}{}
		<-gate
	}
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(func() { release(); p.Close() })
	return p, st, release
}

func waitFor(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(guard):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func TestPool_BurstBeyondTheQueueIsRejectedAtOnce(t *testing.T) {
	const workers, queue, burst = 1, 2, 10
	p, started, release := gatedPool(t, workers, queue)

	type result struct {
		i       int
		encoded string
		err     error
	}
	results := make(chan result, burst)
	var launch sync.WaitGroup
	go0 := make(chan struct{})
	for i := range burst {
		launch.Add(1)
		go func() {
			launch.Done()
			<-go0 // all ten start together
			h, err := p.Hash(context.Background(), "burst password")
			results <- result{i, h, err}
		}()
	}
	launch.Wait()
	close(go0)

	// The first hash to get the slot blocks in the hook. Every excess call
	// must come back while it is still blocked: rejection waits for no hash.
	waitFor(t, "the first hash to start", started)
	var got []result
	for len(got) < burst-workers-queue {
		select {
		case r := <-results:
			got = append(got, r)
		case <-time.After(guard):
			t.Fatalf("only %d calls returned while the running hash was held, want %d rejections", len(got), burst-workers-queue)
		}
	}
	for _, r := range got {
		if !errors.Is(r.err, ErrBusy) || apperr.CodeOf(r.err) != apperr.Unavailable {
			t.Fatalf("call %d returned %q, %v while the pool was full; want ErrBusy (unavailable)", r.i, r.encoded, r.err)
		}
	}
	if p.Running() != workers || p.Queued() != queue || p.Rejected() != burst-workers-queue {
		t.Fatalf("while held: running %d, queued %d, rejected %d; want %d, %d, %d",
			p.Running(), p.Queued(), p.Rejected(), workers, queue, burst-workers-queue)
	}
	select {
	case r := <-results:
		t.Fatalf("call %d returned (%v) before the running hash was released", r.i, r.err)
	default:
	}

	release()
	for range workers + queue {
		select {
		case r := <-results:
			if r.err != nil {
				t.Fatalf("accepted call %d: %v", r.i, r.err)
			}
			if ok, _, err := Verify(r.encoded, "burst password", testParams); !ok || err != nil {
				t.Fatalf("accepted call %d made a hash that does not verify: %v, %v", r.i, ok, err)
			}
		case <-time.After(guard):
			t.Fatal("accepted calls did not complete after release")
		}
	}
	if p.Running() != 0 || p.Queued() != 0 || p.Rejected() != burst-workers-queue {
		t.Fatalf("after: running %d, queued %d, rejected %d", p.Running(), p.Queued(), p.Rejected())
	}
}

func TestPool_NeverRunsMoreThanWorkersAtOnce(t *testing.T) {
	p, err := NewPoolWithParams(2, 100, testParams)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var active, peak atomic.Int32
	p.testHook = func() {
		n := active.Add(1)
		for {
			old := peak.Load()
			if n <= old || peak.CompareAndSwap(old, n) {
				break
			}
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
		active.Add(-1)
	}
	h, err := Hash("pool password", testParams)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var failures atomic.Int32
	for i := range 40 {
		wg.Go(func() {
			ctx := context.Background()
			switch i % 3 {
			case 0:
				if ok, _, err := p.Verify(ctx, h, "pool password"); !ok || err != nil {
					failures.Add(1)
				}
			case 1:
				if ok, _, err := p.Verify(ctx, h, "not the password"); ok || err != nil {
					failures.Add(1)
				}
			default:
				if err := p.DummyVerify(ctx, "no such user"); err != nil {
					failures.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d calls gave a wrong answer", failures.Load())
	}
	if got := peak.Load(); got > 2 || got < 1 {
		t.Fatalf("peak concurrency %d, want at most 2", got)
	}
	if p.Rejected() != 0 {
		t.Fatalf("rejected %d with room in the queue", p.Rejected())
	}
}

func TestPool_WaitingCallGivesUpWhenItsContextEnds(t *testing.T) {
	p, started, release := gatedPool(t, 1, 1)
	first := make(chan error, 1)
	go func() { _, err := p.Hash(context.Background(), "first"); first <- err }()
	waitFor(t, "the first hash to start", started)

	ctx, cancel := context.WithCancel(context.Background())
	waiting := make(chan error, 1)
	go func() {
		_, _, err := p.Verify(ctx, "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA", "x")
		waiting <- err
	}()
	for p.Queued() != 1 {
		runtime.Gosched()
	}
	cancel()
	select {
	case err := <-waiting:
		if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrBusy) || apperr.CodeOf(err) != apperr.Unavailable {
			t.Fatalf("waiting call returned %v, want ErrBusy wrapping context.Canceled", err)
		}
	case <-time.After(guard):
		t.Fatal("waiting call did not give up when its context ended")
	}
	if p.Abandoned() != 1 || p.Queued() != 0 || p.Running() != 1 {
		t.Fatalf("abandoned %d, queued %d, running %d; want 1, 0, 1", p.Abandoned(), p.Queued(), p.Running())
	}
	// Its place in the queue is free again.
	second := make(chan error, 1)
	go func() { second <- p.DummyVerify(context.Background(), "y") }()
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	// A context already done does not take a place at all.
	if _, err := p.Hash(ctx, "late"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Hash with a done context: %v", err)
	}
}

func TestPool_CloseFailsWaitingAndLaterCallsAndWaitsForRunning(t *testing.T) {
	p, started, release := gatedPool(t, 1, 1)
	running := make(chan error, 1)
	go func() { _, err := p.Hash(context.Background(), "running"); running <- err }()
	waitFor(t, "the running hash", started)
	waiting := make(chan error, 1)
	go func() { _, err := p.Hash(context.Background(), "waiting"); waiting <- err }()
	for p.Queued() != 1 {
		runtime.Gosched()
	}

	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	select {
	case err := <-waiting:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("waiting call: %v, want ErrClosed", err)
		}
	case <-time.After(guard):
		t.Fatal("Close left a waiting call waiting")
	}
	if _, err := p.Hash(context.Background(), "after"); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after Close: %v, want ErrClosed", err)
	}
	select {
	case <-closed:
		t.Fatal("Close returned while a hash was still running")
	default:
	}
	release()
	waitFor(t, "Close to return", closed)
	if err := <-running; err != nil {
		t.Fatalf("the running hash: %v", err)
	}
	p.Close() // again: nothing
}

func TestNewPool_Defaults(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	p := NewPool(0, -1)
	defer p.Close()
	if p.Workers() != procs || p.Params() != DefaultParams {
		t.Fatalf("NewPool(0, -1): %d workers, %+v", p.Workers(), p.Params())
	}
	if _, err := NewPoolWithParams(1, 1, Params{MemoryKiB: 1 << 30, Time: 1, Threads: 1}); err == nil {
		t.Fatal("NewPoolWithParams accepted 1 TiB of memory")
	}
	if apperr.CodeOf(ErrBusy) != apperr.Unavailable || apperr.CodeOf(ErrClosed) != apperr.Unavailable {
		t.Fatal("ErrBusy and ErrClosed must be unavailable")
	}
}

func TestPool_RefusalSaysWhatACallWouldGetNow(t *testing.T) {
	p, started, release := gatedPool(t, 1, 1)
	if err := p.Refusal(context.Background()); err != nil {
		t.Fatalf("empty pool: Refusal = %v, want nil", err)
	}
	done := make(chan error, 2)
	go func() { _, err := p.Hash(context.Background(), "first"); done <- err }()
	waitFor(t, "the first hash to start", started)
	if err := p.Refusal(context.Background()); err != nil {
		t.Fatalf("a free place in the queue: Refusal = %v, want nil", err)
	}
	go func() { _, err := p.Hash(context.Background(), "second"); done <- err }()
	deadline := time.Now().Add(guard)
	for p.Queued() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the second call never queued")
		}
		time.Sleep(time.Millisecond)
	}
	if err := p.Refusal(context.Background()); !errors.Is(err, ErrBusy) || p.Rejected() != 1 {
		t.Fatalf("full pool: Refusal = %v, rejected %d; want ErrBusy, counted", err, p.Rejected())
	}
	release()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	p.Close()
	if err := p.Refusal(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed pool: Refusal = %v, want ErrClosed", err)
	}
}

// A pool adds a processor per worker to GOMAXPROCS while it is open and
// gives them back once, in whatever order pools open and close; a second
// pool's default size does not count the first one's processors.
func TestPool_LendsProcessorsToItsWorkersUntilClosed(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	a := NewPool(0, 0)
	if got := runtime.GOMAXPROCS(0); got != 2*procs {
		t.Fatalf("GOMAXPROCS with a pool of %d open: %d, want %d", a.Workers(), got, 2*procs)
	}
	b := NewPool(0, 0)
	if b.Workers() != procs {
		t.Fatalf("second default pool: %d workers, want %d (the processors not lent)", b.Workers(), procs)
	}
	c, err := NewPoolWithParams(3, 0, testParams)
	if err != nil {
		t.Fatal(err)
	}
	if got := runtime.GOMAXPROCS(0); got != 3*procs+3 {
		t.Fatalf("GOMAXPROCS with three pools open: %d, want %d", got, 3*procs+3)
	}
	a.Close()
	a.Close()
	if got := runtime.GOMAXPROCS(0); got != 2*procs+3 {
		t.Fatalf("GOMAXPROCS after closing the first pool twice: %d, want %d", got, 2*procs+3)
	}
	c.Close()
	b.Close()
	if got := runtime.GOMAXPROCS(0); got != procs {
		t.Fatalf("GOMAXPROCS after every pool closed: %d, want %d", got, procs)
	}
	if _, err := NewPoolWithParams(1, 1, Params{MemoryKiB: 1 << 30, Time: 1, Threads: 1}); err == nil {
		t.Fatal("NewPoolWithParams accepted 1 TiB of memory")
	}
	if got := runtime.GOMAXPROCS(0); got != procs {
		t.Fatalf("GOMAXPROCS after a pool that failed to open: %d, want %d", got, procs)
	}
}

// When the recent hashes were slow, a call that would wait more than
// maxWait for a slot is refused at once, though the queue has room; once
// hashes are fast again, the whole queue is open again.
func TestPool_SlowHashesShortenTheQueue(t *testing.T) {
	const workers, queue = 1, 8
	p, err := NewPoolWithParams(workers, queue, testParams)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var mu sync.Mutex
	clock := time.Unix(1_700_000_000, 0)
	p.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	hashTakes := func(d time.Duration) {
		t.Helper()
		if err := p.run(context.Background(), func() { mu.Lock(); clock = clock.Add(d); mu.Unlock() }); err != nil {
			t.Fatal(err)
		}
	}
	admitted := func() int {
		t.Helper()
		gate := make(chan struct{})
		started := make(chan struct{}, queue+workers)
		p.testHook = func() { started <- struct{}{}; <-gate }
		defer func() { p.testHook = nil }()
		var calls sync.WaitGroup
		defer calls.Wait()
		defer close(gate)
		n := 0
		for p.Refusal(context.Background()) == nil {
			n++
			calls.Add(1)
			go func() { defer calls.Done(); _, _ = p.Hash(context.Background(), "pw") }()
			if n <= workers {
				waitFor(t, "a call to take a slot", started)
			} else {
				for p.Queued() < n-workers {
					runtime.Gosched()
				}
			}
		}
		return n
	}

	hashTakes(400 * time.Millisecond)
	// The first call runs at once, the next ones wait for those before
	// them: 400 ms, 800 ms, then 1.2 s for a fourth, which is refused.
	if n := admitted(); n != 3 {
		t.Fatalf("after a 400 ms hash, %d calls admitted, want 3", n)
	}
	for range 40 {
		hashTakes(30 * time.Millisecond)
	}
	if n := admitted(); n != workers+queue {
		t.Fatalf("after fast hashes, %d calls admitted, want %d", n, workers+queue)
	}
}

// A refused call (a hash call or Refusal) waits the refusal pause before it
// answers ErrBusy, holding no slot and no place in the queue while it
// waits, and its context ends the wait. With no pause it answers at once.
func TestPool_RefusalsAnswerAfterThePause(t *testing.T) {
	p, started, release := gatedPool(t, 1, 0)
	p.SetRefusalPause(time.Hour)
	held := make(chan error, 1)
	go func() { _, err := p.Hash(context.Background(), "first"); held <- err }()
	waitFor(t, "the first hash to start", started)

	type answer struct{ err error }
	ctx, cancel := context.WithCancel(context.Background())
	refusal, call := make(chan answer, 1), make(chan answer, 1)
	go func() { refusal <- answer{p.Refusal(ctx)} }()
	go func() { _, err := p.Hash(ctx, "second"); call <- answer{err} }()
	deadline := time.Now().Add(guard)
	for p.Rejected() != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the two calls were never refused")
		}
		time.Sleep(time.Millisecond)
	}
	// Both are refused and pausing: neither holds a place, and neither has
	// answered.
	if p.Running() != 1 || p.Queued() != 0 {
		t.Fatalf("while two refusals pause: running %d, queued %d; want 1, 0", p.Running(), p.Queued())
	}
	select {
	case a := <-refusal:
		t.Fatalf("Refusal answered (%v) before its pause ended", a.err)
	case a := <-call:
		t.Fatalf("a refused Hash answered (%v) before its pause ended", a.err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	for _, ch := range []chan answer{refusal, call} {
		select {
		case a := <-ch:
			if !errors.Is(a.err, ErrBusy) || !errors.Is(a.err, context.Canceled) {
				t.Fatalf("refused call after its context ended: %v, want ErrBusy and context.Canceled", a.err)
			}
		case <-time.After(guard):
			t.Fatal("a refused call kept pausing after its context ended")
		}
	}

	p.SetRefusalPause(0)
	if err := p.Refusal(context.Background()); !errors.Is(err, ErrBusy) || errors.Is(err, context.Canceled) {
		t.Fatalf("Refusal without a pause: %v, want ErrBusy", err)
	}
	release()
	if err := <-held; err != nil {
		t.Fatal(err)
	}
}
