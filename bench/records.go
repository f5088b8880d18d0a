package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"bulwark/internal/audit"
	"bulwark/internal/store"
)

// The records scenarios serve httpapi.NewServer on a loopback listener as
// cmd/bulwark assembles it (keys, audit, accounts, orgs, records, the
// redacting access log to io.Discard), authenticated with a JWT of an
// org owner, and load it from 32 keep-alive connections of the same
// process: GET one record with two sensitive fields (read in clear, so
// each GET also commits an audit event), the same GET by a viewer (the
// sensitive fields masked: no event, no write), list 20 records (a
// where filter; the page's clear read is one event), create a record.
// Beside them, a bare net/http handler on another loopback listener
// returns the same JSON from memory, loaded the same way, in the same run;
// beside the GET, the same handler after one durable commit of a small
// row (durableServer), the floor of an audited read.
// Reference (PocketBase v0.39, this machine kind, wrk -t2 -c32):
// 4,280 GET-by-id/s (p99 48 ms), 1,900 lists of 20/s, 2,415 creates/s.

const (
	recordsClients = 32
	recordsFor     = 10 * time.Second
	recordsSeed    = 1000
)

var pocketBase = map[string]float64{"get": 4280, "list": 1900, "create": 2415}

type recordsEnv struct {
	*serverEnv
	access string
	viewer string   // an API key with the viewer role: sensitive fields masked, no audit event
	recIDs []string // the seeded records
}

func newRecordsEnv(ctx context.Context, driver string) (*recordsEnv, func(), error) {
	srv, done, err := newServerEnv(ctx, driver, 1)
	if err != nil {
		return nil, nil, err
	}
	e := &recordsEnv{serverEnv: srv}
	fail := func(err error) (*recordsEnv, func(), error) { done(); return nil, nil, err }
	ids, orgs := e.serverEnv.ids, e.orgs

	// One owner, logged in; the org and its collection through the API.
	src := audit.Source{Actor: audit.Actor{Type: audit.ActorUser}, IP: "127.0.0.1"}
	const email = "owner@bench.example.com"
	if _, err := ids.Signup(ctx, src, email, benchPassword, "Owner"); err != nil {
		return fail(err)
	}
	if err := ids.VerifyEmail(ctx, src, e.outbox.token(email)); err != nil {
		return fail(err)
	}
	ie := &identityEnv{serverEnv: e.serverEnv}
	if _, e.access, err = ie.login(ctx, email); err != nil || e.access == "" {
		return fail(fmt.Errorf("login: %v", err))
	}
	if err := e.call(ctx, "POST", "/v1/orgs", `{"name":"Bench","slug":"bench"}`, 201, nil); err != nil {
		return fail(err)
	}
	o, err := orgs.Get(ctx, "bench")
	if err != nil {
		return fail(err)
	}
	if e.viewer, _, err = ids.CreateAPIKey(ctx, src, o.ID, "viewer", "viewer", nil); err != nil {
		return fail(err)
	}
	coll := `{"name":"people","fields":[{"name":"name","type":"text","required":true,"indexed":true},
{"name":"age","type":"number","indexed":true},{"name":"email","type":"text","sensitive":true},
{"name":"ssn","type":"text","indexed":true,"sensitive":true},{"name":"notes","type":"text"}]}`
	if err := e.call(ctx, "POST", "/v1/orgs/bench/collections", coll, 201, nil); err != nil {
		return fail(err)
	}
	start := time.Now()
	for i := range recordsSeed {
		var rec struct{ ID string }
		if err := e.call(ctx, "POST", "/v1/orgs/bench/collections/people/records", recordBody(i), 201, &rec); err != nil {
			return fail(err)
		}
		e.recIDs = append(e.recIDs, rec.ID)
	}
	fmt.Fprintf(os.Stderr, "bench: %d records in %.1fs\n", recordsSeed, time.Since(start).Seconds())
	return e, done, nil
}

func recordBody(i int) string {
	return fmt.Sprintf(`{"name":"Person %d","age":%d,"email":"p%d@example.com","ssn":"%03d-%02d-%04d","notes":"notes about person %d"}`,
		i, 18+i%70, i, i%1000, i%100, i, i)
}

// call makes one request with the owner's token and checks the status;
// into, when not nil, gets the JSON answer.
func (e *recordsEnv) call(ctx context.Context, method, path, body string, want int, into any) error {
	return e.callAs(ctx, e.access, method, path, body, want, into)
}

// callAs sends a request to the server with a bearer credential (an
// access token or an API key) and wants status want; into, when not nil,
// gets the JSON answer.
func (e *serverEnv) callAs(ctx context.Context, auth, method, path, body string, want int, into any) error {
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	req, err := http.NewRequestWithContext(ctx, method, e.url+path, rd)
	if err != nil {
		return err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+auth)
	resp, err := e.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if into != nil {
		return json.Unmarshal(b, into)
	}
	return nil
}

// bareServer serves body from memory on a loopback listener.
func bareServer(body []byte) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}

