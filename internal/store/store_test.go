package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"bulwark/internal/apperr"
	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

var (
	orgA = "0190f5a0-0000-7000-8000-00000000000a"
	orgB = "0190f5a0-0000-7000-8000-00000000000b"
	orgC = "0190f5a0-0000-7000-8000-00000000000c"
)

// notesSchema is a small org schema; its versions can be cut to simulate
// a database written by an older binary.
func notesSchema(versions int) store.Schema {
	all := []store.Migration{
		{Version: 1, Name: "notes", SQLite: `CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL, created_at TIMESTAMP NOT NULL)`,
			Postgres: `CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL)`},
		{Version: 2, Name: "tags", SQLite: `CREATE TABLE tags (name TEXT PRIMARY KEY); CREATE INDEX notes_created ON notes (created_at)`},
	}
	return store.Schema{Name: "notes", Scope: store.OrgScope, Migrations: all[:versions]}
}

func controlSchema(versions int) store.Schema {
	all := []store.Migration{
		{Version: 1, Name: "things", SQLite: `CREATE TABLE things (id INTEGER PRIMARY KEY, label TEXT NOT NULL)`},
		{Version: 2, Name: "stamps", SQLite: `CREATE TABLE stamps (id INTEGER PRIMARY KEY, at TIMESTAMP NOT NULL); INSERT INTO things (id, label) VALUES (1, 'seed')`,
			Postgres: `CREATE TABLE stamps (id INTEGER PRIMARY KEY, at TIMESTAMPTZ NOT NULL); INSERT INTO things (id, label) VALUES (1, 'seed')`},
		{Version: 3, Name: "more", SQLite: `ALTER TABLE things ADD COLUMN note TEXT`},
	}
	return store.Schema{Name: "things", Scope: store.ControlScope, Migrations: all[:versions]}
}

func open(t *testing.T, opts store.Options, schemas ...store.Schema) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), opts, schemas...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func migrationRows(t *testing.T, db *store.DB, schema string) []int {
	t.Helper()
	rows, err := db.SQL().Query("SELECT version FROM schema_migrations WHERE schema = $1 ORDER BY version", schema)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var vs []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	return vs
}

func count(t *testing.T, db *store.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.SQL().QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func TestOpen_AppliesControlMigrationsOnceInOrder(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st, err := store.Open(ctx, opts, controlSchema(2))
		if err != nil {
			t.Fatal(err)
		}
		if got := migrationRows(t, st.Control(), "things"); len(got) != 2 || got[0] != 1 || got[1] != 2 {
			t.Fatalf("versions after first open = %v, want [1 2]", got)
		}
		st.Close()

		// Opening again applies nothing: the seed row of v2 is not duplicated.
		st = open(t, opts, controlSchema(2))
		if n := count(t, st.Control(), "SELECT COUNT(*) FROM things"); n != 1 {
			t.Fatalf("things rows after reopen = %d, want 1 (migration ran twice?)", n)
		}
		st.Close()

		// A newer binary applies only the new version.
		st = open(t, opts, controlSchema(3))
		if got := migrationRows(t, st.Control(), "things"); len(got) != 3 {
			t.Fatalf("versions after upgrade = %v, want [1 2 3]", got)
		}
		if _, err := st.Control().SQL().Exec("UPDATE things SET note = $1", "x"); err != nil {
			t.Fatalf("column of v3 missing: %v", err)
		}
		st.Close()

		// An older binary refuses a database it does not understand.
		if st, err := store.Open(ctx, opts, controlSchema(1)); err == nil {
			st.Close()
			t.Fatal("Open with an older schema succeeded, want refusal")
		} else if !strings.Contains(err.Error(), "newer") {
			t.Fatalf("error = %v, want it to say the database is newer", err)
		}
	})
}

