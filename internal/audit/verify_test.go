package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"bulwark/internal/apperr"
	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

func (e *env) checkpoint(t *testing.T) {
	t.Helper()
	if _, err := e.svc.Checkpoint(context.Background(), e.org, OnDemand); err != nil {
		t.Fatal(err)
	}
}

// rehash recomputes the hashes of the org's log from seq `from` on and the
// head, as an attacker with write access to the database could.
func (e *env) rehash(t *testing.T, from int64) {
	t.Helper()
	e.withEventsTable(t, true, true, func(db *sql.DB) {
		prev := genesis(e.org)
		if from > 1 {
			if err := db.QueryRow("SELECT hash FROM audit_events WHERE seq = $1", from-1).Scan(&prev); err != nil {
				t.Fatal(err)
			}
		}
		rows, err := db.Query(`SELECT seq, id, time, actor_type, actor_id, action, resource_type, resource_id, outcome, ip, user_agent,
	request_id, details FROM audit_events WHERE seq >= $1 ORDER BY seq`, from)
		if err != nil {
			t.Fatal(err)
		}
		var seqs []int64
		var sums [][]byte
		for rows.Next() {
			var (
				seq     int64
				f       [eventFields]string
				details string
			)
			if err := rows.Scan(&seq, &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7], &f[8], &f[9], &f[10], &details); err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(hashInput(nil, e.org, prev, seq, &f, []byte(details)))
			prev = sum[:]
			seqs, sums = append(seqs, seq), append(sums, prev)
		}
		rows.Close()
		for i, seq := range seqs {
			if _, err := db.Exec("UPDATE audit_events SET hash = $1 WHERE seq = $2", sums[i], seq); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.Exec("UPDATE audit_head SET hash = $1", prev); err != nil {
			t.Fatal(err)
		}
	})
}

func TestVerify_NamesTheFirstBadSeqOfEachTampering(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(t *testing.T, e *env)
		bad    int64
	}{
		{"edit a row's details", func(t *testing.T, e *env) {
			e.exec(t, `UPDATE audit_events SET details = '{"i":"99"}' WHERE seq = 5`)
		}, 5},
		{"edit a row's actor", func(t *testing.T, e *env) {
			e.exec(t, `UPDATE audit_events SET actor_id = 'u-mallory' WHERE seq = 3`)
		}, 3},
		{"delete a row", func(t *testing.T, e *env) {
			e.exec(t, `DELETE FROM audit_events WHERE seq = 6`)
		}, 6},
		{"reorder two rows", func(t *testing.T, e *env) {
			e.exec(t, `UPDATE audit_events SET seq = -4 WHERE seq = 4`)
			e.exec(t, `UPDATE audit_events SET seq = 4 WHERE seq = 7`)
			e.exec(t, `UPDATE audit_events SET seq = 7 WHERE seq = -4`)
		}, 4},
		{"truncate the tail", func(t *testing.T, e *env) {
			e.exec(t, `DELETE FROM audit_events WHERE seq > 8`)
		}, 9},
		{"truncate the tail and the head row with it", func(t *testing.T, e *env) {
			e.exec(t, `UPDATE audit_head SET seq = 8, hash = (SELECT hash FROM audit_events WHERE seq = 8)`)
			e.exec(t, `DELETE FROM audit_events WHERE seq > 8`)
		}, 9},
		{"rewrite a row and recompute every hash after it", func(t *testing.T, e *env) {
			e.exec(t, `UPDATE audit_events SET outcome = 'denied' WHERE seq = 2`)
			e.rehash(t, 2)
		}, 1},
		{"forge the checkpoint", func(t *testing.T, e *env) {
			if _, err := e.st.Control().SQL().Exec("UPDATE audit_checkpoints SET seq = 9 WHERE log_id = $1", e.org); err != nil {
				t.Fatal(err)
			}
		}, 9},
	}
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				e := newEnv(t, fresh(t, opts))
				e.record(t, 10, "record.read")
				e.checkpoint(t)
				if rep := e.verify(t); !rep.OK || rep.EventsChecked != 10 || rep.Checkpoint == nil || rep.Checkpoint.Seq != 10 {
					t.Fatalf("before tampering: %+v", rep)
				}
				c.tamper(t, e)
				rep := e.verify(t)
				if rep.OK || rep.FirstBadSeq == nil || *rep.FirstBadSeq != c.bad || rep.Problem == "" {
					t.Fatalf("after tampering: %+v (first bad %v), want first bad seq %d", rep, deref(rep.FirstBadSeq), c.bad)
				}
			})
		}
	})
}

