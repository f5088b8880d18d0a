package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"bulwark/internal/audit"
	"bulwark/internal/keys"
	"bulwark/internal/store"
)

// auditEnv is what the audit scenarios run on: a store with the audit and
// key schemas and the bench's own notes table in every org database, a
// keyring (for checkpoint signatures) and the audit service.
type auditEnv struct {
	st  *store.Store
	svc *audit.Service
}

// benchNotesSchema is the small org table that the write scenario changes
// alongside its audit events.
func benchNotesSchema() store.Schema {
	return store.Schema{Name: "bench_notes", Scope: store.OrgScope, Migrations: []store.Migration{{
		Version: 1, Name: "notes", SQLite: "CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT NOT NULL)"}}}
}

// newAuditEnv opens fresh storage on driver. Org pools get the
// configuration's default of 4 connections.
func newAuditEnv(ctx context.Context, driver string, maxOpen int) (*auditEnv, func(), error) {
	opts, cleanup, err := storage(ctx, driver, maxOpen)
	if err != nil {
		return nil, nil, err
	}
	opts.MaxConnsPerOrg = 4
	st, err := store.Open(ctx, opts, keys.ControlSchema(), audit.ControlSchema(), audit.OrgSchema(), benchNotesSchema())
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	done := func() { st.Close(); cleanup() }
	kek, err := keys.OpenLocalKEK(opts.DataDir)
	if err != nil {
		done()
		return nil, nil, err
	}
	ring, err := keys.NewRing(ctx, st, kek, keys.Options{})
	if err != nil {
		done()
		return nil, nil, err
	}
	svc, err := audit.New(st, ring, audit.Options{IPKey: []byte("bench-ip-key-0123456789abcdef012")})
	if err != nil {
		done()
		return nil, nil, err
	}
	return &auditEnv{st: st, svc: svc}, done, nil
}

