package audit

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"
)

// A segment as stored is read back from the database, where anyone with
// write access could have put anything: its parsing must refuse what is
// malformed, never panic, and give back exactly what was encoded.
func FuzzSegmentRecords(f *testing.F) {
	ev := alice.Event("record.created", Resource{"record", "r1"}, Success, map[string]string{"size": "96"})
	ev.ID, ev.Time = "0190a0b2-0000-7000-8000-000000000001", time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	details, err := ev.normalize(nil)
	if err != nil {
		f.Fatal(err)
	}
	c, _ := chainSegments(nil, "org-1", 41, genesis("org-1"), [][]byte{encodeFields(nil, &ev, details), encodeFields(nil, &ev, details)})
	f.Add(c.segs[0])
	f.Add(c.segs[0][:len(c.segs[0])-1])
	f.Add([]byte{0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, seg []byte) {
		var out []byte
		err := records(seg, func(r record) bool {
			var fl fields
			if fl.parse(r.body) == nil {
				var e rawEvent
				if fl.event(&e, r.hash) == nil && e.Seq != fl.seq {
					t.Fatalf("event seq %d from a body of seq %d", e.Seq, fl.seq)
				}
			}
			out = appendRecord(out, r.body, r.hash)
			return true
		})
		if err == nil && !bytes.Equal(out, seg) {
			t.Fatalf("a segment that parses is not its records again:\n%x\n%x", seg, out)
		}
	})
}

// Records are what Append encoded: the fields, details, seqs and hashes
// come back as they went in, and each hash checks over the one before.
func TestSegment_RecordsHoldWhatWasAppended(t *testing.T) {
	var fieldsOf [][]byte
	var evs []Event
	for i := range 300 {
		ev := alice.Event("auth.login.failed", Resource{"user", "u-" + string(rune('a'+i%26))}, Failure, map[string]string{"n": "é\"<>"})
		ev.ID, ev.Time = "id-"+string(rune('a'+i%26)), time.Date(2026, 5, 6, 7, 8, 9, i*1000, time.UTC)
		details, err := ev.normalize(nil)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
		enc := encodeFields(nil, &ev, details)
		if in := hashInput(nil, "org-1", nil, 0, eventFieldsOf(&ev), details); !bytes.Equal(enc, in[hashPrefixLen("org-1", nil)+8:]) {
			t.Fatalf("encodeFields gives %x, the tail of the hash input is %x", enc, in[hashPrefixLen("org-1", nil)+8:])
		}
		fieldsOf = append(fieldsOf, enc)
	}
	prev := genesis("org-1")
	c, _ := chainSegments(nil, "org-1", 1000, prev, fieldsOf)
	if len(c.segs) != 3 || c.starts[0] != 1001 || c.ends[2] != 1300 || c.starts[2] != 1001+2*segmentMax {
		t.Fatalf("segments %v..%v, want 3 of up to %d from 1001 to 1300", c.starts, c.ends, segmentMax)
	}
	i := 0
	for s, seg := range c.segs {
		err := records(seg, func(r record) bool {
			var fl fields
			var e rawEvent
			if err := fl.parse(r.body); err != nil {
				t.Fatal(err)
			}
			if err := fl.event(&e, r.hash); err != nil {
				t.Fatal(err)
			}
			want := evs[i]
			if e.Seq != int64(1001+i) || e.ID != want.ID || !e.Time.Equal(want.Time) || e.Actor != want.Actor || e.Action != want.Action ||
				e.Resource != want.Resource || e.Outcome != want.Outcome || string(e.details) != `{"n":"é\"\u003c\u003e"}` {
				t.Fatalf("segment %d, record %d: %+v %s, want %+v", s, i, e.Event, e.details, want)
			}
			sum, _ := sumOf(nil, "org-1", prev, r.body)
			if !bytes.Equal(sum[:], r.hash) {
				t.Fatalf("record %d: its hash does not check over the one before", i)
			}
			prev = r.hash
			i++
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if i != 300 || !bytes.Equal(prev, c.last) {
		t.Fatalf("%d records, last hash %x, want 300 and %x", i, prev, c.last)
	}
}

func TestAppendTime_IsTheLayout(t *testing.T) {
	times := []time.Time{
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(2026, 12, 7, 8, 5, 1, 123456789, time.FixedZone("x", -7*3600)),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		times = append(times, time.Unix(rng.Int64N(253402300800), rng.Int64N(1e9)))
	}
	for _, tm := range times {
		if got, want := string(appendTime([]byte("x"), tm)), "x"+tm.UTC().Format(timeLayout); got != want {
			t.Fatalf("appendTime(%v) = %q, want %q", tm, got, want)
		}
	}
}