func TestOpen_RefusesMalformedSchemas(t *testing.T) {
	tests := []struct {
		name   string
		schema store.Schema
	}{
		{"no name", store.Schema{Migrations: []store.Migration{{Version: 1, SQLite: "SELECT 1"}}}},
		{"gap in versions", store.Schema{Name: "x", Migrations: []store.Migration{{Version: 1, SQLite: "SELECT 1"}, {Version: 3, SQLite: "SELECT 1"}}}},
		{"starts at 0", store.Schema{Name: "x", Migrations: []store.Migration{{Version: 0, SQLite: "SELECT 1"}}}},
		{"empty SQL", store.Schema{Name: "x", Migrations: []store.Migration{{Version: 1}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := store.Open(context.Background(), store.Options{Driver: store.SQLite, DataDir: t.TempDir()}, tt.schema)
			if err == nil {
				st.Close()
				t.Fatal("Open succeeded, want error")
			}
		})
	}
}

func TestAcquireOrg_MigratesDatabaseThatIsBehind(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		old, err := store.Open(ctx, opts, notesSchema(1))
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{orgA, orgB} {
			if err := old.CreateOrgDB(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		old.Close()

		st := open(t, opts, notesSchema(2))
		o, err := st.AcquireOrg(ctx, orgA)
		if err != nil {
			t.Fatal(err)
		}
		defer o.Release()
		if got := migrationRows(t, o.DB(), "notes"); len(got) != 2 {
			t.Fatalf("org A versions after open = %v, want [1 2]", got)
		}
		if _, err := o.DB().SQL().Exec("INSERT INTO tags (name) VALUES ($1)", "red"); err != nil {
			t.Fatalf("table of v2 missing after open: %v", err)
		}

		// MigrateOrg migrates without opening through the cache, and is idempotent.
		for i, want := range []int{1, 0} {
			n, err := st.MigrateOrg(ctx, orgB)
			if err != nil || n != want {
				t.Fatalf("MigrateOrg #%d = %d, %v; want %d, nil", i+1, n, err, want)
			}
		}
		if n, err := st.MigrateOrg(ctx, orgC); apperr.CodeOf(err) != apperr.NotFound {
			t.Fatalf("MigrateOrg of a missing org = %d, %v; want not_found", n, err)
		}
	})
}

func TestInTx_CommitsOnNilRollsBackOnErrorAndPanic(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := open(t, opts, controlSchema(1))
		db := st.Control()
		insert := func(id int) func(tx *store.Tx) error {
			return func(tx *store.Tx) error {
				_, err := tx.ExecContext(ctx, "INSERT INTO things (id, label) VALUES ($1, $2)", id, "x")
				return err
			}
		}
		if err := db.InTx(ctx, insert(1)); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("boom")
		err := db.InTx(ctx, func(tx *store.Tx) error {
			if err := insert(2)(tx); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("InTx error = %v, want fn's error", err)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Error("panic in fn did not propagate")
				}
			}()
			_ = db.InTx(ctx, func(tx *store.Tx) error {
				if err := insert(3)(tx); err != nil {
					return err
				}
				panic("boom")
			})
		}()
		if n := count(t, db, "SELECT COUNT(*) FROM things"); n != 1 {
			t.Fatalf("rows = %d, want 1 (only the committed one)", n)
		}
		// The pool is still usable: the rolled-back transactions released their connections.
		if err := db.InTx(ctx, insert(4)); err != nil {
			t.Fatal(err)
		}
	})
}

func TestInTx_NowIsOneUTCMicrosecondInstantThatRoundTrips(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		// A clock in a non-UTC zone, with nanoseconds, that moves on every read.
		zone := time.FixedZone("X", 5*3600+1800)
		var ticks atomic.Int64
		base := time.Date(2031, 3, 4, 5, 6, 7, 123456789, zone)
		opts.Now = func() time.Time { return base.Add(time.Duration(ticks.Add(1)) * time.Millisecond) }
		st := open(t, opts, controlSchema(2))

		var now time.Time
		err := st.Control().InTx(ctx, func(tx *store.Tx) error {
			now = tx.Now
			for id := 1; id <= 2; id++ {
				if _, err := tx.ExecContext(ctx, "INSERT INTO stamps (id, at) VALUES ($1, $2)", id, tx.Now); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if now.Location() != time.UTC || now.Nanosecond()%1000 != 0 {
			t.Fatalf("tx.Now = %v, want UTC truncated to microseconds", now)
		}
		rows, err := st.Control().SQL().Query("SELECT at FROM stamps ORDER BY id")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var at time.Time
			if err := rows.Scan(&at); err != nil {
				t.Fatal(err)
			}
			if !at.Equal(now) {
				t.Errorf("stored %v, want %v (the transaction's Now)", at.UTC(), now)
			}
		}
		// Stored times compare in time order against bound parameters.
		if n := count(t, st.Control(), "SELECT COUNT(*) FROM stamps WHERE at < $1", now.Add(time.Microsecond)); n != 2 {
			t.Fatalf("rows before Now+1µs = %d, want 2", n)
		}
		if n := count(t, st.Control(), "SELECT COUNT(*) FROM stamps WHERE at < $1", now.In(zone)); n != 0 {
			t.Fatalf("rows before Now (given in another zone) = %d, want 0", n)
		}
	})
}