// createOrgDBs creates n org databases with a few workers.
func (env *auditEnv) createOrgDBs(ctx context.Context, n int) ([]string, error) {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan string)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range next {
				errs <- env.st.CreateOrgDB(ctx, id)
			}
		}()
	}
	for _, id := range ids {
		next <- id
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// The write scenario's shape: 32 workers, rounds of the three kinds of
// transaction in turn. A round spans three chaining intervals
// (audit.ChainInterval), as a server's steady load does: in a round of
// one, the only chaining and indexing ran as the workers stopped, after
// the whole round's events, where a server does each second's while the
// next second's are written. The last second's events are still chained
// after the workers stop, inside the round's time. Fifteen rounds: on this
// shared two-core machine a single round's cost swung from -44% to 48%
// when the machine stalled, and the median of nine moved by 3-5 points
// from run to run of the same code.
const (
	writeWorkers = 32
	writeRounds  = 15
	writeRound   = 3 * time.Second
	writeWarmup  = 300 * time.Millisecond
	auditBudget  = 0.25 // "audit costs ≤ 25%"
)

// writeKind is what a write scenario's transaction does besides
// inserting its note.
type writeKind int

const (
	writePlain     writeKind = iota // nothing
	writeAudited                    // appends the request's event to the org's log
	writeSecondRow                  // inserts a second note: the least any second row costs
)

// auditWrite measures write transactions per second with and without an
// audit event, on one org and spread over 100 orgs: each transaction
// inserts a note and, audited, appends one request's event to the org's
// log in the same transaction. Beside them, the same transaction with a
// second note instead of the event shows what any second row in it
// costs, the floor under an event's cost. The kinds of round take turns
// in a rotating order, and each cost is the median over the rounds of the
// ratio to the plain round of the same turn, so that drift in the
// machine's speed hits all alike.
func auditWrite(ctx context.Context, driver string, emit func(row)) error {
	env, done, err := newAuditEnv(ctx, driver, 200)
	if err != nil {
		return err
	}
	defer done()
	orgs, err := env.createOrgDBs(ctx, 100)
	if err != nil {
		return err
	}
	var seq atomic.Int64
	kinds := []writeKind{writePlain, writeAudited, writeSecondRow}
	for _, spread := range []struct {
		name string
		orgs []string
	}{{"one-org", orgs[:1]}, {"100-orgs", orgs}} {
		round := func(kind writeKind, d time.Duration) (float64, latencies, error) {
			return writeRoundRun(ctx, env, spread.orgs, kind, d, &seq)
		}
		for _, kind := range kinds {
			if _, _, err := round(kind, writeWarmup); err != nil {
				return err
			}
		}
		rates := make([][]float64, len(kinds))
		lats := make([]latencies, len(kinds))
		costs := make([][]float64, len(kinds))
		for r := range writeRounds {
			rate := make([]float64, len(kinds))
			for j := range kinds {
				kind := kinds[(r+j)%len(kinds)]
				ops, lat, err := round(kind, writeRound)
				if err != nil {
					return err
				}
				rate[kind] = ops
				rates[kind] = append(rates[kind], ops)
				lats[kind] = append(lats[kind], lat...)
			}
			for _, kind := range kinds[1:] {
				costs[kind] = append(costs[kind], 1-rate[kind]/rate[writePlain])
			}
		}
		cost, floor := median(costs[writeAudited]), median(costs[writeSecondRow])
		name := "audit-write/" + driver + " " + spread.name
		note := fmt.Sprintf("%d workers, tx = insert a note; median of %d rounds of %s; pools of 4 per org", writeWorkers, writeRounds, writeRound)
		if driver == "postgres" {
			note += "; audited rounds chain their events (the logs due every second, and the rest at their end, inside their time)"
		}
		emit(row{Scenario: name + " plain", OpsPerS: median(rates[writePlain]), P50: lats[writePlain].pct(0.5), P99: lats[writePlain].pct(0.99), Note: note})
		emit(row{Scenario: name + " audited", OpsPerS: median(rates[writeAudited]), P50: lats[writeAudited].pct(0.5), P99: lats[writeAudited].pct(0.99),
			Target: "audit costs ≤ 25%", Ratio: max(cost, 0.0025) / auditBudget,
			Note: fmt.Sprintf("costs %.1f%% of plain (median of %d rounds: %s); a second note instead costs %.1f%%", cost*100, writeRounds,
				percents(costs[writeAudited]), floor*100)})
		emit(row{Scenario: name + " second-row", OpsPerS: median(rates[writeSecondRow]), P50: lats[writeSecondRow].pct(0.5), P99: lats[writeSecondRow].pct(0.99),
			Note: fmt.Sprintf("tx = insert a note and a second one, no event: costs %.1f%% of plain (median of %d rounds: %s)", floor*100, writeRounds,
				percents(costs[writeSecondRow]))})
	}
	return nil
}

// writeRoundRun runs writeWorkers workers for d, each doing transactions
// of kind on a random org of orgs, and returns the transactions per
// second and each transaction's latency (acquire, InTx, release). An
// audited round chains and indexes its events as a server does
// (audit.ChainDue every audit.ChainInterval), and its time runs until the
// last of them is chained (audit.ChainPending as the workers stop), so
// that the chaining is paid for by the round that made it.
func writeRoundRun(ctx context.Context, env *auditEnv, orgs []string, kind writeKind, d time.Duration, seq *atomic.Int64) (float64, latencies, error) {
	chainErr := make(chan error, 1)
	stopChain := make(chan struct{})
	go func() {
		tick := time.NewTicker(audit.ChainInterval)
		defer tick.Stop()
		for {
			select {
			case <-stopChain:
				chainErr <- env.svc.ChainPending(ctx)
				return
			case <-tick.C:
				if err := env.svc.ChainDue(ctx); err != nil {
					<-stopChain
					chainErr <- err
					return
				}
			}
		}
	}()
	var wg sync.WaitGroup
	lats := make([]latencies, writeWorkers)
	errs := make([]error, writeWorkers)
	start := time.Now()
	deadline := start.Add(d)
	for w := range writeWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
			for time.Now().Before(deadline) {
				orgID := orgs[rng.IntN(len(orgs))]
				id := "n" + strconv.FormatInt(seq.Add(1), 10)
				t0 := time.Now()
				if err := writeTx(ctx, env, orgID, id, kind, rng); err != nil {
					errs[w] = err
					return
				}
				lats[w] = append(lats[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	close(stopChain)
	if err := <-chainErr; err != nil {
		return 0, nil, err
	}
	elapsed := time.Since(start)
	var all latencies
	for w := range writeWorkers {
		if errs[w] != nil {
			return 0, nil, errs[w]
		}
		all = append(all, lats[w]...)
	}
	return float64(len(all)) / elapsed.Seconds(), all, nil
}

const noteBody = "Quarterly access review: confirm that every member of the finance group still needs the ledger."

var userAgents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
	"Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
	"bulwark-cli/1.4.2 (linux; amd64)",
	"python-requests/2.32.3",
}

// writeTx is one write transaction of a request: a note inserted and,
// by kind, its event appended or a second note inserted in the same
// transaction.
func writeTx(ctx context.Context, env *auditEnv, orgID, id string, kind writeKind, rng *rand.Rand) error {
	src := audit.Source{ // the request's, known before its transaction
		Actor:     audit.Actor{Type: audit.ActorUser, ID: fmt.Sprintf("u-%04d", rng.IntN(500))},
		IP:        fmt.Sprintf("198.51.100.%d", rng.IntN(250)+1),
		UserAgent: userAgents[rng.IntN(len(userAgents))],
		RequestID: fmt.Sprintf("req-%016x", rng.Uint64()),
	}
	odb, err := env.st.AcquireOrg(ctx, orgID)
	if err != nil {
		return err
	}
	defer odb.Release()
	return odb.DB().InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.ExecContext(ctx, "INSERT INTO notes (id, body) VALUES ($1, $2)", id, noteBody); err != nil {
			return err
		}
		switch kind {
		case writePlain:
			return nil
		case writeSecondRow:
			// As cheaply as an event goes in: prepared on SQLite, sent with
			// the COMMIT on PostgreSQL.
			return tx.ExecAtCommit(ctx, "INSERT INTO notes (id, body) VALUES ($1, $2)", id+"b", noteBody)
		}
		_, err := env.svc.Append(ctx, tx, orgID, src.Event("note.created", audit.Resource{Type: "note", ID: id}, audit.Success,
			map[string]string{"changed": "title,text", "size": strconv.Itoa(len(noteBody))}))
		return err
	})
}

// The log of the read scenario: logEvents events over logSpan, appended
// fillBatch to a transaction.
const (
	logSpan   = 30 * 24 * time.Hour
	fillBatch = 2000
)

var logStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// auditRead fills one org's log with n varied events (times spread over 30
// days, a periodic checkpoint every 100,000), then measures Verify over
// the whole log and filtered Query on it: the rows audit-fill/,
// audit-verify/ and audit-query/ of driver.
func auditRead(ctx context.Context, driver string, n int, emit func(row)) error {
	if v, err := strconv.Atoi(os.Getenv("BULWARK_BENCH_AUDIT_EVENTS")); err == nil && v > 0 {
		n = v
	}
	env, done, err := newAuditEnv(ctx, driver, 10)
	if err != nil {
		return err
	}
	defer done()
	orgs, err := env.createOrgDBs(ctx, 1)
	if err != nil {
		return err
	}
	orgID := orgs[0]
	gen := newEventGen(1)
	step := logSpan / time.Duration(n)
	odb, err := env.st.AcquireOrg(ctx, orgID)
	if err != nil {
		return err
	}
	start := time.Now()
	for i := 0; i < n; i += fillBatch {
		err := odb.DB().InTx(ctx, func(tx *store.Tx) error {
			for j := i; j < min(i+fillBatch, n); j++ {
				// Each event its own time, as if each came from its own
				// request: a copy of tx with that Now.
				at := tx.At(logStart.Add(time.Duration(j) * step))
				if _, err := env.svc.Append(ctx, at, orgID, gen.next()); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			odb.Release()
			return err
		}
		if done := i + fillBatch; done%100000 == 0 || done >= n {
			if _, err := env.svc.Checkpoint(ctx, orgID, audit.Periodic); err != nil {
				odb.Release()
				return err
			}
			fmt.Fprintf(os.Stderr, "bench: %d/%d events appended\n", min(done, n), n)
		}
	}
	fill := time.Since(start)
	note := fmt.Sprintf("%d events, %d Appends per InTx, 1 checkpoint per 100,000", n, fillBatch)
	if driver == "postgres" {
		// A server's autovacuum vacuums and analyzes a table that grew
		// this much (setting hint bits and the visibility map, and giving
		// the planner statistics); the throwaway cluster's naptime is an
		// hour, so do it here.
		if _, err := odb.DB().SQL().ExecContext(ctx, "VACUUM ANALYZE audit_segments"); err != nil {
			odb.Release()
			return err
		}
		note += "; VACUUM ANALYZE after it, as autovacuum would"
	}
	odb.Release()
	emit(row{Scenario: "audit-fill/" + driver, OpsPerS: float64(n) / fill.Seconds(), Note: note})

	if err := verifyLog(ctx, env, driver, orgID, n, emit); err != nil {
		return err
	}
	return queryLog(ctx, env, driver, orgID, n, emit)
}

// verifyLog runs Verify over the whole log three times and reports the
// median speed.
func verifyLog(ctx context.Context, env *auditEnv, driver, orgID string, n int, emit func(row)) error {
	const runs = 3
	var took []time.Duration
	for range runs {
		runtime.GC()
		t0 := time.Now()
		rep, err := env.svc.Verify(ctx, orgID)
		if err != nil {
			return err
		}
		took = append(took, time.Since(t0))
		if !rep.OK || rep.EventsChecked != int64(n) {
			return fmt.Errorf("verify: ok %v, %d events checked, want %d: %s", rep.OK, rep.EventsChecked, n, rep.Problem)
		}
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	rate := float64(n) / took[runs/2].Seconds()
	emit(row{Scenario: "audit-verify/" + driver, OpsPerS: rate, Target: "≥ 500k events/s", Ratio: 500000 / rate,
		Note: fmt.Sprintf("events/s; Verify of %d events (every hash, %d checkpoints) took %s, median of %d",
			n, (n+99999)/100000, took[runs/2].Round(time.Millisecond), runs)})
	return nil
}

// queryKind is one kind of filtered query: q returns the i-th query's
// filter and cursor; what says what the queries are.
type queryKind struct {
	name, what string
	q          func(i int) (audit.Filter, string)
}

// Each kind runs queriesPerKind queries, or as many as fit in
// queryKindBudget when they are slow.
const (
	queriesPerKind  = 200
	queryKindBudget = 10 * time.Second
)

// queryLog runs a few hundred queries of each kind of filter (one page of
// the default size, newest first) and reports p50/p99 per kind, then over
// all of them, naming the worst kind.
func queryLog(ctx context.Context, env *auditEnv, driver, orgID string, n int, emit func(row)) error {
	rng := rand.New(rand.NewPCG(7, 7))
	end := logStart.Add(logSpan)
	randTime := func(lo, hi float64) time.Time { // a time between fractions lo and hi of the span
		return logStart.Add(time.Duration((lo + rng.Float64()*(hi-lo)) * float64(logSpan))).Truncate(time.Second)
	}
	// Cursors deep in the log (from 5% to 60% of it, counted from the
	// oldest event), taken as a client gets them: a page's next_cursor.
	deep := make([]string, 50)
	for i := range deep {
		p, err := env.svc.Query(ctx, orgID, audit.Filter{Until: randTime(0.05, 0.6)}, 1, "")
		if err != nil {
			return err
		}
		if p.NextCursor == nil {
			return fmt.Errorf("no next page below a deep time")
		}
		deep[i] = *p.NextCursor
	}
	actions := []string{"record.viewed", "record.updated", "auth.login.failed", "member.invited", "apikey.revoked", "file.uploaded"}
	prefixes := []string{"auth.*", "auth.*", "auth.*", "member.*"}
	outcomes := []string{audit.Denied, audit.Failure, audit.Success}
	kinds := []queryKind{
		{"actor", "one of 300 users (a few heavy), or TYPE:ID of an API key", func(i int) (audit.Filter, string) {
			if i%4 == 3 {
				return audit.Filter{Actor: fmt.Sprintf("api_key:k-%02d", rng.IntN(20))}, ""
			}
			return audit.Filter{Actor: userID(rng.IntN(users))}, ""
		}},
		{"action", "6 actions, 30% to 0.05% of events", func(i int) (audit.Filter, string) { return audit.Filter{Action: actions[i%len(actions)]}, "" }},
		{"action-prefix", "auth.* (26%) 3 times in 4, member.* (0.6%)", func(i int) (audit.Filter, string) { return audit.Filter{Action: prefixes[i%len(prefixes)]}, "" }},
		{"outcome", "denied, failure, success", func(i int) (audit.Filter, string) { return audit.Filter{Outcome: outcomes[i%len(outcomes)]}, "" }},
		{"resource", "record:ID, ~12 events each", func(i int) (audit.Filter, string) {
			return audit.Filter{Resource: "record:r" + strconv.Itoa(rng.IntN(records))}, ""
		}},
		{"since", "last hour, day or week", func(i int) (audit.Filter, string) {
			back := []time.Duration{time.Hour, 24 * time.Hour, 7 * 24 * time.Hour}[i%3]
			return audit.Filter{Since: end.Add(-back)}, ""
		}},
		{"since-until", "an hour or a day anywhere in the 30 days", func(i int) (audit.Filter, string) {
			since := randTime(0, 0.95)
			width := []time.Duration{time.Hour, 24 * time.Hour}[i%2]
			return audit.Filter{Since: since, Until: since.Add(width)}, ""
		}},
		{"actor+prefix", "a user and auth.*", func(i int) (audit.Filter, string) {
			return audit.Filter{Actor: userID(rng.IntN(users)), Action: "auth.*"}, ""
		}},
		{"outcome+window", "denied or failure within a week anywhere", func(i int) (audit.Filter, string) {
			since := randTime(0, 0.75)
			return audit.Filter{Outcome: outcomes[i%2], Since: since, Until: since.Add(7 * 24 * time.Hour)}, ""
		}},
		{"deep-page", "no filter, cursor 40-95% of the way down", func(i int) (audit.Filter, string) { return audit.Filter{}, deep[i%len(deep)] }},
		{"deep-page+actor", "a user, cursor 40-95% of the way down", func(i int) (audit.Filter, string) {
			return audit.Filter{Actor: userID(rng.IntN(users))}, deep[i%len(deep)]
		}},
	}
	var all latencies
	worst, worstP99 := "", 0.0
	for _, k := range kinds {
		lat := make(latencies, 0, queriesPerKind)
		items := 0
		start := time.Now()
		for i := 0; i < queriesPerKind && (i < 20 || time.Since(start) < queryKindBudget); i++ {
			f, cursor := k.q(i)
			t0 := time.Now()
			p, err := env.svc.Query(ctx, orgID, f, 0, cursor)
			if err != nil {
				return fmt.Errorf("query %s %+v: %w", k.name, f, err)
			}
			lat = append(lat, time.Since(t0))
			items += len(p.Items)
		}
		elapsed := time.Since(start)
		p99 := lat.pct(0.99)
		if p99 > worstP99 {
			worst, worstP99 = k.name, p99
		}
		all = append(all, lat...)
		emit(row{Scenario: "audit-query/" + driver + " " + k.name, OpsPerS: float64(len(lat)) / elapsed.Seconds(),
			P50: lat.pct(0.5), P99: p99, Target: "p99 < 50 ms", Ratio: p99 / 50,
			Note: fmt.Sprintf("%d queries (%s), %.1f events per page on average", len(lat), k.what, float64(items)/float64(len(lat)))})
	}
	p99 := all.pct(0.99)
	emit(row{Scenario: "audit-query/" + driver + " all", P50: all.pct(0.5), P99: p99, Target: "p99 < 50 ms", Ratio: p99 / 50,
		Note: fmt.Sprintf("%d queries of %d kinds over %d events; worst kind: %s (p99 %.1f ms)", len(all), len(kinds), n, worst, worstP99)})
	return nil
}

// The population of the generated log.
const (
	users   = 300
	records = 50000
)

func userID(i int) string { return fmt.Sprintf("u-%04d", i) }

// eventGen makes a varied, repeatable stream of events: a few heavy users
// and many light ones, reads more often than writes, sign-ins and their
// failures, rare membership and key changes, mostly successes.
type eventGen struct {
	rng     *rand.Rand
	actions []weighted
	total   float64
}

type weighted struct {
	action string
	weight float64
}

func newEventGen(seed uint64) *eventGen {
	g := &eventGen{rng: rand.New(rand.NewPCG(seed, seed)), actions: []weighted{
		{"record.viewed", 30}, {"record.updated", 18}, {"record.created", 10}, {"record.deleted", 2}, {"record.exported", 1},
		{"auth.login.succeeded", 8}, {"auth.login.failed", 3}, {"auth.logout", 5}, {"auth.session.refreshed", 6},
		{"auth.mfa.verified", 3}, {"auth.password.changed", 0.3},
		{"file.uploaded", 4}, {"file.downloaded", 6},
		{"member.invited", 0.3}, {"member.role_changed", 0.2}, {"member.removed", 0.1},
		{"apikey.created", 0.1}, {"apikey.revoked", 0.05}, {"settings.updated", 0.3},
	}}
	for _, a := range g.actions {
		g.total += a.weight
	}
	return g
}

func (g *eventGen) next() audit.Event {
	r := g.rng
	var src audit.Source
	switch x := r.Float64(); {
	case x < 0.90:
		u := int(math.Pow(r.Float64(), 2) * users) // skewed: low numbers are heavy users
		src = audit.Source{Actor: audit.Actor{Type: audit.ActorUser, ID: userID(u)},
			IP: fmt.Sprintf("203.0.%d.%d", 113+u%3, 1+u%250), UserAgent: userAgents[u%3],
			RequestID: fmt.Sprintf("req-%016x", r.Uint64())}
	case x < 0.97:
		k := r.IntN(20)
		src = audit.Source{Actor: audit.Actor{Type: audit.ActorAPIKey, ID: fmt.Sprintf("k-%02d", k)},
			IP: fmt.Sprintf("2001:db8::%x", k+1), UserAgent: userAgents[3+k%2], RequestID: fmt.Sprintf("req-%016x", r.Uint64())}
	default:
		src = audit.System
	}
	w := r.Float64() * g.total
	action := g.actions[len(g.actions)-1].action
	for _, a := range g.actions {
		if w < a.weight {
			action = a.action
			break
		}
		w -= a.weight
	}
	outcome := audit.Success
	switch x := r.Float64(); {
	case action == "auth.login.failed":
		outcome = audit.Failure
	case x < 0.025:
		outcome = audit.Denied
	case x < 0.04:
		outcome = audit.Failure
	}
	var res audit.Resource
	details := map[string]string{}
	switch group, _, _ := strings.Cut(action, "."); group {
	case "record":
		res = audit.Resource{Type: "record", ID: "r" + strconv.Itoa(r.IntN(records))}
		details["collection"] = fmt.Sprintf("c%02d", r.IntN(40))
		details["changed"] = []string{"title", "title,status", "status", "owner"}[r.IntN(4)]
	case "auth":
		res = audit.Resource{Type: "user", ID: src.Actor.ID}
		details["method"] = []string{"password", "passkey", "sso"}[r.IntN(3)]
		details["session_age_s"] = strconv.Itoa(r.IntN(86400))
	case "file":
		res = audit.Resource{Type: "file", ID: "f" + strconv.Itoa(r.IntN(20000))}
		details["size"] = strconv.Itoa(r.IntN(5 << 20))
		details["content_type"] = []string{"application/pdf", "image/png", "text/csv"}[r.IntN(3)]
	case "member":
		res = audit.Resource{Type: "member", ID: userID(r.IntN(users))}
		details["role"] = []string{"viewer", "editor", "admin"}[r.IntN(3)]
		details["by"] = src.Actor.ID
	case "apikey":
		res = audit.Resource{Type: "api_key", ID: fmt.Sprintf("k-%02d", r.IntN(20))}
		details["scopes"] = "records:read,records:write"
		details["expires_days"] = "90"
	default:
		res = audit.Resource{Type: "org_settings", ID: "org"}
		details["setting"] = []string{"retention_days", "mfa_required", "sso"}[r.IntN(3)]
		details["to"] = strconv.Itoa(r.IntN(400))
	}
	return src.Event(action, res, outcome, details)
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func percents(v []float64) string {
	p := make([]string, len(v))
	for i, x := range v {
		p[i] = fmt.Sprintf("%.0f%%", x*100)
	}
	return strings.Join(p, " ")
}
