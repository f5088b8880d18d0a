package password

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"bulwark/internal/apperr"
)

// ErrBusy is returned by a Pool call that finds every hashing slot busy
// and the queue full (or the recent hashes too slow for the queue's wait
// to be short), or that gave up waiting because its context ended
// (then it also wraps the context's error). Its code is unavailable, not
// rate_limited: the server is out of capacity, whatever this caller did,
// and rate_limited stays the answer to one client's too many attempts
// (throttling, lockout), so that the two can be told apart in logs and
// metrics. The HTTP layer answers 503 with a short Retry-After.
var ErrBusy = apperr.Errorf(apperr.Unavailable, "too many sign-ins at once, try again in a few seconds")

// ErrClosed is returned by a call to a Pool that is closed or closing.
var ErrClosed = apperr.Errorf(apperr.Unavailable, "password service is shutting down")

// Pool runs password hashes with bounded concurrency: at most workers at
// once, at most queue more waiting for a slot; a call beyond that fails
// with ErrBusy without waiting for any hash (after the refusal pause, see
// DefaultRefusalPause), so that a burst of logins costs the server a fast
// 503 rather than every core and an unbounded queue of goroutines, each
// holding argon2id's memory. The queue is also bounded in time: when the
// recent hashes were so slow (a machine short of CPU) that a new call would
// expect to wait more than maxWait for a slot, it is refused too. A call
// that holds a slot hands its hash to one of the pool's worker goroutines,
// or to the hashing process, and waits for it.
//
// Where the hashes run. A pool of NewProcessPool hands them to a hashing
// process (hasher.go) at the lowest CPU priority, so that under a login
// flood the server's other requests keep the CPU and its garbage collector
// never waits for a hash; this is what the server uses. A pool of NewPool
// or NewPoolWithParams hashes in this process, in its worker goroutines. A
// hash then holds a Go processor while it runs: the pool raises GOMAXPROCS
// by its workers while it is open, so that requests keep the processors
// they had instead of waiting for the Go scheduler to preempt a hash (after
// 10 ms), and the kernel shares the cores between the threads that hash
// and those that serve requests. Close gives the processors back.
//
// A Pool is safe for concurrent use.
type Pool struct {
	params  Params
	workers int
	limit   int           // workers + queue: calls admitted at once
	slots   chan struct{} // one token per running hash
	done    chan struct{} // closed by Close
	exec    chan *job     // to the workers; closed when the last call is done
	stopped sync.Once     // the workers and their processors are let go once

	mu       sync.Mutex
	closed   bool
	admitted int // waiting or running
	running  int
	hashTime time.Duration // moving average of the recent hashes' durations
	calls    sync.WaitGroup
	pause    time.Duration // how long a refused call waits before ErrBusy

	rejected, abandoned atomic.Uint64

	// testHook, when set, runs in each call after it took its slot and
	// before it hashes.
	testHook func()
	now      func() time.Time

	// lent is how many processors the pool added to GOMAXPROCS (none
	// when its hashes run in a hashing process).
	lent int
	// A pool of NewProcessPool hashes in a hashing process (hasher.go),
	// each call waiting for the process in its own goroutine (inline)
	// rather than through a worker; useProc says whether a process may
	// still be started (not after Close).
	inline    bool
	useProc   bool
	procMu    sync.Mutex
	proc      *hasher   // nil: none running
	procRetry time.Time // no new process before this, after one failed
}

// maxWait is how long a call may expect to wait for a slot. With two
// workers and the queue's default of 8, the last place in the queue waits
// for 8 hashes, 4 on each worker: the queue is cut short only when hashes
// take over 250 ms, 8 times argon2id's 30 ms at the default cost. A login
// then waits about this long at most, plus its own hash.
const maxWait = time.Second

// NewPool returns a Pool that hashes with DefaultParams, runs at most
// workers hashes at once and lets at most queue calls wait (none when
// queue ≤ 0). When workers ≤ 0 it has one per processor of GOMAXPROCS,
// not counting those that other open pools added for their own.
func NewPool(workers, queue int) *Pool {
	p, _ := NewPoolWithParams(workers, queue, DefaultParams)
	return p
}

// NewPoolWithParams is NewPool for hashes of cost params. It returns an
// error (internal) when params is outside the bounds of Params.
func NewPoolWithParams(workers, queue int, params Params) (*Pool, error) {
	if err := params.check(); err != nil {
		return nil, fmt.Errorf("password: pool params: %w", err)
	}
	queue = max(queue, 0)
	workers = lendProcs(workers)
	p := newPool(workers, queue, params)
	p.lent = workers
	for range workers {
		go p.worker()
	}
	return p, nil
}

