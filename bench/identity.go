package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"runtime/metrics"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"bulwark/internal/audit"
	"bulwark/internal/httpapi"
	"bulwark/internal/identity"
	"bulwark/internal/identity/password"
	"bulwark/internal/identity/token"
	"bulwark/internal/keys"
	"bulwark/internal/observe"
	"bulwark/internal/org"
	brecords "bulwark/internal/records"
	"bulwark/internal/store"

	mailer "bulwark/internal/mail"
)

// The identity scenarios serve httpapi.NewServer on a real loopback
// listener, assembled as cmd/bulwark assembles it: platform keys, the
// audit log, a password pool of one worker per core hashing in its hashing
// process (password.NewProcessPool, at nice 19) at the default argon2id
// cost with auth.hash_queue's default queue of 8, the token issuer, and
// the redacting access log (written to io.Discard). The load comes from
// the same process, over HTTP/1.1 keep-alive connections.

const (
	benchPassword = "a long enough passphrase 2026"
	hashQueue     = 8   // config default of auth.hash_queue
	benchAccounts = 200 // verified accounts made before each run
	floodClients  = 32
	floodFor      = 15 * time.Second
	maxFloodWait  = 2 * time.Second
)

// identityEnv is a running server with accounts.
type identityEnv struct {
	*serverEnv
	emails []string
}

// outbox is a mail sender that keeps the last link mailed to each address.
type outbox struct {
	mu    sync.Mutex
	links map[string]string
}

var benchLinkRe = regexp.MustCompile(`token=([A-Za-z0-9_\-]+)`)

func (o *outbox) Send(ctx context.Context, m mailer.Message) error {
	if t := benchLinkRe.FindStringSubmatch(m.Text); t != nil {
		o.mu.Lock()
		o.links[m.To] = t[1]
		o.mu.Unlock()
	}
	return nil
}

func (o *outbox) token(to string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.links[to]
}

// newIdentityEnv starts a server on fresh storage with n verified accounts.
func newIdentityEnv(ctx context.Context, driver string, n int) (*identityEnv, func(), error) {
	srv, done, err := newServerEnv(ctx, driver, 0)
	if err != nil {
		return nil, nil, err
	}
	e := &identityEnv{serverEnv: srv}
	if e.emails, err = e.signups(ctx, n); err != nil {
		done()
		return nil, nil, err
	}
	return e, done, nil
}

// serverEnv is httpapi.NewServer on a loopback listener and fresh
// storage, assembled as cmd/bulwark assembles it: platform keys, the
// audit log, a password pool of `workers` (0: one per core) at the
// default argon2id cost with auth.hash_queue's default queue, the token
// issuer, orgs whose keys are made with them, records, and the redacting
// access log (written to io.Discard); mail goes to an in-memory outbox.
type serverEnv struct {
	st     *store.Store
	ring   *keys.Ring
	aud    *audit.Service
	pool   *password.Pool
	tokens *token.Issuer
	ids    *identity.Service
	orgs   *org.Service
	outbox *outbox
	srv    *http.Server
	url    string
	client *http.Client
}