func TestPlaceholders_BindByNumberOnBothDrivers(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		st := open(t, opts, controlSchema(1))
		var a, b, c string
		err := st.Control().SQL().QueryRow("SELECT CAST($2 AS TEXT), CAST($1 AS TEXT), CAST($1 AS TEXT)", "first", "second").Scan(&a, &b, &c)
		if err != nil {
			t.Fatal(err)
		}
		if a != "second" || b != "first" || c != "first" {
			t.Fatalf("SELECT $2, $1, $1 = %q, %q, %q; want second, first, first", a, b, c)
		}
		if _, err := st.Control().SQL().Exec("INSERT INTO things (label, id) VALUES ($2, $1)", 7, "seven"); err != nil {
			t.Fatal(err)
		}
		if n := count(t, st.Control(), "SELECT COUNT(*) FROM things WHERE id = $1 AND label = $2", 7, "seven"); n != 1 {
			t.Fatal("row inserted with reordered placeholders not found")
		}
	})
}

// opensCounter is a gate that counts cold opens per org.
type opensCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *opensCounter) gate(ctx context.Context, orgID string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[orgID]++
	return nil
}

func (c *opensCounter) get(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[id]
}

func createOrgs(t *testing.T, st *store.Store, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := st.CreateOrgDB(context.Background(), id); err != nil {
			t.Fatalf("CreateOrgDB %s: %v", id, err)
		}
	}
}

func acquire(t *testing.T, st *store.Store, id string) *store.OrgDB {
	t.Helper()
	o, err := st.AcquireOrg(context.Background(), id)
	if err != nil {
		t.Fatalf("AcquireOrg %s: %v", id, err)
	}
	return o
}

func TestAcquireOrg_EvictsLeastRecentlyUsedBeyondCap(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		opts.MaxOpenOrgs = 2
		st := open(t, opts, notesSchema(1))
		var opens opensCounter
		st.SetGate(opens.gate)
		createOrgs(t, st, orgA, orgB, orgC)

		acquire(t, st, orgA).Release()
		acquire(t, st, orgB).Release()
		acquire(t, st, orgA).Release() // A is now more recent than B
		acquire(t, st, orgC).Release() // over the cap: B goes
		if n := st.OpenOrgs(); n != 2 {
			t.Fatalf("OpenOrgs = %d, want the cap 2", n)
		}
		acquire(t, st, orgA).Release()
		if n := opens.get(orgA); n != 1 {
			t.Fatalf("org A opened %d times, want 1 (it was recently used and should have stayed)", n)
		}
		acquire(t, st, orgB).Release()
		if n := opens.get(orgB); n != 2 {
			t.Fatalf("org B opened %d times, want 2 (evicted as least recently used, then reopened)", n)
		}
		if n := st.OpenOrgs(); n != 2 {
			t.Fatalf("OpenOrgs = %d, want 2", n)
		}
	})
}

func TestRelease_EvictedOrOverCapHandleClosesAtLastRelease(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		opts.MaxOpenOrgs = 1
		st := open(t, opts, notesSchema(1))
		createOrgs(t, st, orgA, orgB)
		ping := func(o *store.OrgDB) error {
			return o.DB().SQL().QueryRow("SELECT COUNT(*) FROM notes").Scan(new(int))
		}

		// Two users of A; Evict takes it out of the cache but neither loses it.
		a1, a2 := acquire(t, st, orgA), acquire(t, st, orgA)
		st.Evict(orgA)
		if n := st.OpenOrgs(); n != 1 {
			t.Fatalf("OpenOrgs after evicting an in-use handle = %d, want 1", n)
		}
		a1.Release()
		a1.Release() // a second Release of one use changes nothing
		if err := ping(a2); err != nil {
			t.Fatalf("handle closed while a user still holds it: %v", err)
		}
		a2.Release()
		if n := st.OpenOrgs(); n != 0 {
			t.Fatalf("OpenOrgs after last release = %d, want 0", n)
		}

		// Over the cap: B pushes the in-use A out of the cache, A stays usable.
		a := acquire(t, st, orgA)
		b := acquire(t, st, orgB)
		if n := st.OpenOrgs(); n != 2 {
			t.Fatalf("OpenOrgs with A in use and B cached = %d, want 2", n)
		}
		if err := ping(a); err != nil {
			t.Fatalf("over-cap handle closed while in use: %v", err)
		}
		a.Release()
		if n := st.OpenOrgs(); n != 1 {
			t.Fatalf("OpenOrgs after releasing the over-cap handle = %d, want 1", n)
		}
		b.Release()
	})
}