// fresh returns opts for a new empty store of the same driver.
func fresh(t *testing.T, opts store.Options) store.Options {
	t.Helper()
	if opts.Driver == store.Postgres {
		opts.URL = storetest.FreshControlDB(t)
	} else {
		opts.DataDir = t.TempDir()
	}
	return opts
}

func deref(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

// An org database replaced by an older copy of itself is internally
// consistent; the checkpoint in the control database gives it away.
func TestVerify_DetectsADatabaseReplacedWithAnOlderCopy(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		e := newEnv(t, opts)
		e.record(t, 6, "record.created")
		if err := e.svc.Chain(context.Background(), e.org); err != nil {
			t.Fatal(err)
		}
		var oldSeq int64
		var oldHead []byte
		odb, err := e.st.AcquireOrg(context.Background(), e.org)
		if err != nil {
			t.Fatal(err)
		}
		if err := odb.DB().SQL().QueryRow("SELECT seq, hash FROM audit_head").Scan(&oldSeq, &oldHead); err != nil {
			t.Fatal(err)
		}
		odb.Release()
		e.record(t, 4, "record.deleted")
		e.svc.CheckpointDirty(context.Background())
		// Restore the copy taken at seq 6: the events after it and the
		// head row as it was (on SQLite, it may name an earlier event).
		e.exec(t, "DELETE FROM audit_events WHERE seq > 6")
		e.exec(t, "UPDATE audit_head SET seq = $1, hash = $2", oldSeq, oldHead)
		rep := e.verify(t)
		if rep.OK || deref(rep.FirstBadSeq) != int64(7) || !strings.Contains(rep.Problem, "older copy") {
			t.Fatalf("verify of the older copy: %+v (first bad %v)", rep, deref(rep.FirstBadSeq))
		}
	})
}

func TestControlLog_AppendsCheckpointsAndVerifies(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		for i := 0; i < 3; i++ {
			if err := e.svc.Record(ctx, ControlLog, System.Event("org.created", Resource{"org", e.org}, Success, nil)); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.svc.CheckpointDirty(ctx); err != nil {
			t.Fatal(err)
		}
		rep, err := e.svc.Verify(ctx, ControlLog)
		if err != nil || !rep.OK || rep.EventsChecked != 3 || rep.Checkpoint == nil || rep.Checkpoint.Seq != 3 || rep.Checkpoint.Kind != Periodic {
			t.Fatalf("control log: %+v, %v", rep, err)
		}
		// The org's log is another chain: an org event does not verify in
		// the control log's place.
		if rep.Head.Hash == "" || genesisHex(ControlLog) == genesisHex(e.org) {
			t.Fatal("logs share a genesis")
		}
	})
}

func genesisHex(id string) string { return string(genesis(id)) }