func newServerEnv(ctx context.Context, driver string, workers int) (*serverEnv, func(), error) {
	opts, cleanup, err := storage(ctx, driver, 100)
	if err != nil {
		return nil, nil, err
	}
	opts.MaxConnsPerOrg = 4 // the configuration's default
	st, err := store.Open(ctx, opts, org.ControlSchema(), org.OrgSchema(), keys.ControlSchema(), keys.OrgSchema(), audit.ControlSchema(),
		audit.OrgSchema(), identity.ControlSchema(), brecords.OrgSchema())
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	e := &serverEnv{st: st, outbox: &outbox{links: map[string]string{}}}
	done := func() {
		if e.srv != nil {
			e.srv.Close()
		}
		if e.pool != nil {
			e.pool.Close()
		}
		st.Close()
		cleanup()
	}
	fail := func(err error) (*serverEnv, func(), error) { done(); return nil, nil, err }
	ipKey, err := observe.LoadOrCreateIPKey(opts.DataDir)
	if err != nil {
		return fail(err)
	}
	kek, err := keys.OpenLocalKEK(opts.DataDir)
	if err != nil {
		return fail(err)
	}
	if e.ring, err = keys.NewRing(ctx, st, kek, keys.Options{}); err != nil {
		return fail(err)
	}
	if err := e.ring.EnsurePlatformKeys(ctx); err != nil {
		return fail(err)
	}
	if e.aud, err = audit.New(st, e.ring, audit.Options{IPKey: ipKey}); err != nil {
		return fail(err)
	}
	// As the server: hashes in a hashing process of this executable.
	if e.pool, err = password.NewProcessPool(workers, hashQueue, password.DefaultParams); err != nil {
		return fail(err)
	}
	if e.tokens, err = token.NewIssuer(e.ring, token.Options{Issuer: "http://127.0.0.1", Audience: "bulwark"}); err != nil {
		return fail(err)
	}
	e.ids = identity.New(st, e.ring, e.aud, identity.Options{Passwords: e.pool, Params: e.pool.Params(), Tokens: e.tokens,
		Mail: e.outbox, BaseURL: "http://127.0.0.1"})
	e.orgs = org.NewService(st, nil)
	e.orgs.UseAudit(e.aud)
	e.orgs.OnCreate(func(ctx context.Context, tx *store.Tx, o org.Org) error { return e.ring.CreateOrgKeys(ctx, tx, o.ID) })
	h := httpapi.NewServer(httpapi.Deps{
		Logger:   observe.NewLogger(io.Discard, slog.LevelInfo, ipKey),
		IPKey:    ipKey,
		Orgs:     e.orgs,
		Audit:    e.aud,
		Identity: e.ids,
		Tokens:   e.tokens,
		Records:  brecords.New(st, e.ring, e.aud),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	e.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go e.srv.Serve(ln)
	e.url = "http://" + ln.Addr().String()
	e.client = &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute},
		Timeout: time.Minute}
	return e, done, nil
}

// signups makes n accounts through the service (default-cost hashes, one
// signup per worker of the pool at a time) and verifies their addresses
// with the mailed tokens.
func (e *identityEnv) signups(ctx context.Context, n int) ([]string, error) {
	start := time.Now()
	emails := make([]string, n)
	src := audit.Source{Actor: audit.Actor{Type: audit.ActorUser}, IP: "127.0.0.1"}
	errs := make(chan error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range e.pool.Workers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				email := fmt.Sprintf("user-%d@bench.example.com", i)
				if _, err := e.ids.Signup(ctx, src, email, benchPassword, fmt.Sprintf("User %d", i)); err != nil {
					errs <- fmt.Errorf("signup: %w", err)
					continue
				}
				if err := e.ids.VerifyEmail(ctx, src, e.outbox.token(email)); err != nil {
					errs <- fmt.Errorf("verify email: %w", err)
					continue
				}
				emails[i] = email
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "bench: %d verified accounts in %.1fs\n", n, time.Since(start).Seconds())
	return emails, nil
}

// login posts a login and reads the whole answer; access is the access
// token of a 200.
func (e *identityEnv) login(ctx context.Context, email string) (status int, access string, err error) {
	body, _ := json.Marshal(map[string]string{"email": email, "password": benchPassword})
	req, err := http.NewRequestWithContext(ctx, "POST", e.url+"/v1/auth/login", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", err
	}
	if resp.StatusCode == http.StatusOK {
		var t identity.Tokens
		if err := json.Unmarshal(b, &t); err != nil || t.AccessToken == "" {
			return resp.StatusCode, "", fmt.Errorf("login answered %q", b)
		}
		access = t.AccessToken
	}
	return resp.StatusCode, access, nil
}

// me gets /v1/me with an access token.
func (e *identityEnv) me(ctx context.Context, access string) error {
	return e.callAs(ctx, access, "GET", "/v1/me", "", http.StatusOK, nil)
}