func TestJanitor_ClosesIdleHandlesOnly(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		var clock atomic.Int64
		start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		opts.Now = func() time.Time { return start.Add(time.Duration(clock.Load())) }
		opts.IdleTimeout = time.Hour // the real janitor ticks every minute: it will not run during this test
		st := open(t, opts, notesSchema(1))
		createOrgs(t, st, orgA, orgB, orgC)

		acquire(t, st, orgA).Release()
		acquire(t, st, orgB).Release()
		busy := acquire(t, st, orgC)
		defer busy.Release()

		clock.Store(int64(59 * time.Minute))
		st.CloseIdle()
		if n := st.OpenOrgs(); n != 3 {
			t.Fatalf("OpenOrgs before the idle timeout = %d, want 3", n)
		}
		acquire(t, st, orgB).Release() // B used again at 59m
		clock.Store(int64(61 * time.Minute))
		st.CloseIdle()
		if n := st.OpenOrgs(); n != 2 {
			t.Fatalf("OpenOrgs after A idled out = %d, want 2 (B recently used, C in use)", n)
		}
	})
}

func TestJanitor_RunsInTheBackground(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		opts.IdleTimeout = 20 * time.Millisecond
		st := open(t, opts, notesSchema(1))
		createOrgs(t, st, orgA)
		acquire(t, st, orgA).Release()
		deadline := time.Now().Add(30 * time.Second)
		for st.OpenOrgs() != 0 {
			if time.Now().After(deadline) {
				t.Fatal("idle handle never closed by the janitor")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func TestAcquireOrg_ConcurrentFirstUsesOpenOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		st := open(t, opts, notesSchema(1))
		var opens opensCounter
		st.SetGate(opens.gate)
		createOrgs(t, st, orgA)

		const users = 32
		var wg sync.WaitGroup
		dbs := make([]*store.DB, users)
		errs := make([]error, users)
		held := make([]*store.OrgDB, users)
		startGun := make(chan struct{})
		for i := range users {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-startGun
				o, err := st.AcquireOrg(context.Background(), orgA)
				errs[i] = err
				if err == nil {
					dbs[i] = o.DB()
					held[i] = o
				}
			}()
		}
		close(startGun)
		wg.Wait()
		for i := range users {
			if errs[i] != nil {
				t.Fatalf("user %d: %v", i, errs[i])
			}
			if dbs[i] != dbs[0] {
				t.Fatalf("user %d got a different handle", i)
			}
		}
		if n := opens.get(orgA); n != 1 {
			t.Fatalf("org opened %d times by %d concurrent first users, want 1", n, users)
		}
		if n := st.OpenOrgs(); n != 1 {
			t.Fatalf("OpenOrgs = %d, want 1", n)
		}
		for _, o := range held {
			o.Release()
		}
	})
}

func TestAcquireOrg_GateAndOpenCheckRefuseColdOpen(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := open(t, opts, notesSchema(1))
		createOrgs(t, st, orgA, orgB)
		var refused atomic.Bool
		st.SetGate(func(ctx context.Context, id string) error {
			if refused.Load() {
				return apperr.Errorf(apperr.Forbidden, "org is suspended")
			}
			return nil
		})
		st.SetOpenCheck(func(ctx context.Context, id string, db *store.DB) error {
			if id == orgB {
				return errors.New("not this org's database")
			}
			return nil
		})
		acquire(t, st, orgA).Release()
		refused.Store(true)
		// A cached handle is served without asking the gate again...
		acquire(t, st, orgA).Release()
		// ...until it is evicted.
		st.Evict(orgA)
		if _, err := st.AcquireOrg(ctx, orgA); apperr.CodeOf(err) != apperr.Forbidden {
			t.Fatalf("AcquireOrg after Evict with a refusing gate: %v, want forbidden", err)
		}
		refused.Store(false)
		if _, err := st.AcquireOrg(ctx, orgB); err == nil {
			t.Fatal("AcquireOrg succeeded although the open check refused the database")
		}
		if n := st.OpenOrgs(); n != 0 {
			t.Fatalf("OpenOrgs = %d, want 0 (refused opens keep nothing open)", n)
		}
	})
}