func TestPrune_RemovesOldEventsAndTheRestStillVerifies(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		e.record(t, 5, "record.created")
		e.clk.Add(400 * 24 * time.Hour)
		e.record(t, 5, "record.updated")
		removed, err := e.svc.Prune(ctx, e.org, e.clk.Now().Add(-DefaultRetentionDays*24*time.Hour))
		if err != nil || removed != 5 {
			t.Fatalf("Prune = %d, %v; want 5 removed", removed, err)
		}
		if n := e.count(t, "SELECT COUNT(*) FROM audit_events WHERE action = 'record.created'"); n != 0 {
			t.Fatalf("%d old events left", n)
		}
		rep := e.verify(t)
		if !rep.OK || rep.EventsChecked != 6 || rep.Head.Seq != 11 {
			t.Fatalf("after pruning: %+v (first bad %v); want 6 events (5 kept + audit.pruned) up to seq 11", rep, deref(rep.FirstBadSeq))
		}
		page, err := e.svc.Query(ctx, e.org, Filter{Action: "audit.pruned"}, 0, "")
		if err != nil || len(page.Items) != 1 || page.Items[0].Details["removed"] != "5" {
			t.Fatalf("audit.pruned event: %+v, %v", page, err)
		}
		// Nothing more is old enough.
		if removed, err := e.svc.Prune(ctx, e.org, e.clk.Now().Add(-DefaultRetentionDays*24*time.Hour)); err != nil || removed != 0 {
			t.Fatalf("second Prune = %d, %v; want 0", removed, err)
		}
		// Cutting the start of the log without the signed retention
		// checkpoint is detected.
		if _, err := e.st.Control().SQL().Exec("DELETE FROM audit_checkpoints WHERE kind = 'retention'"); err != nil {
			t.Fatal(err)
		}
		if rep := e.verify(t); rep.OK || deref(rep.FirstBadSeq) != int64(6) {
			t.Fatalf("without the retention checkpoint: %+v (first bad %v), want 6", rep, deref(rep.FirstBadSeq))
		}
	})
}

func TestPrune_RefusesALogThatDoesNotVerify(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		e := newEnv(t, opts)
		e.record(t, 4, "record.created")
		e.exec(t, `UPDATE audit_events SET details = '{}' WHERE seq = 2`)
		e.clk.Add(400 * 24 * time.Hour)
		if _, err := e.svc.Prune(context.Background(), e.org, e.clk.Now()); apperr.CodeOf(err) != apperr.Conflict {
			t.Fatalf("Prune of a tampered log: %v, want conflict", err)
		}
		if n := e.count(t, "SELECT COUNT(*) FROM audit_events"); n != 4 {
			t.Fatalf("%d events left, want all 4", n)
		}
	})
}

func TestQuery_FiltersAndPagesNewestFirst(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		bob := Source{Actor: Actor{Type: ActorAPIKey, ID: "k-bob"}}
		for i := range 30 {
			src, action, outcome := alice, "record.created", Success
			if i%3 == 0 {
				src, action = bob, "auth.login.failed"
				outcome = Failure
			}
			if i == 20 {
				e.clk.Add(time.Hour)
			}
			if err := e.svc.Record(ctx, e.org, src.Event(action, Resource{"record", "r" + string(rune('a'+i%5))}, outcome, nil)); err != nil {
				t.Fatal(err)
			}
		}
		var seqs []int64
		cursor := ""
		for pages := 0; ; pages++ {
			p, err := e.svc.Query(ctx, e.org, Filter{}, 7, cursor)
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range p.Items {
				seqs = append(seqs, ev.Seq)
			}
			if p.NextCursor == nil {
				break
			}
			cursor = *p.NextCursor
		}
		if len(seqs) != 30 || seqs[0] != 30 || seqs[29] != 1 {
			t.Fatalf("paged seqs %v: want 30..1", seqs)
		}
		for i := 1; i < len(seqs); i++ {
			if seqs[i] != seqs[i-1]-1 {
				t.Fatalf("paged seqs %v: not newest first without gaps", seqs)
			}
		}
		cases := []struct {
			f    Filter
			want int
		}{
			{Filter{Actor: "k-bob"}, 10},
			{Filter{Actor: "api_key:k-bob"}, 10},
			{Filter{Actor: "user:k-bob"}, 0},
			{Filter{Action: "auth.*"}, 10},
			{Filter{Action: "auth.login.*"}, 10},
			{Filter{Action: "record.created"}, 20},
			{Filter{Action: "record"}, 0},
			{Filter{Outcome: Failure}, 10},
			{Filter{Resource: "record:ra"}, 6},
			{Filter{Resource: "record"}, 30},
			{Filter{Since: e.clk.Now()}, 10},
			{Filter{Until: e.clk.Now()}, 20},
			{Filter{Actor: "u-alice", Resource: "record:rb"}, 4},
		}
		for _, c := range cases {
			p, err := e.svc.Query(ctx, e.org, c.f, 100, "")
			if err != nil || len(p.Items) != c.want {
				t.Errorf("%+v: %d events, %v; want %d", c.f, len(p.Items), err, c.want)
			}
		}
		for _, bad := range []struct {
			f      Filter
			limit  int
			cursor string
			field  string
		}{
			{Filter{}, 101, "", "limit"},
			{Filter{}, -1, "", "limit"},
			{Filter{}, 10, "not-a-cursor", "cursor"},
			{Filter{Outcome: "maybe"}, 10, "", "outcome"},
			{Filter{Action: "Bad Action.*"}, 10, "", "action"},
		} {
			_, err := e.svc.Query(ctx, e.org, bad.f, bad.limit, bad.cursor)
			if apperr.CodeOf(err) != apperr.Invalid || len(apperr.FieldsOf(err)) == 0 || apperr.FieldsOf(err)[0].Field != bad.field {
				t.Errorf("%+v limit %d cursor %q: %v, want invalid naming %s", bad.f, bad.limit, bad.cursor, err, bad.field)
			}
		}
	})
}