// NewProcessPool is NewPoolWithParams for a pool whose hashes run in a
// hashing process (hasher.go) at the lowest CPU priority, which it starts;
// GOMAXPROCS is left alone, and workers ≤ 0 means one per processor. It
// returns an error when params is outside the bounds of Params (internal)
// or when the process cannot be started (then NewPoolWithParams still
// works). Should the process die later, calls hash in this process until
// another one starts, at most a second later.
func NewProcessPool(workers, queue int, params Params) (*Pool, error) {
	if err := params.check(); err != nil {
		return nil, fmt.Errorf("password: pool params: %w", err)
	}
	if workers <= 0 {
		workers = defaultWorkers()
	}
	p := newPool(workers, max(queue, 0), params)
	p.useProc = true
	h, err := startHasher()
	if err != nil {
		return nil, fmt.Errorf("password: start hashing process: %w", err)
	}
	p.proc = h
	p.inline = true
	return p, nil
}

// startHasher starts a hashing process of this executable.
func startHasher() (*hasher, error) {
	cmd, err := hasherCommand()
	if err != nil {
		return nil, err
	}
	return newHasher(cmd, startHasherProcess)
}

func newPool(workers, queue int, params Params) *Pool {
	return &Pool{
		params:  params,
		workers: workers,
		limit:   workers + queue,
		slots:   make(chan struct{}, workers),
		done:    make(chan struct{}),
		exec:    make(chan *job),
		now:     time.Now,
		pause:   DefaultRefusalPause,
	}
}

// compute runs req in the pool's hashing process when it has one, else
// here. After a process died or could not be started, the next is started
// by the first call a second later at the earliest; a call whose process
// died under it hashes here.
func (p *Pool) compute(req hashReq) hashResp {
	if h := p.hasher(); h != nil {
		resp, err := h.call(req)
		if err == nil {
			return resp
		}
		p.procMu.Lock()
		if p.proc == h {
			p.proc = nil
			p.procRetry = p.now().Add(time.Second)
		}
		p.procMu.Unlock()
	}
	return req.run()
}

// hasher returns the pool's hashing process, nil when it has none.
func (p *Pool) hasher() *hasher {
	p.procMu.Lock()
	defer p.procMu.Unlock()
	if p.proc == nil && p.useProc && !p.now().Before(p.procRetry) {
		h, err := startHasher()
		if err != nil {
			p.procRetry = p.now().Add(time.Second)
			return nil
		}
		p.proc = h
	}
	return p.proc
}

// ProcessID returns the process id of the pool's hashing process, 0 when
// it has none (a pool of NewPool, or between a process's death and the
// start of the next).
func (p *Pool) ProcessID() int {
	p.procMu.Lock()
	defer p.procMu.Unlock()
	if p.proc == nil {
		return 0
	}
	return p.proc.cmd.Process.Pid
}

// job is one hash handed to a worker.
type job struct {
	work  func()
	panic any
	done  chan struct{}
}

// worker runs jobs until the pool is closed.
func (p *Pool) worker() {
	for j := range p.exec {
		j.panic = catch(j.work)
		close(j.done)
	}
}

// Params returns the cost the pool hashes with and verifies against.
func (p *Pool) Params() Params { return p.params }

// Hash is Hash(pw, p.Params()) run in the pool. Returns unavailable
// (ErrBusy) when the pool is full or ctx ends before a slot is free,
// unavailable (ErrClosed) once the pool is closed.
func (p *Pool) Hash(ctx context.Context, pw string) (string, error) {
	var resp hashResp
	if runErr := p.run(ctx, func() { resp = p.compute(hashReq{Op: opHash, Password: pw, Params: p.params}) }); runErr != nil {
		return "", runErr
	}
	if resp.Err != "" {
		return "", errors.New(resp.Err)
	}
	return resp.Encoded, nil
}

// Verify is Verify(encoded, pw, p.Params()) run in the pool. Returns
// unavailable (ErrBusy) when the pool is full or ctx ends before a slot is
// free, unavailable (ErrClosed) once the pool is closed, and an error
// wrapping ErrMalformed (internal) for a stored hash that cannot be used.
func (p *Pool) Verify(ctx context.Context, encoded, pw string) (ok, needsRehash bool, err error) {
	var resp hashResp
	if runErr := p.run(ctx, func() { resp = p.compute(hashReq{Op: opVerify, Password: pw, Encoded: encoded, Params: p.params}) }); runErr != nil {
		return false, false, runErr
	}
	switch {
	case resp.Malformed != "":
		return false, false, malformed("%s", resp.Malformed)
	case resp.Err != "":
		return false, false, errors.New(resp.Err)
	}
	return resp.OK, resp.NeedsRehash, nil
}

// DummyVerify is DummyVerify(pw, p.Params()) run in the pool, for a login
// to an account that does not exist. It queues and is refused like Verify,
// so that a full pool answers alike for accounts that exist and that do
// not. Returns the errors of Pool.Verify's queueing.
func (p *Pool) DummyVerify(ctx context.Context, pw string) error {
	return p.run(ctx, func() { p.compute(hashReq{Op: opDummy, Password: pw, Params: p.params}) })
}

