package password

import (
	"bufio"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// A hashing process runs a Pool's hashes outside the server's process: the
// same executable, started again with hasherArg and hasherEnv, reads
// requests on its stdin and answers on its stdout (serveHasher). It runs at
// the lowest CPU priority (nice 19, see startHasherProcess), so that on a busy
// machine the threads that serve requests run first and a login flood
// cannot take the CPU from other requests; on an idle one the hashes still
// have every core. Being another process matters as much as the priority:
// each argon2id hash allocates its memory (19 MiB at the default cost) on
// the heap of the process that runs it, and in the server that made its
// garbage collector run every 60 ms or so under a flood, each collection
// first stopping every goroutine, the hashes' too, and waiting for them; a
// hash thread starved by the priority would have held up the whole server.
// The server's runtime no longer sees the hashes at all.
//
// The process holds no state: each request carries its password, stored
// hash and cost, and the answer is what Hash, Verify or DummyVerify would
// have returned in the server. It ends when its stdin closes (the server
// exited or closed the pool). When it cannot be started, or dies, the pool
// hashes in its own process and starts another at a later call.
const (
	hasherArg = "bulwark-password-hasher"
	hasherEnv = "BULWARK_PASSWORD_HASHER"
)

func init() {
	if len(os.Args) == 2 && os.Args[1] == hasherArg && os.Getenv(hasherEnv) == "1" {
		ignoreStopSignals()
		os.Exit(serveHasher(pollable(os.Stdin), pollable(os.Stdout)))
	}
}

// The operations of a hashing process.
const (
	opHash = iota + 1
	opVerify
	opDummy
)

type hashReq struct {
	ID       uint64
	Op       uint8
	Password string
	Encoded  string
	Params   Params
}

type hashResp struct {
	ID          uint64
	Encoded     string
	OK          bool
	NeedsRehash bool
	Malformed   string // Verify's error, without ErrMalformed's text
	Err         string // Hash's error
}

// run computes req in this process.
func (req hashReq) run() hashResp {
	resp := hashResp{ID: req.ID}
	switch req.Op {
	case opHash:
		enc, err := Hash(req.Password, req.Params)
		resp.Encoded = enc
		if err != nil {
			resp.Err = err.Error()
		}
	case opVerify:
		ok, rehash, err := Verify(req.Encoded, req.Password, req.Params)
		resp.OK, resp.NeedsRehash = ok, rehash
		if err != nil {
			resp.Malformed = strings.TrimPrefix(err.Error(), ErrMalformed.Error()+": ")
		}
	case opDummy:
		DummyVerify(req.Password, req.Params)
	default:
		resp.Err = fmt.Sprintf("password: unknown hasher operation %d", req.Op)
	}
	return resp
}

// serveHasher answers requests from in on out until in ends, each in a
// goroutine of its own (the server bounds how many it sends at once). It
// returns the process's exit code.
func serveHasher(in io.Reader, out io.Writer) int {
	dec := gob.NewDecoder(bufio.NewReader(in))
	w := bufio.NewWriter(out)
	enc := gob.NewEncoder(w)
	var mu sync.Mutex
	var wg sync.WaitGroup
	failed := false
	for {
		var req hashReq
		if err := dec.Decode(&req); err != nil {
			wg.Wait()
			if errors.Is(err, io.EOF) && !failed {
				return 0
			}
			fmt.Fprintln(os.Stderr, "password hasher:", err)
			return 1
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := req.run()
			mu.Lock()
			defer mu.Unlock()
			if failed {
				return
			}
			err := enc.Encode(&resp)
			if err == nil {
				err = w.Flush()
			}
			if err != nil {
				failed = true
				fmt.Fprintln(os.Stderr, "password hasher:", err)
			}
		}()
	}
}

// errHasherGone is returned by a call to a hashing process that exited or
// whose pipes failed.
var errHasherGone = errors.New("password: hashing process gone")

// hasher is the server's end of a hashing process.
type hasher struct {
	cmd   *exec.Cmd
	stdin io.Closer

	mu    sync.Mutex
	w     *bufio.Writer
	enc   *gob.Encoder
	next  uint64
	calls map[uint64]chan hashResp
	gone  bool

	exited chan struct{} // closed when the process has exited and been waited for
}

// newHasher starts a hashing process from cmd (whose stdin, stdout and
// stderr it sets) with start, which starts it at its priority.
func newHasher(cmd *exec.Cmd, start func(*exec.Cmd) error) (*hasher, error) {
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := start(cmd); err != nil {
		return nil, err
	}
	w := bufio.NewWriter(stdin)
	h := &hasher{cmd: cmd, stdin: stdin, w: w, enc: gob.NewEncoder(w), calls: map[uint64]chan hashResp{}, exited: make(chan struct{})}
	go h.read(stdout)
	return h, nil
}

// read hands each answer to its caller until the process's stdout ends,
// then fails the calls still waiting and reaps the process.
func (h *hasher) read(stdout io.Reader) {
	dec := gob.NewDecoder(bufio.NewReader(stdout))
	for {
		var resp hashResp
		if err := dec.Decode(&resp); err != nil {
			break
		}
		h.mu.Lock()
		ch := h.calls[resp.ID]
		delete(h.calls, resp.ID)
		h.mu.Unlock()
		if ch != nil {
			ch <- resp
		}
	}
	h.mu.Lock()
	h.gone = true
	for id, ch := range h.calls {
		close(ch)
		delete(h.calls, id)
	}
	h.mu.Unlock()
	_ = h.stdin.Close()
	_ = h.cmd.Wait()
	close(h.exited)
}

// call sends req and waits for its answer. It returns errHasherGone when
// the process exited or could not be written to.
func (h *hasher) call(req hashReq) (hashResp, error) {
	ch := make(chan hashResp, 1)
	h.mu.Lock()
	if h.gone {
		h.mu.Unlock()
		return hashResp{}, errHasherGone
	}
	h.next++
	req.ID = h.next
	h.calls[req.ID] = ch
	err := h.enc.Encode(&req)
	if err == nil {
		err = h.w.Flush()
	}
	if err != nil {
		delete(h.calls, req.ID)
		h.gone = true
		h.mu.Unlock()
		_ = h.stdin.Close() // the process ends, and read with it
		return hashResp{}, fmt.Errorf("%w: %w", errHasherGone, err)
	}
	h.mu.Unlock()
	resp, ok := <-ch
	if !ok {
		return hashResp{}, errHasherGone
	}
	return resp, nil
}

// close closes the process's stdin and waits for it to exit: it answers
// the requests it has, then ends.
func (h *hasher) close() {
	h.mu.Lock()
	h.gone = true
	h.mu.Unlock()
	_ = h.stdin.Close()
	<-h.exited
}

// hasherCommand returns the command that starts a hashing process: this
// executable, with hasherArg and only hasherEnv in its environment. The
// file run is the one this process runs (selfExe), even when the path it
// was started from now holds another version of the program.
func hasherCommand() (*exec.Cmd, error) {
	name, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, hasherArg)
	cmd.Path = selfExe(name)
	cmd.Env = []string{hasherEnv + "=1"}
	return cmd, nil
}