func TestExport_StreamsJSONLinesAndSafeCSV(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		e.record(t, 5, "record.created")
		evil := Source{Actor: Actor{Type: ActorUser, ID: "=HYPERLINK(\"http://x\")"}, UserAgent: "+cmd|' /C calc'!A0"}
		if err := e.svc.Record(ctx, e.org, evil.Event("record.read", Resource{"record", "-1"}, Success, map[string]string{"why": "@SUM(1)"})); err != nil {
			t.Fatal(err)
		}
		var jl bytes.Buffer
		n, err := e.svc.Export(ctx, e.org, Filter{}, JSONL, &jl)
		if err != nil || n != 6 {
			t.Fatalf("jsonl export: %d, %v", n, err)
		}
		sc := bufio.NewScanner(&jl)
		var seq int64
		for sc.Scan() {
			var ev Event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatalf("line %q: %v", sc.Text(), err)
			}
			if ev.Seq != seq+1 {
				t.Fatalf("export not oldest first: seq %d after %d", ev.Seq, seq)
			}
			seq = ev.Seq
		}
		var cb bytes.Buffer
		if n, err := e.svc.Export(ctx, e.org, Filter{Action: "record.read"}, CSV, &cb); err != nil || n != 1 {
			t.Fatalf("csv export: %d, %v", n, err)
		}
		recs, err := csv.NewReader(&cb).ReadAll()
		if err != nil || len(recs) != 2 || len(recs[0]) != len(csvHeader) {
			t.Fatalf("csv: %v, %v", recs, err)
		}
		for i, cell := range recs[1] {
			if cell != "" && strings.ContainsRune("=+-@", rune(cell[0])) {
				t.Errorf("csv column %s starts with a formula character: %q", recs[0][i], cell)
			}
		}
		if _, err := e.svc.Export(ctx, e.org, Filter{}, "xml", &cb); apperr.CodeOf(err) != apperr.Invalid {
			t.Fatalf("export as xml: %v, want invalid", err)
		}
	})
}

