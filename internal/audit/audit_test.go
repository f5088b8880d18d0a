package audit

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"bulwark/internal/apperr"
	"bulwark/internal/keys"
	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// clock is a settable clock shared by the store, the ring and the service.
type clock = storetest.Clock

func newClock() *clock { return storetest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) }

// notesSchema is an org table that the tests change alongside events.
func notesSchema() store.Schema {
	return store.Schema{Name: "notes", Scope: store.OrgScope, Migrations: []store.Migration{{
		Version: 1, Name: "notes", SQLite: "CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT NOT NULL)"}}}
}

type env struct {
	st   *store.Store
	ring *keys.Ring
	svc  *Service
	clk  *clock
	org  string
	dir  string
}

func newEnv(t testing.TB, opts store.Options) *env {
	t.Helper()
	ctx := context.Background()
	clk := newClock()
	opts.Now = clk.Now
	st, err := store.Open(ctx, opts, keys.ControlSchema(), ControlSchema(), OrgSchema(), notesSchema())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kek, err := keys.OpenLocalKEK(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keys.NewRing(ctx, st, kek, keys.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(st, ring, Options{Now: clk.Now, IPKey: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	org := uuid.NewString()
	if err := st.CreateOrgDB(ctx, org); err != nil {
		t.Fatal(err)
	}
	return &env{st: st, ring: ring, svc: svc, clk: clk, org: org, dir: opts.DataDir}
}

var alice = Source{Actor: Actor{Type: ActorUser, ID: "u-alice"}, IP: "203.0.113.7", UserAgent: "test/1.0", RequestID: "req-1"}

// record appends n events to the org's log, each in its own transaction.
func (e *env) record(t *testing.T, n int, action string) {
	t.Helper()
	for i := 0; i < n; i++ {
		err := e.svc.Record(context.Background(), e.org, alice.Event(action, Resource{Type: "record", ID: fmt.Sprintf("r%d", i)}, Success,
			map[string]string{"i": fmt.Sprint(i)}))
		if err != nil {
			t.Fatal(err)
		}
	}
}

// exec and count run SQL on the org's database as the log stands once
// chained (on PostgreSQL the committed events in its inbox are chained
// first), with the log's stored events laid out as the table
// audit_events, one row per event (eventsTableOfTests): SQL that changes the
// table changes the stored log, as an attacker with write access to the
// database could (each row written back as a segment of its own, with the
// hash it holds).
func (e *env) exec(t testing.TB, q string, args ...any) {
	t.Helper()
	e.withEventsTable(t, true, true, func(db *sql.DB) {
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	})
}

func (e *env) count(t testing.TB, q string, args ...any) int {
	t.Helper()
	var n int
	e.withEventsTable(t, true, false, func(db *sql.DB) {
		if err := db.QueryRow(q, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	})
	return n
}

// eventsTableOfTests is the table of exec and count: an event's fields as its
// record holds them (the time in its hashed form), and its stored hash.
const eventsTableOfTests = `CREATE TABLE audit_events (seq BIGINT PRIMARY KEY, id TEXT NOT NULL, time TEXT NOT NULL,
	actor_type TEXT NOT NULL, actor_id TEXT NOT NULL, action TEXT NOT NULL, resource_type TEXT NOT NULL, resource_id TEXT NOT NULL,
	outcome TEXT NOT NULL, ip TEXT NOT NULL, user_agent TEXT NOT NULL, request_id TEXT NOT NULL, details TEXT NOT NULL,
	hash BLOB NOT NULL)`

// withEventsTable runs fn with the org log's events laid out in
// audit_events, and then, when write is set, makes the table the stored
// log.
func (e *env) withEventsTable(t testing.TB, chain, write bool, fn func(db *sql.DB)) {
	t.Helper()
	ctx := context.Background()
	if chain {
		if err := e.svc.Chain(ctx, e.org); err != nil {
			t.Fatal(err)
		}
	}
	odb, err := e.st.AcquireOrg(ctx, e.org)
	if err != nil {
		t.Fatal(err)
	}
	defer odb.Release()
	db := odb.DB().SQL()
	ddl := eventsTableOfTests
	if odb.DB().Driver() == store.Postgres {
		ddl = strings.Replace(ddl, "BLOB", "BYTEA", 1)
	}
	if _, err := db.Exec(ddl); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if _, err := db.Exec("DROP TABLE audit_events"); err != nil {
			t.Fatal(err)
		}
	}()
	err = scanEvents(ctx, db, math.MinInt64, math.MaxInt64, false, func(f *fields, hash []byte) (bool, error) {
		args := []any{f.seq}
		for _, v := range f.f {
			args = append(args, string(v))
		}
		args = append(args, string(f.details), bytes.Clone(hash))
		_, err := db.Exec(`INSERT INTO audit_events VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`, args...)
		return true, err
	})
	if err != nil {
		t.Fatal(err)
	}
	fn(db)
	if !write {
		return
	}
	rows, err := db.Query(`SELECT seq, id, time, actor_type, actor_id, action, resource_type, resource_id, outcome, ip, user_agent,
	request_id, details, hash FROM audit_events ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		seq int64
		rec []byte
	}
	var out []row
	for rows.Next() {
		var (
			seq     int64
			f       [eventFields]string
			details string
			hash    []byte
		)
		if err := rows.Scan(&seq, &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7], &f[8], &f[9], &f[10], &details, &hash); err != nil {
			t.Fatal(err)
		}
		body := hashInput(nil, e.org, nil, seq, &f, []byte(details))[hashPrefixLen(e.org, nil):]
		out = append(out, row{seq, appendRecord(nil, body, hash)})
	}
	rows.Close()
	if _, err := db.Exec("DELETE FROM audit_segments"); err != nil {
		t.Fatal(err)
	}
	for _, r := range out {
		if _, err := db.Exec(insertSegmentSQL, r.seq, r.seq, r.rec); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *env) verify(t *testing.T) Report {
	t.Helper()
	rep, err := e.svc.Verify(context.Background(), e.org)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestAppend_CommitsAndRollsBackWithTheChange(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		change := func(id string, fail bool) error {
			return e.svc.InLogTx(ctx, e.org, func(tx *store.Tx) error {
				if _, err := tx.ExecContext(ctx, "INSERT INTO notes (id, body) VALUES ($1, 'x')", id); err != nil {
					return err
				}
				if _, err := e.svc.Append(ctx, tx, e.org, alice.Event("record.created", Resource{"record", id}, Success, nil)); err != nil {
					return err
				}
				if fail {
					return errors.New("the change fails after its event was appended")
				}
				return nil
			})
		}
		if err := change("n1", false); err != nil {
			t.Fatal(err)
		}
		if err := change("n2", true); err == nil {
			t.Fatal("the failing change committed")
		}
		if err := change("n3", false); err != nil {
			t.Fatal(err)
		}
		if n := e.count(t, "SELECT COUNT(*) FROM notes"); n != 2 {
			t.Fatalf("notes = %d, want 2", n)
		}
		if n := e.count(t, "SELECT COUNT(*) FROM audit_events WHERE resource_id = 'n2'"); n != 0 {
			t.Fatalf("the rolled-back change left %d events", n)
		}
		// The rolled-back event took no seq: the log stays gapless.
		if n := e.count(t, "SELECT COUNT(*) FROM audit_events WHERE seq IN (1, 2) AND resource_id IN ('n1', 'n3')"); n != 2 {
			t.Fatalf("committed events are not seq 1 and 2")
		}
		if rep := e.verify(t); !rep.OK || rep.EventsChecked != 2 || rep.Head.Seq != 2 {
			t.Fatalf("verify: %+v", rep)
		}
	})
}

func TestAppend_ConcurrentWritersGetGaplessSeqs(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		e := newEnv(t, opts)
		const n = 64
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- e.svc.Record(context.Background(), e.org, alice.Event("record.updated", Resource{"record", fmt.Sprint(i)}, Success, nil))
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if got := e.count(t, "SELECT COUNT(*) FROM audit_events WHERE seq BETWEEN 1 AND $1", n); got != n {
			t.Fatalf("%d events with seq 1..%d, want all", got, n)
		}
		if rep := e.verify(t); !rep.OK || rep.EventsChecked != n {
			t.Fatalf("verify: %+v", rep)
		}
	})
}

func TestAppend_SecretsAndContentsAreNeverStored(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		markers := []string{"hunter2-Marker-Pw", "eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlMTIz", "bwk_Zq8rT2vLx9MarkerKey",
			"carol.marker@example.com", "Record-Content-Marker-77", "Sekr3tTokenMarkerXXXXXXXXXXXXXXXXXXXXXXXX"}
		ev := alice.Event("auth.login.succeeded", Resource{"user", "u-alice"}, Success, map[string]string{
			"password":      markers[0],
			"access_token":  markers[1],
			"api_key":       markers[2],
			"email":         markers[3],
			"body":          markers[4],
			"note":          "logged in with Bearer " + markers[5] + " from " + markers[3],
			"authorization": "Bearer " + markers[5],
			"reason":        "key " + markers[2] + " and jwt " + markers[1],
			"kek_version":   "3",
		})
		stored, err := e.svc.Append(ctx, nil, "", Event{}) // no tx: refused before any write
		_ = stored
		if apperr.CodeOf(err) != apperr.Invalid {
			t.Fatalf("an empty event: %v, want invalid", err)
		}
		if err := e.svc.Record(ctx, e.org, ev); err != nil {
			t.Fatal(err)
		}
		page, err := e.svc.Query(ctx, e.org, Filter{}, 0, "")
		if err != nil || len(page.Items) != 1 {
			t.Fatalf("query: %+v, %v", page, err)
		}
		if got := page.Items[0].Details["kek_version"]; got != "3" {
			t.Fatalf("a plain detail was changed to %q", got)
		}
		dump := e.dumpLog(t)
		for _, m := range markers {
			if bytes.Contains(dump, []byte(m)) {
				t.Errorf("the stored log contains %q", m)
			}
		}
		if opts.Driver == store.SQLite {
			// The database files themselves, WAL included.
			files, _ := filepath.Glob(filepath.Join(e.dir, "orgs", e.org+".db*"))
			if len(files) == 0 {
				t.Fatal("no org database file found")
			}
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range markers {
					if bytes.Contains(b, []byte(m)) {
						t.Errorf("%s contains %q", filepath.Base(f), m)
					}
				}
			}
		}
		if rep := e.verify(t); !rep.OK {
			t.Fatalf("verify: %+v", rep)
		}
	})
}

// dumpLog returns every stored byte of the org's log, as text.
func (e *env) dumpLog(t *testing.T) []byte {
	t.Helper()
	odb, err := e.st.AcquireOrg(context.Background(), e.org)
	if err != nil {
		t.Fatal(err)
	}
	defer odb.Release()
	var out bytes.Buffer
	err = scanSegments(context.Background(), odb.DB().SQL(), 0, math.MaxInt64, false, func(_ int64, seg []byte) (bool, error) {
		out.Write(seg)
		out.WriteByte('\n')
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestAppend_RefusesMalformedEventsAndWritesNothing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		ok := alice.Event("record.created", Resource{"record", "r1"}, Success, nil)
		bad := map[string]func(ev *Event){
			"actor.type":    func(ev *Event) { ev.Actor.Type = "root" },
			"action":        func(ev *Event) { ev.Action = "Created" },
			"outcome":       func(ev *Event) { ev.Outcome = "ok" },
			"ip":            func(ev *Event) { ev.IP = "not-an-ip" },
			"resource.type": func(ev *Event) { ev.Resource.Type = "Record; DROP" },
			"actor.id":      func(ev *Event) { ev.Actor.ID = strings.Repeat("x", 300) },
			"details":       func(ev *Event) { ev.Details = map[string]string{"Bad Key": "v"} },
		}
		for field, mutate := range bad {
			ev := ok
			mutate(&ev)
			err := e.svc.Record(ctx, e.org, ev)
			if apperr.CodeOf(err) != apperr.Invalid || len(apperr.FieldsOf(err)) != 1 || apperr.FieldsOf(err)[0].Field != field {
				t.Errorf("%s: %v (fields %v), want invalid naming %s", field, err, apperr.FieldsOf(err), field)
			}
		}
		big := ok
		big.Details = map[string]string{}
		for i := range 40 {
			big.Details[fmt.Sprintf("k%d", i)] = "v"
		}
		if err := e.svc.Record(ctx, e.org, big); apperr.CodeOf(err) != apperr.Invalid {
			t.Errorf("40 details: %v, want invalid", err)
		}
		if n := e.count(t, "SELECT COUNT(*) FROM audit_events"); n != 0 {
			t.Fatalf("%d events written by refused appends", n)
		}
		if n := e.count(t, "SELECT seq FROM audit_head"); n != 0 {
			t.Fatalf("head seq %d after refused appends, want 0", n)
		}
	})
}
