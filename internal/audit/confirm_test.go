package audit

import (
	"context"
	"encoding/hex"
	"testing"
	"time"

	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

// The hash input encoding is stored: it must never change. This event's
// hash was computed by the first version of chainHash.
func TestChainHash_EncodingIsStable(t *testing.T) {
	e := Event{Seq: 42, ID: "0190f5a0-0000-7000-8000-000000000001", Time: time.Date(2026, 3, 4, 5, 6, 7, 891234000, time.UTC),
		Actor: Actor{ActorUser, "u-alice"}, Action: "record.updated", Resource: Resource{"record", "r1"}, Outcome: Success,
		IP: "203.0.113.7", UserAgent: "test/1.0 ü", RequestID: "req-1"}
	sum, _ := chainHash(nil, "log-x", genesis("log-x"), &e, []byte(`{"a":"b"}`))
	if got, want := hex.EncodeToString(sum), "dda9110aaecca99cf5a33c9598cc4b20dcb6ee49f99beb94d85cc9c87f294e52"; got != want {
		t.Fatalf("chain hash %s, want %s: the hash input encoding changed", got, want)
	}
}

func TestSQLiteTimeText_MatchesTimeText(t *testing.T) {
	for _, c := range []struct {
		stored string
		want   string // "" when the text is left to the driver
	}{
		{"2026-01-01 00:00:00+00:00", "2026-01-01T00:00:00.000000Z"},
		{"2026-01-01 00:00:02.592+00:00", "2026-01-01T00:00:02.592000Z"},
		{"2026-02-28 23:59:59.123456+00:00", "2026-02-28T23:59:59.123456Z"},
		{"2024-02-29 12:00:00.1234567+00:00", "2024-02-29T12:00:00.123456Z"}, // cut, not rounded, as timeText cuts
		{"2026-02-29 12:00:00+00:00", ""},                                    // no such day
		{"2026-01-01 24:00:00+00:00", ""},
		{"2026-01-01 00:00:00.5+01:00", ""},
		{"2026-01-01T00:00:00Z", ""},
		{"2026-01-01 00:00:00.+00:00", ""},
		{"2026-01-01 00:00:00.12a+00:00", ""},
		{"", ""},
	} {
		got, ok := sqliteTimeText(nil, []byte(c.stored))
		if c.want == "" {
			if ok {
				t.Errorf("%q: took it as %q, want it left to the driver", c.stored, got)
			}
			continue
		}
		if !ok || string(got) != c.want {
			t.Errorf("%q: %q (%v), want %q", c.stored, got, ok, c.want)
		}
		if parsed, err := time.Parse("2006-01-02 15:04:05.999999999-07:00", c.stored); err != nil || timeText(parsed) != c.want {
			t.Errorf("%q: the test's want %q is not timeText of it (%v)", c.stored, c.want, err)
		}
	}
}

// confirm reads the log in ranges on several connections; with ranges of
// three events every tampering below falls inside one, at an edge or
// across two. confirm must agree with the sequential walk on a sound log
// and must never confirm a damaged one.
func TestVerify_ConfirmAgreesWithTheSequentialWalk(t *testing.T) {
	defer func(n int64) { verifyChunk = n }(verifyChunk)
	verifyChunk = 3
	ctx := context.Background()
	confirm := func(t *testing.T, e *env) (Report, Report, bool) {
		t.Helper()
		if err := e.svc.Chain(ctx, e.org); err != nil {
			t.Fatal(err)
		}
		cps, bad, err := e.svc.checkpoints(ctx, e.org)
		if err != nil || bad != nil {
			t.Fatalf("checkpoints: %v, bad %v", err, bad)
		}
		odb, err := e.st.AcquireOrg(ctx, e.org)
		if err != nil {
			t.Fatal(err)
		}
		defer odb.Release()
		fast, ok, err := e.svc.confirm(ctx, odb.DB(), e.org, cps, Report{})
		if err != nil {
			t.Fatal(err)
		}
		seq, err := e.svc.walkSequential(ctx, odb.DB(), e.org, cps, Report{})
		if err != nil {
			t.Fatal(err)
		}
		return fast, seq, ok
	}
	tampers := []struct {
		name   string
		sqlite bool // SQLite only
		passes bool // the sequential walk passes it: confirm must leave it to that walk
		tamper func(t *testing.T, e *env)
	}{
		{"edit details", false, false, func(t *testing.T, e *env) { e.exec(t, `UPDATE audit_events SET details = '{"i":"99"}' WHERE seq = 5`) }},
		{"edit the first event", false, false, func(t *testing.T, e *env) { e.exec(t, `UPDATE audit_events SET ip = '192.0.2.1' WHERE seq = 1`) }},
		{"edit a link", false, false, func(t *testing.T, e *env) { e.exec(t, `UPDATE audit_events SET prev_hash = hash WHERE seq = 7`) }},
		{"delete at a range's edge", false, false, func(t *testing.T, e *env) { e.exec(t, `DELETE FROM audit_events WHERE seq = 4`) }},
		{"delete a whole range", false, false, func(t *testing.T, e *env) { e.exec(t, `DELETE FROM audit_events WHERE seq BETWEEN 4 AND 6`) }},
		{"swap across ranges", false, false, func(t *testing.T, e *env) {
			e.exec(t, `UPDATE audit_events SET seq = -3 WHERE seq = 3`)
			e.exec(t, `UPDATE audit_events SET seq = 3 WHERE seq = 4`)
			e.exec(t, `UPDATE audit_events SET seq = 4 WHERE seq = -3`)
		}},
		{"an event before the start", false, false, func(t *testing.T, e *env) { e.exec(t, `UPDATE audit_events SET seq = 0 WHERE seq = 1`) }},
		{"truncate the tail", false, false, func(t *testing.T, e *env) { e.exec(t, `DELETE FROM audit_events WHERE seq > 8`) }},
		{"truncate the tail and the head row", false, false, func(t *testing.T, e *env) {
			e.exec(t, `UPDATE audit_head SET seq = 8, hash = (SELECT hash FROM audit_events WHERE seq = 8)`)
			e.exec(t, `DELETE FROM audit_events WHERE seq > 8`)
		}},
		{"rewrite and rehash", false, false, func(t *testing.T, e *env) {
			e.exec(t, `UPDATE audit_events SET outcome = 'denied' WHERE seq = 2`)
			e.rehash(t, 2)
		}},
		{"move the time", false, false, func(t *testing.T, e *env) {
			e.exec(t, `UPDATE audit_events SET time = (SELECT time FROM audit_events WHERE seq = 1) WHERE seq = 9`)
		}},
		{"a time in another text form", true, true, func(t *testing.T, e *env) {
			e.exec(t, `UPDATE audit_events SET time = replace(time, ' ', 'T') WHERE seq = 6`)
		}},
		{"a field holding the field separator, rehashed", false, true, func(t *testing.T, e *env) {
			e.exec(t, `UPDATE audit_events SET user_agent = $1 WHERE seq = 5`, "test\x1f1.0")
			e.rehash(t, 5)
		}},
	}
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		sound := func(t *testing.T) *env {
			e := newEnv(t, fresh(t, opts))
			for range 10 {
				e.record(t, 1, "record.read")
				e.clk.Add(1234567 * time.Microsecond)
			}
			e.checkpoint(t)
			return e
		}
		t.Run("sound", func(t *testing.T) {
			e := sound(t)
			e.record(t, 4, "record.updated") // past the checkpoint
			fast, seq, ok := confirm(t, e)
			if !ok || !seq.OK || fast.EventsChecked != 14 || fast.EventsChecked != seq.EventsChecked || fast.Head != seq.Head {
				t.Fatalf("confirm %+v (ok %v), sequential %+v", fast, ok, seq)
			}
		})
		t.Run("pruned", func(t *testing.T) {
			e := sound(t)
			e.clk.Add(time.Hour)
			if _, err := e.svc.Prune(ctx, e.org, e.clk.Now().Add(-time.Hour+5*time.Second)); err != nil {
				t.Fatal(err)
			}
			fast, seq, ok := confirm(t, e)
			if !ok || !seq.OK || fast.EventsChecked != seq.EventsChecked || fast.Head != seq.Head {
				t.Fatalf("confirm %+v (ok %v), sequential %+v", fast, ok, seq)
			}
		})
		for _, c := range tampers {
			if c.sqlite && opts.Driver != store.SQLite {
				continue
			}
			t.Run(c.name, func(t *testing.T) {
				e := sound(t)
				c.tamper(t, e)
				fast, seq, ok := confirm(t, e)
				if ok || fast.OK {
					t.Fatalf("confirm confirmed a tampered log: %+v", fast)
				}
				if !c.passes && seq.OK {
					t.Fatalf("the sequential walk passed it: %+v", seq)
				}
				if rep := e.verify(t); rep.OK != seq.OK || deref(rep.FirstBadSeq) != deref(seq.FirstBadSeq) {
					t.Fatalf("Verify %+v, sequential walk %+v", rep, seq)
				}
			})
		}
	})
}