// A stored segment cut short (or filled with anything) is named by Verify
// at its first event, and reads of it fail with an error, not a panic.
func TestVerify_NamesASegmentThatDoesNotParse(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, fresh(t, opts))
		e.record(t, 8, "record.read")
		if err := e.svc.Chain(ctx, e.org); err != nil {
			t.Fatal(err)
		}
		odb, err := e.st.AcquireOrg(ctx, e.org)
		if err != nil {
			t.Fatal(err)
		}
		// The segment that holds event 5 (on PostgreSQL, chained in one
		// segment with the others), cut in the middle of its record.
		var (
			start int64
			seg   []byte
		)
		db := odb.DB().SQL()
		if err := db.QueryRowContext(ctx, "SELECT seq_start, events FROM audit_segments WHERE seq_start <= 5 AND seq_end >= 5").Scan(&start, &seg); err != nil {
			odb.Release()
			t.Fatal(err)
		}
		cut, rest := 0, seg
		for rest != nil {
			r, next, err := nextRecord(rest)
			if err != nil {
				t.Fatal(err)
			}
			if r.seq == 5 {
				cut = len(seg) - len(rest) + 4 + len(r.body)/2
				break
			}
			rest = next
		}
		if _, err := db.ExecContext(ctx, "UPDATE audit_segments SET events = $1 WHERE seq_start = $2", seg[:cut], start); err != nil {
			odb.Release()
			t.Fatal(err)
		}
		odb.Release()
		rep := e.verify(t)
		if rep.OK || deref(rep.FirstBadSeq) != int64(5) || !strings.Contains(rep.Problem, "cannot be read") || rep.EventsChecked != 4 {
			t.Fatalf("verify of a log with a malformed segment: %+v (first bad %v), want first bad seq 5", rep, deref(rep.FirstBadSeq))
		}
		if _, err := e.svc.Query(ctx, e.org, Filter{}, 20, ""); err == nil {
			t.Fatal("a query over a malformed segment gave no error")
		}
		var out bytes.Buffer
		if _, err := e.svc.Export(ctx, e.org, Filter{}, JSONL, &out); err == nil {
			t.Fatal("an export over a malformed segment gave no error")
		}
	})
}

// A bloom is outside the hash chain, and one that lacks a key would hide
// that key's events from queries: Verify checks every complete block's
// bloom against the block's events and names the block's first seq. A
// bloom that holds more (every bit set) only costs reads, and passes.
func TestVerify_NamesABloomThatHidesEvents(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, fresh(t, opts))
		times := make([]time.Time, blockEvents+40)
		for i := range times {
			times[i] = e.clk.Now().Add(time.Duration(i) * time.Second)
		}
		e.appendAt(t, times, func(i int) Event {
			return alice.Event("record.read", Resource{Type: "record", ID: fmt.Sprintf("r%d", i)}, Success, nil)
		})
		if err := e.svc.ChainPending(ctx); err != nil {
			t.Fatal(err)
		}
		if rep := e.verify(t); !rep.OK || e.count(t, "SELECT COUNT(*) FROM audit_blooms") != 1 {
			t.Fatalf("before: %+v", rep)
		}
		e.exec(t, "UPDATE audit_blooms SET bits = $1 WHERE block = 0", make([]byte, bloomBytes))
		if p, err := e.svc.Query(ctx, e.org, Filter{Resource: "record:r7"}, 10, ""); err != nil || len(p.Items) != 0 {
			t.Fatalf("the zeroed bloom should hide event 8 from a query: %+v, %v", p.Items, err)
		}
		rep := e.verify(t)
		if rep.OK || deref(rep.FirstBadSeq) != int64(1) || !strings.Contains(rep.Problem, "bloom") {
			t.Fatalf("verify after the bloom was zeroed: %+v (first bad %v), want seq 1", rep, deref(rep.FirstBadSeq))
		}
		e.exec(t, "UPDATE audit_blooms SET bits = $1 WHERE block = 0", bytes.Repeat([]byte{0xff}, bloomBytes))
		if rep := e.verify(t); !rep.OK {
			t.Fatalf("verify with a bloom that holds every key: %+v", rep)
		}
	})
}