// run calls fn from n goroutines until d has passed and returns the calls
// per second (finished calls over the time until the last one finished)
// and each call's latency.
func run(n int, d time.Duration, fn func(worker, i int) error) (float64, latencies, error) {
	var mu sync.Mutex
	var lat latencies
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine latencies
			for i := 0; time.Now().Before(deadline); i++ {
				t0 := time.Now()
				if err := fn(w, i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return float64(len(lat)) / time.Since(start).Seconds(), lat, firstErr
}

// identityLogin measures logins over HTTP at the default argon2id cost
// next to the bare argon2id verification rate, in alternating rounds so
// that a change of the machine's load hits both alike; the ratio is the
// median of the rounds'. The bare rate runs as many hashes at once as the
// pool has workers, in this process.
func identityLogin(ctx context.Context, driver string, emit func(row)) error {
	e, done, err := newIdentityEnv(ctx, driver, benchAccounts)
	if err != nil {
		return err
	}
	defer done()
	load := loadAvg()
	cores := e.pool.Workers()
	stored, err := password.Hash(benchPassword, password.DefaultParams)
	if err != nil {
		return err
	}
	bare := func(_, _ int) error {
		ok, _, err := password.Verify(stored, benchPassword, password.DefaultParams)
		if !ok || err != nil {
			return fmt.Errorf("bare verify: %v %v", ok, err)
		}
		return nil
	}
	// As many clients as the pool admits: a worker that finishes finds the
	// next login waiting even while other clients are in their
	// transactions (a commit waits for fsync), and none is refused, so every
	// login must succeed.
	clients := cores + hashQueue
	login := func(w, i int) error {
		st, _, err := e.login(ctx, e.emails[(w+i*clients)%len(e.emails)])
		if err == nil && st != http.StatusOK {
			err = fmt.Errorf("login: status %d", st)
		}
		return err
	}
	if _, _, err := run(clients, time.Second, login); err != nil { // warm up
		return err
	}
	const rounds, round = 7, 3 * time.Second
	var ratios []float64
	var bareLat, loginLat latencies
	var bareOps, loginOps float64
	var bareCPU, loginCPU time.Duration
	for range rounds {
		cpu0 := cpuTime()
		b, bl, err := run(cores, round, bare)
		if err != nil {
			return err
		}
		cpu1 := cpuTime()
		hasher := e.pool.ProcessID()
		hcpu1 := cpuTime(hasher)
		l, ll, err := run(clients, round, login)
		if err != nil {
			return err
		}
		bareCPU += cpu1 - cpu0
		loginCPU += cpuTime() - cpu1 + cpuTime(hasher) - hcpu1
		ratios = append(ratios, l/b)
		bareOps += b / rounds
		loginOps += l / rounds
		bareLat = append(bareLat, bl...)
		loginLat = append(loginLat, ll...)
	}
	sort.Float64s(ratios)
	ratio := ratios[len(ratios)/2]
	// Per CPU second of this process (the clients' share included) and of
	// the pool's hashing process, which the machine's other load skews
	// less.
	cpuRatio := (float64(len(loginLat)) / loginCPU.Seconds()) / (float64(len(bareLat)) / bareCPU.Seconds())
	emit(row{Scenario: "argon2id-verify-bare/" + driver, OpsPerS: bareOps, P50: bareLat.pct(0.5), P99: bareLat.pct(0.99),
		Note: fmt.Sprintf("password.Verify, m=19 MiB t=2 p=1, %d goroutines (the pool's workers) in this process, in the rounds of identity-login/%s; load %s", cores, driver, load)})
	emit(row{Scenario: "identity-login/" + driver, OpsPerS: loginOps, P50: loginLat.pct(0.5), P99: loginLat.pct(0.99),
		Target: "≥ 90% of bare", Ratio: 0.9 / ratio,
		Note: fmt.Sprintf("%.0f%% of bare (median of %d alternating %v rounds, %.0f%%..%.0f%%); CPU per op %.1fms vs bare %.1fms (%.0f%%); %d clients, pool %d+%d in its hashing process",
			100*ratio, rounds, round, 100*ratios[0], 100*ratios[len(ratios)-1],
			loginCPU.Seconds()*1000/float64(len(loginLat)), bareCPU.Seconds()*1000/float64(len(bareLat)), 100*cpuRatio,
			clients, cores, hashQueue)})
	return nil
}

// floodResult is what each request of a login flood got.
type floodResult struct {
	ok, busy, limited, other int
	all, okLat, busyLat      latencies
	elapsed                  time.Duration
}

// flood runs clients that post logins back to back, without backing off
// after a refusal, until d has passed.
func (e *identityEnv) flood(ctx context.Context, clients int, d time.Duration) (floodResult, error) {
	var res floodResult
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r floodResult
			for i := 0; time.Now().Before(deadline); i++ {
				t0 := time.Now()
				st, _, err := e.login(ctx, e.emails[(c+i*clients)%len(e.emails)])
				took := time.Since(t0)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				r.all = append(r.all, took)
				switch st {
				case http.StatusOK:
					r.ok++
					r.okLat = append(r.okLat, took)
				case http.StatusServiceUnavailable:
					r.busy++
					r.busyLat = append(r.busyLat, took)
				case http.StatusTooManyRequests:
					r.limited++
				default:
					r.other++
				}
			}
			mu.Lock()
			res.ok, res.busy, res.limited, res.other = res.ok+r.ok, res.busy+r.busy, res.limited+r.limited, res.other+r.other
			res.all = append(res.all, r.all...)
			res.okLat = append(res.okLat, r.okLat...)
			res.busyLat = append(res.busyLat, r.busyLat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res, firstErr
}

func (l latencies) max() time.Duration {
	var m time.Duration
	for _, d := range l {
		m = max(m, d)
	}
	return m
}

// identityLoginFlood measures a login flood: 32 clients for 15 s against
// a pool of GOMAXPROCS workers and a queue of 8. No request may wait more
// than 2 s: past the queue, the answer is a 503 after the pool's refusal
// pause (password.DefaultRefusalPause), with no hash.
func identityLoginFlood(ctx context.Context, driver string, emit func(row)) error {
	e, done, err := newIdentityEnv(ctx, driver, benchAccounts)
	if err != nil {
		return err
	}
	defer done()
	load := loadAvg()
	r, err := e.flood(ctx, floodClients, floodFor)
	if err != nil {
		return err
	}
	worst := r.all.max()
	emit(row{Scenario: "identity-login-flood/" + driver, OpsPerS: float64(r.ok) / r.elapsed.Seconds(),
		P50: r.all.pct(0.5), P99: r.all.pct(0.99), Target: "max wait < 2 s", Ratio: float64(worst) / float64(maxFloodWait),
		Note: fmt.Sprintf("%d clients %v: %d logins ok (p99 %.0fms), %d 503 after the refusal pause (p99 %.1fms), %d 429, %d other; max wait %.0fms; ops/s = logins ok; load %s",
			floodClients, floodFor, r.ok, r.okLat.pct(0.99), r.busy, r.busyLat.pct(0.99), r.limited, r.other,
			float64(worst)/float64(time.Millisecond), load)})
	return nil
}

// identityAuthedGetUnderFlood measures GET /v1/me with an access token,
// paced, first on a quiet server and then while the login flood runs in
// the same process against the same server.
func identityAuthedGetUnderFlood(ctx context.Context, driver string, emit func(row)) error {
	e, done, err := newIdentityEnv(ctx, driver, benchAccounts)
	if err != nil {
		return err
	}
	defer done()
	load := loadAvg()
	// Four readers, each with its own session, each a request every 20 ms.
	const readers, every = 4, 20 * time.Millisecond
	access := make([]string, readers)
	for i := range access {
		st, a, err := e.login(ctx, e.emails[i])
		if err != nil || st != http.StatusOK {
			return fmt.Errorf("login: %d %v", st, err)
		}
		access[i] = a
	}
	read := func(d time.Duration) (latencies, error) {
		var mu sync.Mutex
		var lat latencies
		var firstErr error
		var wg sync.WaitGroup
		deadline := time.Now().Add(d)
		for i := range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tick := time.NewTicker(every)
				defer tick.Stop()
				var mine latencies
				for time.Now().Before(deadline) {
					<-tick.C
					t0 := time.Now()
					if err := e.me(ctx, access[i]); err != nil {
						mu.Lock()
						firstErr = cmpErr(firstErr, err)
						mu.Unlock()
						return
					}
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		return lat, firstErr
	}
	if _, err := read(time.Second); err != nil { // warm up
		return err
	}
	s0 := schedLatencies()
	quiet, err := read(10 * time.Second)
	if err != nil {
		return err
	}
	s1 := schedLatencies()
	var fr floodResult
	var ferr error
	floodDone := make(chan struct{})
	go func() {
		fr, ferr = e.flood(ctx, floodClients, floodFor)
		close(floodDone)
	}()
	time.Sleep(time.Second) // let the flood fill the queue
	s2 := schedLatencies()
	loud, err := read(floodFor - 2*time.Second)
	s3 := schedLatencies()
	<-floodDone
	if err != nil {
		return err
	}
	if ferr != nil {
		return ferr
	}
	qp99, lp99 := quiet.pct(0.99), loud.pct(0.99)
	emit(row{Scenario: "identity-authed-get-quiet/" + driver, OpsPerS: float64(len(quiet)) / 10, P50: quiet.pct(0.5), P99: qp99,
		Note: fmt.Sprintf("GET /v1/me, %d readers each every %v; goroutines' runnable wait p99 %.2fms; load %s", readers, every,
			schedPct(s0, s1, 0.99), load)})
	emit(row{Scenario: "identity-authed-get-under-flood/" + driver, OpsPerS: float64(len(loud)) / (floodFor - 2*time.Second).Seconds(),
		P50: loud.pct(0.5), P99: lp99, Target: "p99 < 5× quiet", Ratio: lp99 / qp99 / 5,
		Note: fmt.Sprintf("%.1f× the quiet p99, max %.0fms; runnable wait p99 %.2fms; flood of %d clients beside it: %d logins ok, %d 503, max wait %.0fms",
			lp99/qp99, float64(loud.max())/float64(time.Millisecond), schedPct(s2, s3, 0.99), floodClients, fr.ok, fr.busy,
			float64(fr.all.max())/float64(time.Millisecond))})
	return nil
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// identityTokenVerify measures token.Issuer.Verify of an access token with
// a warm key cache (keys from a real keyring), on one goroutine and on
// GOMAXPROCS goroutines. Per core is the latter's rate over the cores; the
// note also gives verifications per CPU second of this process, which a
// busy machine does not skew.
func identityTokenVerify(ctx context.Context, emit func(row)) error {
	opts, cleanup, err := storage(ctx, "sqlite", 100)
	if err != nil {
		return err
	}
	defer cleanup()
	st, err := store.Open(ctx, opts, keys.ControlSchema())
	if err != nil {
		return err
	}
	defer st.Close()
	kek, err := keys.OpenLocalKEK(opts.DataDir)
	if err != nil {
		return err
	}
	ring, err := keys.NewRing(ctx, st, kek, keys.Options{})
	if err != nil {
		return err
	}
	if err := ring.EnsurePlatformKeys(ctx); err != nil {
		return err
	}
	is, err := token.NewIssuer(ring, token.Options{Issuer: "https://bulwark.example.com", Audience: "bulwark"})
	if err != nil {
		return err
	}
	tok, _, err := is.Issue(ctx, "0192f3a4-5b6c-7d8e-9f00-112233445566", "0192f3a4-5b6c-7d8e-9f00-665544332211", []string{"pwd"})
	if err != nil {
		return err
	}
	verify := func(_, _ int) error {
		_, err := is.Verify(ctx, tok)
		return err
	}
	cores := runtime.GOMAXPROCS(0)
	load := loadAvg()
	if _, _, err := run(1, 500*time.Millisecond, verify); err != nil { // warm up
		return err
	}
	for _, n := range []int{1, cores} {
		cpu0 := cpuTime()
		rate, lat, err := run(n, 3*time.Second, verify)
		if err != nil {
			return err
		}
		perCPU := float64(len(lat)) / (cpuTime() - cpu0).Seconds()
		perCore := rate / float64(n)
		name := "identity-token-verify/1-goroutine"
		if n > 1 {
			name = fmt.Sprintf("identity-token-verify/%d-goroutines", n)
		}
		emit(row{Scenario: name, OpsPerS: rate, P50: lat.pct(0.5), P99: lat.pct(0.99), Target: "≥ 200k/s per core",
			Ratio: 200000 / perCore,
			Note: fmt.Sprintf("%.0fk/s per core (rate / %d), %.0fk per CPU second; HS512, key cache warm; load %s",
				perCore/1000, n, perCPU/1000, load)})
	}
	return nil
}

// schedLatencies reads the runtime's histogram of how long goroutines
// were runnable before they ran: a process whose cores are all taken by
// hashing shows it here first.
func schedLatencies() *metrics.Float64Histogram {
	m := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	metrics.Read(m)
	if m[0].Value.Kind() != metrics.KindFloat64Histogram {
		return nil
	}
	return m[0].Value.Float64Histogram()
}

// schedPct is the p-th percentile in milliseconds of the runnable waits
// between two readings of schedLatencies (the upper bound of its bucket).
func schedPct(a, b *metrics.Float64Histogram, p float64) float64 {
	if a == nil || b == nil || len(a.Counts) != len(b.Counts) {
		return 0
	}
	var total uint64
	for i := range b.Counts {
		total += b.Counts[i] - a.Counts[i]
	}
	want := uint64(p * float64(total))
	var seen uint64
	for i := range b.Counts {
		seen += b.Counts[i] - a.Counts[i]
		if seen > want {
			return b.Buckets[i+1] * 1000
		}
	}
	return 0
}

// cpuTime is the user and system CPU time of this process so far, or
// of the process pid (from /proc; 0 when it cannot be read).
func cpuTime(pid ...int) time.Duration {
	if len(pid) > 0 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid[0]))
		if err != nil {
			return 0
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			return 0
		}
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAvg is the machine's load average over 1, 5 and 15 minutes.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