func TestOrgID_PathTraversalAndIdentifierInjectionRefused(t *testing.T) {
	bad := []string{
		"",
		"../../../../../../../../etc/passwd",
		"../" + orgA[3:],
		"0190F5A0-0000-7000-8000-00000000000A", // upper case
		`0190f5a0-0000-7000-8000-0000000"; --`,
		"0190f5a0-0000-7000-8000-00000000000a/",
		"0190f5a0-0000-7000-8000-00000000000\x00",
		"0190f5a0_0000_7000_8000_00000000000a",
		"0190f5a000007000800000000000000a", // no dashes
		"x190f5a0-0000-7000-8000-00000000000a",
	}
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := open(t, opts, notesSchema(1))
		calls := []struct {
			name string
			call func(id string) error
		}{
			{"CreateOrgDB", func(id string) error { return st.CreateOrgDB(ctx, id) }},
			{"AcquireOrg", func(id string) error { _, err := st.AcquireOrg(ctx, id); return err }},
			{"DropOrgDB", func(id string) error { return st.DropOrgDB(ctx, id) }},
			{"OrgDBExists", func(id string) error { _, err := st.OrgDBExists(ctx, id); return err }},
			{"MigrateOrg", func(id string) error { _, err := st.MigrateOrg(ctx, id); return err }},
		}
		for _, id := range bad {
			for _, c := range calls {
				if err := c.call(id); apperr.CodeOf(err) != apperr.Invalid {
					t.Errorf("%s(%q) = %v, want invalid", c.name, id, err)
				}
			}
		}
		if opts.Driver == store.SQLite {
			entries, err := os.ReadDir(filepath.Join(opts.DataDir, "orgs"))
			if err != nil || len(entries) != 0 {
				t.Fatalf("orgs/ holds %d entries (%v), want none", len(entries), err)
			}
			if _, err := os.Stat(filepath.Join(opts.DataDir, "..", "..", "etc", "passwd.db")); err == nil {
				t.Fatal("a file was created outside the data directory")
			}
		} else {
			name := controlDBName(t, opts.URL)
			if n := count(t, st.Control(), "SELECT COUNT(*) FROM pg_database WHERE starts_with(datname, $1)", name+"_org_"); n != 0 {
				t.Fatalf("%d org databases exist, want none", n)
			}
		}
	})
}

func controlDBName(t *testing.T, url string) string {
	conf, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	return conf.Database
}

func TestCreateAndDropOrgDB(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := open(t, opts, notesSchema(2))
		if storetest.OrgDBExists(t, opts, orgA) {
			t.Fatal("org database exists before CreateOrgDB")
		}
		createOrgs(t, st, orgA)
		if !storetest.OrgDBExists(t, opts, orgA) {
			t.Fatal("org database missing after CreateOrgDB")
		}
		if err := st.CreateOrgDB(ctx, orgA); apperr.CodeOf(err) != apperr.Conflict {
			t.Fatalf("second CreateOrgDB = %v, want conflict", err)
		}
		if ok, err := st.OrgDBExists(ctx, orgA); !ok || err != nil {
			t.Fatalf("OrgDBExists = %v, %v; want true", ok, err)
		}
		o := acquire(t, st, orgA)
		if got := migrationRows(t, o.DB(), "notes"); len(got) != 2 {
			t.Fatalf("new org db versions = %v, want [1 2]", got)
		}
		o.Release()

		if err := st.DropOrgDB(ctx, orgA); err != nil {
			t.Fatal(err)
		}
		if storetest.OrgDBExists(t, opts, orgA) {
			t.Fatal("org database still exists after DropOrgDB")
		}
		if opts.Driver == store.SQLite {
			for _, suffix := range []string{"-wal", "-shm"} {
				if _, err := os.Stat(filepath.Join(opts.DataDir, "orgs", orgA+".db"+suffix)); err == nil {
					t.Errorf("%s file left behind", suffix)
				}
			}
		}
		if n := st.OpenOrgs(); n != 0 {
			t.Fatalf("OpenOrgs after drop = %d, want 0", n)
		}
		if ok, err := st.OrgDBExists(ctx, orgA); ok || err != nil {
			t.Fatalf("OrgDBExists after drop = %v, %v; want false", ok, err)
		}
		if _, err := st.AcquireOrg(ctx, orgA); apperr.CodeOf(err) != apperr.NotFound {
			t.Fatalf("AcquireOrg after drop = %v, want not_found", err)
		}
		if storetest.OrgDBExists(t, opts, orgA) {
			t.Fatal("AcquireOrg of a dropped org recreated its database")
		}
		if err := st.DropOrgDB(ctx, orgA); apperr.CodeOf(err) != apperr.NotFound {
			t.Fatalf("second DropOrgDB = %v, want not_found", err)
		}
	})
}

