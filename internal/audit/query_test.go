package audit

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

// appendAt appends events to the org's log in one transaction, each at its
// own time, as a batch of changes made at those times would.
func (e *env) appendAt(t *testing.T, times []time.Time, ev func(i int) Event) {
	t.Helper()
	ctx := context.Background()
	err := e.svc.InLogTx(ctx, e.org, func(tx *store.Tx) error {
		for i, at := range times {
			if _, err := e.svc.Append(ctx, tx.At(at), e.org, ev(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// queryAll pages through Query with limit and returns the seqs, in order.
func (e *env) queryAll(t *testing.T, f Filter, limit int) []int64 {
	t.Helper()
	var seqs []int64
	cursor := ""
	for {
		p, err := e.svc.Query(context.Background(), e.org, f, limit, cursor)
		if err != nil {
			t.Fatalf("%+v: %v", f, err)
		}
		for _, ev := range p.Items {
			seqs = append(seqs, ev.Seq)
		}
		if p.NextCursor == nil {
			return seqs
		}
		cursor = *p.NextCursor
	}
}

// Time windows are read as seq ranges and action prefixes as one query
// per action: on a log whose times do not follow its seqs (late
// transactions, one a day late), every window and prefix must return
// exactly what a filter over every event returns, page by page, also
// after more late events are appended.
func TestQuery_WindowsAndPrefixesReturnExactlyTheMatchingEvents(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		e := newEnv(t, opts)
		rng := rand.New(rand.NewPCG(1, 2))
		start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		actions := []string{"auth.login.failed", "auth.logout", "authz.checked", "record.created", "member.invited", "auth_x.y"}
		ev := func(int) Event {
			src := alice
			if rng.IntN(3) == 0 {
				src = Source{Actor: Actor{Type: ActorAPIKey, ID: "k-bob"}}
			}
			outcome := []string{Success, Success, Failure, Denied}[rng.IntN(4)]
			return src.Event(actions[rng.IntN(len(actions))], Resource{Type: "record", ID: "r1"}, outcome, nil)
		}
		// Events a minute apart, in batches; a tenth of them up to 40
		// minutes late, one a day late and, later, one two days late.
		n := 0
		add := func(count int) {
			times := make([]time.Time, count)
			for i := range times {
				at := start.Add(time.Duration(n) * time.Minute)
				if rng.IntN(10) == 0 {
					at = at.Add(-time.Duration(rng.IntN(40)) * time.Minute)
				}
				switch n {
				case 250:
					at = at.Add(-24 * time.Hour)
				case 320: // after the first queries: a lag they have not seen
					at = at.Add(-48 * time.Hour)
				}
				times[i] = at
				n++
			}
			e.appendAt(t, times, ev)
		}
		for range 20 {
			add(10)
		}

		type stored struct {
			seq    int64
			at     time.Time
			action string
			actor  string
			out    string
		}
		all := func() []stored {
			var evs []stored
			cursor := ""
			for {
				p, err := e.svc.Query(context.Background(), e.org, Filter{}, 100, cursor)
				if err != nil {
					t.Fatal(err)
				}
				for _, ev := range p.Items {
					evs = append(evs, stored{ev.Seq, ev.Time, ev.Action, ev.Actor.ID, ev.Outcome})
				}
				if p.NextCursor == nil {
					return evs
				}
				cursor = *p.NextCursor
			}
		}
		check := func(t *testing.T) {
			t.Helper()
			evs := all()
			at := func(min int) time.Time { return start.Add(time.Duration(min) * time.Minute) }
			filters := []Filter{
				{Action: "auth.*"}, {Action: "auth.login.*"}, {Action: "member.*"}, {Action: "nothing.*"}, {Action: "authz.*"},
				{Since: at(100)}, {Until: at(100)}, {Since: at(100), Until: at(130)}, {Since: at(-1500), Until: at(-1400)},
				{Since: at(150), Until: at(151)}, {Since: at(0), Until: at(0)}, {Since: at(400)}, {Until: at(-2000)},
				{Since: at(20), Until: at(260), Action: "auth.*"}, {Since: at(50), Until: at(90), Outcome: Denied},
				{Since: at(50), Until: at(290), Actor: "k-bob", Action: "auth.*"}, {Since: at(230), Until: at(270)},
				{Since: at(-2600), Until: at(-2500)}, {Since: at(310), Until: at(330)},
			}
			for _, f := range filters {
				var want []int64
				for _, s := range evs {
					prefix, isPrefix := strings.CutSuffix(f.Action, ".*")
					if (f.Action != "" && !isPrefix && s.action != f.Action) || (isPrefix && !strings.HasPrefix(s.action, prefix+".")) ||
						(!f.Since.IsZero() && s.at.Before(f.Since)) || (!f.Until.IsZero() && !s.at.Before(f.Until)) ||
						(f.Outcome != "" && s.out != f.Outcome) || (f.Actor != "" && s.actor != f.Actor) {
						continue
					}
					want = append(want, s.seq)
				}
				for _, limit := range []int{7, 100} {
					if got := e.queryAll(t, f, limit); !slices.Equal(got, want) {
						t.Errorf("%s: pages of %d give seqs %v, want %v", describe(f), limit, got, want)
					}
				}
			}
		}
		check(t)
		// Late events appended after the first queries: the queries must
		// learn of their lag.
		add(50)
		check(t)
	})
}

func describe(f Filter) string {
	var parts []string
	if f.Action != "" {
		parts = append(parts, "action "+f.Action)
	}
	if f.Actor != "" {
		parts = append(parts, "actor "+f.Actor)
	}
	if f.Outcome != "" {
		parts = append(parts, "outcome "+f.Outcome)
	}
	if !f.Since.IsZero() {
		parts = append(parts, "since "+f.Since.Format(time.RFC3339))
	}
	if !f.Until.IsZero() {
		parts = append(parts, "until "+f.Until.Format(time.RFC3339))
	}
	return fmt.Sprint(strings.Join(parts, ", "))
}

// On a log whose times grow with its seqs (no lag), the bisection finds
// the window's edges exactly: a window from one event's time to the next
// one's holds that event alone, and open-ended windows start or stop at
// it. Events before and after the window's edges are read by seq, so an
// edge found one event off shows.
func TestQuery_WindowEdgesOnALogInOrder(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		e := newEnv(t, fresh(t, opts))
		const n = 37
		start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		times := make([]time.Time, n)
		for i := range times {
			times[i] = start.Add(time.Duration(i) * time.Minute)
		}
		e.appendAt(t, times, func(i int) Event {
			return alice.Event("record.read", Resource{Type: "record", ID: fmt.Sprintf("r%d", i)}, Success, nil)
		})
		seqsOf := func(lo, hi int) []int64 { // seqs lo..hi, newest first
			var s []int64
			for q := hi; q >= lo; q-- {
				s = append(s, int64(q))
			}
			return s
		}
		for _, j := range []int{1, 2, 3, 10, 18, 19, 30, n - 1, n} { // seq j is at times[j-1]
			at := times[j-1]
			if got, want := e.queryAll(t, Filter{Since: at, Until: at.Add(time.Minute)}, 5), seqsOf(j, j); !slices.Equal(got, want) {
				t.Errorf("window [event %d, the next): seqs %v, want %v", j, got, want)
			}
			if got, want := e.queryAll(t, Filter{Since: at}, 50), seqsOf(j, n); !slices.Equal(got, want) {
				t.Errorf("since event %d: seqs %v, want %v", j, got, want)
			}
			if got, want := e.queryAll(t, Filter{Until: at}, 50), seqsOf(1, j-1); !slices.Equal(got, want) {
				t.Errorf("until event %d: seqs %v, want %v", j, got, want)
			}
		}
		// Before the first event and after the last.
		if got := e.queryAll(t, Filter{Until: start}, 50); len(got) != 0 {
			t.Errorf("until the first event's time: %v, want none", got)
		}
		if got := e.queryAll(t, Filter{Since: times[n-1].Add(time.Second)}, 50); len(got) != 0 {
			t.Errorf("since after the last event: %v, want none", got)
		}
	})
}

// A log of several complete blocks (each with a bloom) and a partial one:
// every filter, alone and together, returns exactly what a filter over
// every stored event returns, page by page, newest first, and Export the
// same oldest first; also with a bloom missing (that block is read), and
// with every bloom saying yes (every block is read).
func TestQuery_BloomsSkipOnlyBlocksWithoutAMatch(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, fresh(t, opts))
		rng := rand.New(rand.NewPCG(3, 4))
		const n = 4*blockEvents + 77
		actions := []string{"auth.login.failed", "auth.login.succeeded", "auth.logout", "record.created", "record.read", "member.invited"}
		start := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
		for done := 0; done < n; {
			count := min(n-done, 300)
			times := make([]time.Time, count)
			for i := range times {
				times[i] = start.Add(time.Duration(done+i) * time.Second)
			}
			e.appendAt(t, times, func(i int) Event {
				k := done + i
				src := Source{Actor: Actor{Type: ActorUser, ID: fmt.Sprintf("u-%d", rng.IntN(40))}}
				switch {
				case k == 1000: // one event of a rare actor, mid-log
					src.Actor.ID = "u-rare"
				case rng.IntN(7) == 0:
					src.Actor = Actor{Type: ActorAPIKey, ID: "k-bot"}
				}
				action := actions[rng.IntN(len(actions))]
				if k%600 == 5 {
					action = "key.rotated"
				}
				outcome := []string{Success, Success, Failure, Denied}[rng.IntN(4)]
				return src.Event(action, Resource{Type: []string{"record", "file"}[rng.IntN(2)], ID: fmt.Sprintf("r%d", rng.IntN(900))}, outcome, nil)
			})
			done += count
		}
		if err := e.svc.ChainPending(ctx); err != nil {
			t.Fatal(err)
		}
		if got := e.count(t, "SELECT COUNT(*) FROM audit_blooms"); got != n/blockEvents {
			t.Fatalf("%d blooms after indexing, want one per complete block (%d)", got, n/blockEvents)
		}
		var evs []rawEvent
		e.withEventsTable(t, true, false, func(db *sql.DB) {
			err := scanEvents(ctx, db, 0, math.MaxInt64, false, func(f *fields, hash []byte) (bool, error) {
				var r rawEvent
				err := f.event(&r, hash)
				evs = append(evs, r)
				return true, err
			})
			if err != nil {
				t.Fatal(err)
			}
		})
		if len(evs) != n {
			t.Fatalf("%d events stored, want %d", len(evs), n)
		}
		at := func(sec int) time.Time { return start.Add(time.Duration(sec) * time.Second) }
		filters := []Filter{
			{Actor: "u-rare"}, {Actor: "user:u-rare"}, {Actor: "api_key:u-rare"}, {Actor: "k-bot"}, {Actor: "u-3"},
			{Action: "key.rotated"}, {Action: "key.*"}, {Action: "auth.*"}, {Action: "auth.login.*"}, {Action: "nothing.here"},
			{Resource: "file"}, {Resource: "record:r17"}, {Resource: "file:r899"}, {Outcome: Denied},
			{Actor: "u-3", Action: "auth.login.*"}, {Actor: "k-bot", Action: "record.read"}, {Actor: "u-rare", Action: "auth.*"},
			{Actor: "u-5", Resource: "record:r3", Outcome: Failure}, {Action: "key.rotated", Since: at(700), Until: at(1900)},
			{Actor: "k-bot", Since: at(2040), Until: at(2100)}, {},
		}
		check := func(t *testing.T) {
			t.Helper()
			for _, f := range filters {
				m := f.matcher()
				var want []int64
				for i := len(evs) - 1; i >= 0; i-- {
					var fl fields
					body := hashInput(nil, e.org, nil, evs[i].Seq, eventFieldsOf(&evs[i].Event), evs[i].details)[hashPrefixLen(e.org, nil):]
					if err := fl.parse(body); err != nil {
						t.Fatal(err)
					}
					if m.match(&fl) {
						want = append(want, evs[i].Seq)
					}
				}
				for _, limit := range []int{9, 100} {
					if got := e.queryAll(t, f, limit); !slices.Equal(got, want) {
						t.Errorf("%+v, pages of %d: %d seqs %v, want %d %v", f, limit, len(got), got, len(want), want)
					}
				}
				var buf strings.Builder
				count, err := e.svc.Export(ctx, e.org, f, JSONL, &buf)
				if err != nil || int(count) != len(want) {
					t.Errorf("%+v: export of %d events (%v), want %d", f, count, err, len(want))
				}
			}
		}
		check(t)
		// A block without its bloom (lost, or never built) is read.
		e.exec(t, "DELETE FROM audit_blooms WHERE block = 1")
		check(t)
		// Blooms that hold every key skip nothing and change nothing.
		e.exec(t, "UPDATE audit_blooms SET bits = $1", bytes.Repeat([]byte{0xff}, bloomBytes))
		check(t)
	})
}