// Every hash is bound to its log: one org's stored events, copied with its
// head into another org's database, do not verify there.
func TestVerify_AnotherOrgsEventsDoNotVerify(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, fresh(t, opts))
		other := *e
		other.org = uuid.NewString()
		if err := e.st.CreateOrgDB(ctx, other.org); err != nil {
			t.Fatal(err)
		}
		e.record(t, 5, "record.read")
		other.record(t, 5, "record.read")
		if err := e.svc.Chain(ctx, e.org); err != nil {
			t.Fatal(err)
		}
		src, err := e.st.AcquireOrg(ctx, e.org)
		if err != nil {
			t.Fatal(err)
		}
		type seg struct {
			start, end int64
			events     []byte
		}
		var segs []seg
		rows, err := src.DB().SQL().QueryContext(ctx, "SELECT seq_start, seq_end, events FROM audit_segments")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s seg
			if err := rows.Scan(&s.start, &s.end, &s.events); err != nil {
				t.Fatal(err)
			}
			segs = append(segs, s)
		}
		rows.Close()
		var headHash []byte
		if err := src.DB().SQL().QueryRowContext(ctx, "SELECT hash FROM audit_head").Scan(&headHash); err != nil {
			t.Fatal(err)
		}
		src.Release()
		if err := other.svc.Chain(ctx, other.org); err != nil {
			t.Fatal(err)
		}
		dst, err := e.st.AcquireOrg(ctx, other.org)
		if err != nil {
			t.Fatal(err)
		}
		db := dst.DB().SQL()
		if _, err := db.ExecContext(ctx, "DELETE FROM audit_segments"); err != nil {
			t.Fatal(err)
		}
		for _, s := range segs {
			if _, err := db.ExecContext(ctx, insertSegmentSQL, s.start, s.end, s.events); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.ExecContext(ctx, "UPDATE audit_head SET hash = $1", headHash); err != nil {
			t.Fatal(err)
		}
		dst.Release()
		rep, err := other.svc.Verify(ctx, other.org)
		if err != nil || rep.OK || deref(rep.FirstBadSeq) != int64(1) {
			t.Fatalf("verify of another org's events: %+v (first bad %v), %v; want seq 1", rep, deref(rep.FirstBadSeq), err)
		}
		if rep := e.verify(t); !rep.OK {
			t.Fatalf("the org the events came from: %+v", rep)
		}
	})
}

// The head row may name an event before the log's end (on SQLite it is
// written once a second): a log that reaches it with the same hash there
// verifies; one whose event there has another hash, or that ends before
// it, does not.
func TestVerify_ChecksTheEventTheHeadRowNames(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		cases := []struct {
			name   string
			row    func(hash5 []byte) (int64, []byte)
			cut    int64 // events after it removed; 0 for none
			ok     bool
			bad    int64
			reason string
		}{
			{"behind the end", func(h []byte) (int64, []byte) { return 5, h }, 0, true, 0, ""},
			{"another hash", func(h []byte) (int64, []byte) { return 5, bytes.Repeat([]byte{7}, 32) }, 0, false, 1, "head row"},
			{"past the end", func(h []byte) (int64, []byte) { return 5, h }, 4, false, 5, "truncated"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				e := newEnv(t, fresh(t, opts))
				e.record(t, 10, "record.read")
				var hash5 []byte
				e.withEventsTable(t, true, false, func(db *sql.DB) {
					if err := db.QueryRow("SELECT hash FROM audit_events WHERE seq = 5").Scan(&hash5); err != nil {
						t.Fatal(err)
					}
				})
				if c.cut > 0 {
					e.exec(t, "DELETE FROM audit_events WHERE seq > $1", c.cut)
				}
				seq, hash := c.row(hash5)
				odb, err := e.st.AcquireOrg(context.Background(), e.org)
				if err != nil {
					t.Fatal(err)
				}
				_, err = odb.DB().SQL().Exec("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1", seq, hash)
				odb.Release()
				if err != nil {
					t.Fatal(err)
				}
				rep := e.verify(t)
				if c.ok {
					if !rep.OK || rep.EventsChecked != 10 || rep.Head.Seq != 10 {
						t.Fatalf("verify: %+v", rep)
					}
					return
				}
				if rep.OK || deref(rep.FirstBadSeq) != c.bad || !strings.Contains(rep.Problem, c.reason) {
					t.Fatalf("verify: %+v (first bad %v), want first bad seq %d (%s)", rep, deref(rep.FirstBadSeq), c.bad, c.reason)
				}
			})
		}
	})
}