func TestCreateOrgDB_FailedInitLeavesNoDatabase(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := open(t, opts, notesSchema(1))
		err := st.CreateOrgDB(ctx, orgA, func(tx *store.Tx) error {
			_, err := tx.ExecContext(ctx, "INSERT INTO notes (id, body, created_at) VALUES ($1, $2, $3)", 1, "hi", tx.Now)
			if err != nil {
				return err
			}
			return errors.New("init failed")
		})
		if err == nil {
			t.Fatal("CreateOrgDB succeeded although init failed")
		}
		if storetest.OrgDBExists(t, opts, orgA) {
			t.Fatal("half-created org database left behind")
		}
		// Init that succeeds is committed.
		err = st.CreateOrgDB(ctx, orgA, func(tx *store.Tx) error {
			_, err := tx.ExecContext(ctx, "INSERT INTO notes (id, body, created_at) VALUES ($1, $2, $3)", 1, "hi", tx.Now)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		o := acquire(t, st, orgA)
		defer o.Release()
		if n := count(t, o.DB(), "SELECT COUNT(*) FROM notes"); n != 1 {
			t.Fatalf("notes written by init = %d, want 1", n)
		}
	})
}

func TestSQLite_FilesAndDirectoriesArePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	st := open(t, store.Options{Driver: store.SQLite, DataDir: dir}, notesSchema(1))
	createOrgs(t, st, orgA)
	o := acquire(t, st, orgA)
	if _, err := o.DB().SQL().Exec("INSERT INTO notes (id, body, created_at) VALUES ($1, $2, $3)", 1, "x", time.Now()); err != nil {
		t.Fatal(err)
	}
	defer o.Release()
	want := map[string]os.FileMode{
		dir:                                        0o700,
		filepath.Join(dir, "orgs"):                 0o700,
		filepath.Join(dir, "control.db"):           0o600,
		filepath.Join(dir, "orgs", orgA+".db"):     0o600,
		filepath.Join(dir, "orgs", orgA+".db-wal"): 0o600,
	}
	for path, mode := range want {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != mode {
			t.Errorf("%s mode = %o, want %o", path, got, mode)
		}
	}
	var journal string
	if err := o.DB().SQL().QueryRow("PRAGMA journal_mode").Scan(&journal); err != nil || journal != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", journal, err)
	}
	var fk int
	if err := o.DB().SQL().QueryRow("PRAGMA foreign_keys").Scan(&fk); err != nil || fk != 1 {
		t.Errorf("foreign_keys = %d, %v; want 1", fk, err)
	}
}

func TestClose_RefusesLaterUse(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		st, err := store.Open(context.Background(), opts, notesSchema(1))
		if err != nil {
			t.Fatal(err)
		}
		createOrgs(t, st, orgA)
		acquire(t, st, orgA).Release()
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		if n := st.OpenOrgs(); n != 0 {
			t.Fatalf("OpenOrgs after Close = %d, want 0", n)
		}
		if _, err := st.AcquireOrg(context.Background(), orgA); apperr.CodeOf(err) != apperr.Unavailable {
			t.Fatalf("AcquireOrg after Close = %v, want unavailable", err)
		}
	})
}