// durableServer serves body from memory on a loopback listener after
// committing one small row (a note, as in audit-write's plain
// transaction) to an org database of a store on driver, through the same
// InTx as every audited request: the commit is on disk before the answer.
// It is the floor under any request that must make a write durable before
// it answers, such as a read whose audit event must be.
func durableServer(ctx context.Context, driver string, body []byte) (string, func(), error) {
	env, done, err := newAuditEnv(ctx, driver, 10)
	if err != nil {
		return "", nil, err
	}
	orgs, err := env.createOrgDBs(ctx, 1)
	if err != nil {
		done()
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		done()
		return "", nil, err
	}
	var n atomic.Int64
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		odb, err := env.st.AcquireOrg(r.Context(), orgs[0])
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer odb.Release()
		id := "n" + strconv.FormatInt(n.Add(1), 10)
		if err := odb.DB().InTx(r.Context(), func(tx *store.Tx) error {
			// As cheaply as the store writes: prepared on SQLite, sent with
			// the COMMIT on PostgreSQL.
			return tx.ExecAtCommit(r.Context(), "INSERT INTO notes (id, body) VALUES ($1, $2)", id, noteBody)
		}); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() { srv.Close(); done() }, nil
}

func recordsHTTP(ctx context.Context, driver string, emit func(row)) error {
	e, done, err := newRecordsEnv(ctx, driver)
	if err != nil {
		return err
	}
	defer done()
	loadAverage := loadAvg()
	// load GETs url from recordsClients connections for recordsFor,
	// wanting 200, then stops its server (what bareServer or
	// durableServer returned).
	load := func(url string, stop func(), err error) (float64, latencies, error) {
		if err != nil {
			return 0, nil, err
		}
		defer stop()
		return run(recordsClients, recordsFor, func(int, int) error {
			resp, err := e.client.Get(url)
			if err != nil {
				return err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET %s: %s", url, resp.Status)
			}
			return nil
		})
	}
	type op struct {
		name, method string
		auth         string
		path         func(rng *rand.Rand, i int) string
		body         func(i int) string
		want         int
	}
	ops := []op{
		{"get", "GET", e.access, func(rng *rand.Rand, _ int) string {
			return "/v1/orgs/bench/collections/people/records/" + e.recIDs[rng.IntN(len(e.recIDs))]
		}, nil, 200},
		{"get-masked", "GET", e.viewer, func(rng *rand.Rand, _ int) string {
			return "/v1/orgs/bench/collections/people/records/" + e.recIDs[rng.IntN(len(e.recIDs))]
		}, nil, 200},
		{"list", "GET", e.access, func(rng *rand.Rand, _ int) string {
			return fmt.Sprintf("/v1/orgs/bench/collections/people/records?limit=20&where.age=%d", 18+rng.IntN(70))
		}, nil, 200},
		{"create", "POST", e.access, func(*rand.Rand, int) string { return "/v1/orgs/bench/collections/people/records" },
			func(i int) string { return recordBody(recordsSeed + i) }, 201},
	}
	only := os.Getenv("BULWARK_BENCH_RECORDS_OPS") // e.g. "get" to profile one
	for _, o := range ops {
		if only != "" && !slices.Contains(strings.Split(only, ","), o.name) {
			continue
		}
		// The bare handler answers what Bulwark answered to the same request.
		var sample json.RawMessage
		rng0 := rand.New(rand.NewPCG(1, 2))
		body := ""
		if o.body != nil {
			body = o.body(0)
		}
		if err := e.callAs(ctx, o.auth, o.method, o.path(rng0, 0), body, o.want, &sample); err != nil {
			return err
		}
		bareRate, bareLat, err := load(bareServer(sample))
		if err != nil {
			return err
		}
		emit(row{Scenario: "records-" + o.name + "/" + driver + "/bare-net-http", OpsPerS: bareRate, P50: bareLat.pct(0.5), P99: bareLat.pct(0.99),
			Note: fmt.Sprintf("%d bytes of JSON from memory, %d connections", len(sample), recordsClients)})
		if o.name == "get" {
			rate, lat, err := load(durableServer(ctx, driver, sample))
			if err != nil {
				return err
			}
			note := "the bare handler after committing one 100-byte row durably (store InTx, group commit), no auth, no read, no audit: the floor of an audited read"
			if driver == "postgres" {
				note += "; PostgreSQL here runs with fsync=off"
			}
			emit(row{Scenario: "records-get/" + driver + "/bare-durable-write", OpsPerS: rate, P50: lat.pct(0.5), P99: lat.pct(0.99),
				Ratio: rate / bareRate, Note: fmt.Sprintf("%.0f%% of bare; %s", 100*rate/bareRate, note)})
		}
		rngs := make([]*rand.Rand, recordsClients)
		for w := range rngs {
			rngs[w] = rand.New(rand.NewPCG(uint64(w), 7))
		}
		rate, lat, err := run(recordsClients, recordsFor, func(w, i int) error {
			b := ""
			if o.body != nil {
				b = o.body(w*1_000_000 + i + 1)
			}
			return e.callAs(ctx, o.auth, o.method, o.path(rngs[w], i), b, o.want, nil)
		})
		if err != nil {
			return err
		}
		r := row{Scenario: "records-" + o.name + "/" + driver, OpsPerS: rate, P50: lat.pct(0.5), P99: lat.pct(0.99)}
		if o.name == "get" {
			r.Target = "≥ 40% of bare; p99 < 10 ms"
			r.Ratio = rate / bareRate
			r.Note = fmt.Sprintf("%.0f%% of bare; p99/10ms %.2f; ", 100*rate/bareRate, lat.pct(0.99)/10)
		} else {
			r.Ratio = rate / bareRate
			r.Note = fmt.Sprintf("%.0f%% of bare; ", 100*rate/bareRate)
		}
		if pb, ok := pocketBase[o.name]; ok {
			r.Note += fmt.Sprintf("%.2f× PocketBase's %.0f/s (goal 2×); ", rate/pb, pb)
		} else {
			r.Note += "a viewer: sensitive fields masked, so no audit event; "
		}
		r.Note += "load " + loadAverage
		emit(r)
	}
	return nil
}
