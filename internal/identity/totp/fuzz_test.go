package totp

import (
	"testing"
	"time"
)

// FuzzCheck feeds arbitrary codes, times and stored steps to Check: it must
// never panic, and accept only six digits (spaces aside) that are the code
// of the current or the previous step, not before the epoch, after
// lastStep.
func FuzzCheck(f *testing.F) {
	now := time.Date(2026, 3, 1, 12, 0, 10, 0, time.UTC)
	f.Add(Code(rfcSecret, now), now.Unix(), int64(0), int64(0))
	f.Add(Code(rfcSecret, now.Add(-Period)), now.Unix(), int64(0), stepOf(now)-2)
	f.Add("123 456", int64(59), int64(999999999), int64(-1))
	f.Add("1234567", int64(-1), int64(0), int64(0))
	f.Add("", int64(1<<62), int64(-1), int64(1<<63-1))
	f.Add("١٢٣٤٥٦", int64(-1<<63), int64(0), int64(-1<<63))
	f.Fuzz(func(t *testing.T, code string, sec, nsec, lastStep int64) {
		at := time.Unix(sec, nsec)
		step, ok := Check(rfcSecret, code, at, lastStep)
		if !ok {
			return
		}
		digits, valid := normalizeCode(code)
		cur := stepOf(at)
		switch {
		case !valid:
			t.Fatalf("Check accepted %q, which is not six digits", code)
		case step <= lastStep || step < 0:
			t.Fatalf("Check(%q) accepted step %d with lastStep %d", code, step, lastStep)
		case step != cur && step != cur-1:
			t.Fatalf("Check(%q) at step %d accepted step %d", code, cur, step)
		}
		var want [Digits]byte
		hotp(&want, rfcSecret, step)
		if digits != want {
			t.Fatalf("Check(%q) accepted step %d, whose code is %s", code, step, want[:])
		}
	})
}

// FuzzMatchRecovery feeds arbitrary input to MatchRecovery against a fixed
// set of codes: it must never panic, and match only a form of one of them.
func FuzzMatchRecovery(f *testing.F) {
	codes, hashes, err := NewRecoveryCodes(testPepper, 5)
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range codes {
		f.Add(c)
	}
	f.Add("ABCDE-FGHJK")
	f.Add("oiloi-LIOLI")
	f.Add("")
	f.Add("-----------")
	f.Fuzz(func(t *testing.T, typed string) {
		idx, ok := MatchRecovery(testPepper, typed, hashes)
		if !ok {
			if idx != -1 {
				t.Fatalf("MatchRecovery(%q) = %d, false; want -1", typed, idx)
			}
			return
		}
		got, valid := normalizeRecovery(typed)
		want, _ := normalizeRecovery(codes[idx])
		if !valid || got != want {
			t.Fatalf("MatchRecovery(%q) matched code %d %q", typed, idx, codes[idx])
		}
	})
}