// run admits the call, waits for a slot, and runs work in it.
func (p *Pool) run(ctx context.Context, work func()) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrBusy, context.Cause(ctx))
	}
	p.mu.Lock()
	switch {
	case p.closed:
		p.mu.Unlock()
		return ErrClosed
	case p.full():
		p.mu.Unlock()
		p.rejected.Add(1)
		return p.refuse(ctx)
	}
	p.admitted++
	p.calls.Add(1)
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.admitted--
		p.mu.Unlock()
		p.calls.Done()
	}()

	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		p.abandoned.Add(1)
		return fmt.Errorf("%w: %w", ErrBusy, context.Cause(ctx))
	case <-p.done:
		return ErrClosed
	}
	defer func() { <-p.slots }()

	p.mu.Lock()
	if p.closed { // select picks at random among ready cases
		p.mu.Unlock()
		return ErrClosed
	}
	p.running++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.running--
		p.mu.Unlock()
	}()
	if p.testHook != nil {
		p.testHook()
	}
	start := p.now()
	var panicked any
	if p.inline {
		panicked = catch(work)
	} else {
		j := &job{work: work, done: make(chan struct{})}
		p.exec <- j // a worker is free: this call holds one of workers slots
		<-j.done
		panicked = j.panic
	}
	took := p.now().Sub(start)
	p.mu.Lock()
	if p.hashTime == 0 {
		p.hashTime = took
	} else {
		p.hashTime += (took - p.hashTime) / 8
	}
	p.mu.Unlock()
	if panicked != nil {
		panic(panicked)
	}
	return nil
}

// catch runs work and returns what it panicked with, if it did.
func catch(work func()) (v any) {
	defer func() { v = recover() }()
	work()
	return nil
}

// full reports whether a call made now is refused: every place is taken,
// or every slot is and the calls before it would take, at the recent
// hashes' pace, more than maxWait. The caller holds mu.
func (p *Pool) full() bool {
	if p.admitted >= p.limit {
		return true
	}
	ahead := p.admitted - p.workers + 1 // hashes that must end before a slot frees up for this call
	return ahead > 0 && time.Duration(ahead)*p.hashTime/time.Duration(p.workers) > maxWait
}

// Close makes every later call and every waiting call fail with ErrClosed,
// returns once the running hashes have finished, stops the workers and
// gives back the processors the pool added to GOMAXPROCS. Calling it again
// does nothing.
func (p *Pool) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.done)
	}
	p.mu.Unlock()
	p.calls.Wait()
	p.stopped.Do(func() {
		close(p.exec)
		returnProcs(p.lent)
		p.procMu.Lock()
		h := p.proc
		p.proc, p.useProc = nil, false
		p.procMu.Unlock()
		if h != nil {
			h.close()
		}
	})
}

// Refusal returns the error that a call made now would fail with, without
// a hash: ErrBusy when every slot and every place in the queue is taken, or
// the wait for a slot would be too long (counted in Rejected, and returned
// after the refusal pause, as a call's), ErrClosed once the pool is
// closed; nil when the call would be admitted. The answer may be stale by
// the time the caller acts on it: a caller uses it to refuse early, before
// work that only a hash would follow, and the call itself still decides.
func (p *Pool) Refusal(ctx context.Context) error {
	p.mu.Lock()
	switch {
	case p.closed:
		p.mu.Unlock()
		return ErrClosed
	case p.full():
		p.mu.Unlock()
		p.rejected.Add(1)
		return p.refuse(ctx)
	}
	p.mu.Unlock()
	return nil
}

// DefaultRefusalPause is how long a refused call waits before it returns
// ErrBusy, unless SetRefusalPause says otherwise.
//
// A refusal costs no hash, but it is still a request that the server reads,
// routes and answers. Clients that retry at once (a script, a flood) would
// turn fast refusals into thousands of requests a second that take the CPU
// from everyone else: measured here, 32 such clients made 10,000 refusals a
// second, and an authenticated GET beside them went from 1.5 ms to 50 ms at
// the 99th percentile, while fewer logins got through. Answering after a
// pause, which costs a sleeping goroutine and no CPU, bounds each client to
// four refusals a second. The pause is far below the queue's bound of
// maxWait, so a refused caller still learns sooner than a queued one would
// be served, and it is the same whether or not the account exists.
const DefaultRefusalPause = 250 * time.Millisecond

// SetRefusalPause sets how long a refused call waits before it returns
// ErrBusy (0: it returns at once). Set it before the pool is used.
func (p *Pool) SetRefusalPause(d time.Duration) { p.pause = max(d, 0) }

// refuse waits the refusal pause, or until ctx ends, and returns ErrBusy.
func (p *Pool) refuse(ctx context.Context) error {
	if p.pause <= 0 {
		return ErrBusy
	}
	t := time.NewTimer(p.pause)
	defer t.Stop()
	select {
	case <-t.C:
		return ErrBusy
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrBusy, context.Cause(ctx))
	}
}

// Workers returns how many hashes may run at once.
func (p *Pool) Workers() int { return p.workers }

// Running returns how many hashes are running now.
func (p *Pool) Running() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running
}

// Queued returns how many calls are waiting for a slot now.
func (p *Pool) Queued() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.admitted - p.running
}

// Rejected returns how many calls failed at once because the pool was
// full, since it was made.
func (p *Pool) Rejected() uint64 { return p.rejected.Load() }

// Abandoned returns how many calls gave up waiting for a slot because
// their context ended, since the pool was made.
func (p *Pool) Abandoned() uint64 { return p.abandoned.Load() }
