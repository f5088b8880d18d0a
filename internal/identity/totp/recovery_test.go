package totp

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"bulwark/internal/apperr"
)

var testPepper = bytes.Repeat([]byte("pepper-"), 5) // 35 bytes

// recoveryShape is Crockford base32 in lower case (no i, l, o, u), grouped.
var recoveryShape = regexp.MustCompile(`^[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}$`)

func TestNewRecoveryCodes_TenDistinctGroupedCodesStoredOnlyHashed(t *testing.T) {
	codes, hashes, err := NewRecoveryCodes(testPepper, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != 10 || len(hashes) != 10 {
		t.Fatalf("%d codes, %d hashes; want 10 of each by default", len(codes), len(hashes))
	}
	seen := map[string]bool{}
	for i, c := range codes {
		if !recoveryShape.MatchString(c) {
			t.Errorf("code %q is not xxxxx-xxxxx in Crockford base32", c)
		}
		if seen[c] {
			t.Errorf("code %q given twice", c)
		}
		seen[c] = true
		plain := strings.ReplaceAll(c, "-", "")
		for _, form := range []string{c, plain, strings.ToUpper(plain)} {
			if bytes.Contains(hashes[i], []byte(form)) {
				t.Errorf("hash %d holds the code as %q", i, form)
			}
		}
		if idx, ok := MatchRecovery(testPepper, c, hashes); !ok || idx != i {
			t.Errorf("code %d %q: MatchRecovery = %d, %v", i, c, idx, ok)
		}
	}
	for i := range hashes {
		for j := range i {
			if bytes.Equal(hashes[i], hashes[j]) {
				t.Errorf("hashes %d and %d are equal", i, j)
			}
		}
	}
}

func TestNewRecoveryCodes_UsesTheWholeAlphabetEvenly(t *testing.T) {
	codes, _, err := NewRecoveryCodes(testPepper, MaxRecoveryCodes)
	if err != nil {
		t.Fatal(err)
	}
	count := map[rune]int{}
	for _, c := range codes {
		for _, r := range strings.ReplaceAll(c, "-", "") {
			count[r]++
		}
	}
	// 1000 characters over 32 symbols: about 31 each. A symbol never seen,
	// or seen three times too often, means a broken mapping (a chance of
	// well under one in a billion for a uniform source).
	if len(count) != 32 {
		t.Fatalf("%d distinct characters in 1000, want all 32: %v", len(count), count)
	}
	for r, n := range count {
		if n > 93 {
			t.Errorf("%q appears %d times in 1000", r, n)
		}
	}
}

func TestNewRecoveryCodes_RefusesBadCountOrPepper(t *testing.T) {
	for _, n := range []int{-1, MaxRecoveryCodes + 1} {
		if _, _, err := NewRecoveryCodes(testPepper, n); apperr.CodeOf(err) != apperr.Invalid {
			t.Errorf("n = %d: %v, want invalid", n, err)
		}
	}
	if codes, _, err := NewRecoveryCodes(testPepper, 1); err != nil || len(codes) != 1 {
		t.Errorf("n = 1: %d codes, %v", len(codes), err)
	}
	for _, p := range [][]byte{nil, testPepper[:MinPepper-1]} {
		if _, _, err := NewRecoveryCodes(p, 10); err == nil || apperr.CodeOf(err) != apperr.Internal {
			t.Errorf("pepper of %d bytes: %v, want an internal error", len(p), err)
		}
	}
}

func TestMatchRecovery_NormalizesWhatUsersType(t *testing.T) {
	codes, hashes, err := NewRecoveryCodes(testPepper, 10)
	if err != nil {
		t.Fatal(err)
	}
	c := codes[3]
	plain := strings.ReplaceAll(c, "-", "")
	for _, typed := range []string{
		c,
		strings.ToUpper(c),
		plain,
		plain[:5] + " " + plain[5:],
		" " + c + " ",
		"-" + plain[:2] + "-" + plain[2:] + "-",
		strings.NewReplacer("0", "o", "1", "l").Replace(c), // read 0 as o, 1 as l
		strings.NewReplacer("0", "O", "1", "I").Replace(c),
	} {
		if idx, ok := MatchRecovery(testPepper, typed, hashes); !ok || idx != 3 {
			t.Errorf("typed %q for %q: MatchRecovery = %d, %v; want 3", typed, c, idx, ok)
		}
	}
}

// hashOf returns the stored hash of a code chosen by the test.
func hashOf(t *testing.T, code string) []byte {
	t.Helper()
	c, ok := normalizeRecovery(code)
	if !ok {
		t.Fatalf("%q is not a recovery code", code)
	}
	salt := bytes.Repeat([]byte{7}, recoverySaltSize)
	return recoveryMAC(append([]byte{recoveryFormatV1}, salt...), testPepper, salt, &c)
}

func TestMatchRecovery_ReadsAmbiguousLettersAsDigits(t *testing.T) {
	hashes := [][]byte{hashOf(t, "abcde-fghjk"), hashOf(t, "01111-00000"), hashOf(t, "mnpqr-stvwx")}
	for _, typed := range []string{"01111-00000", "oliI1-OoOo0", "OLIil oooOO", "0LLLL00000"} {
		if idx, ok := MatchRecovery(testPepper, typed, hashes); !ok || idx != 1 {
			t.Errorf("typed %q for 01111-00000: MatchRecovery = %d, %v; want 1", typed, idx, ok)
		}
	}
	for _, typed := range []string{"0uuuu-00000", "01111-0000", "01111-000000"} {
		if idx, ok := MatchRecovery(testPepper, typed, hashes); ok {
			t.Errorf("typed %q: matched %d", typed, idx)
		}
	}
	// A hash listed twice answers with the first, which the caller deletes.
	twice := [][]byte{hashes[0], hashes[2], hashes[0], hashes[2]}
	if idx, ok := MatchRecovery(testPepper, "MNPQR-STVWX", twice); !ok || idx != 1 {
		t.Errorf("hash listed at 1 and 3: MatchRecovery = %d, %v; want 1", idx, ok)
	}
}

func TestMatchRecovery_RefusesWrongCodesPeppersAndHashes(t *testing.T) {
	codes, hashes, err := NewRecoveryCodes(testPepper, 10)
	if err != nil {
		t.Fatal(err)
	}
	c := codes[0]
	plain := strings.ReplaceAll(c, "-", "")
	other := []byte(plain)
	other[9] = map[bool]byte{true: 'z', false: 'y'}[other[9] != 'z']
	for _, typed := range []string{
		"",
		plain[:9],       // a character short
		plain + "0",     // a character long
		string(other),   // one character changed
		plain[:9] + "u", // outside the alphabet
		plain[:9] + "!",
		plain[:5] + "_" + plain[5:],
		plain[:5] + "\t" + plain[5:],
		strings.Repeat("-", 1000) + plain, // long input is refused before it is read
	} {
		if idx, ok := MatchRecovery(testPepper, typed, hashes); ok {
			t.Errorf("typed %q: matched %d", typed, idx)
		}
	}
	otherPepper := bytes.Repeat([]byte("x"), MinPepper)
	if idx, ok := MatchRecovery(otherPepper, c, hashes); ok {
		t.Errorf("another pepper matched %d", idx)
	}
	if idx, ok := MatchRecovery(testPepper[:MinPepper-1], c, hashes); ok {
		t.Errorf("a short pepper matched %d", idx)
	}
	// A used code is deleted by the caller: nil, or the slice without it.
	used := append([][]byte(nil), hashes...)
	used[0] = nil
	if idx, ok := MatchRecovery(testPepper, c, used); ok {
		t.Errorf("a deleted code matched %d", idx)
	}
	if idx, ok := MatchRecovery(testPepper, codes[1], used); !ok || idx != 1 {
		t.Errorf("after deleting code 0, code 1 = %d, %v", idx, ok)
	}
	// Any change to a stored hash (format, salt, MAC, length) breaks it.
	for i := range hashes[0] {
		bad := append([][]byte{bytes.Clone(hashes[0])}, hashes[1:]...)
		bad[0][i] ^= 0x01
		if idx, ok := MatchRecovery(testPepper, c, bad); ok {
			t.Fatalf("hash byte %d flipped: matched %d", i, idx)
		}
	}
	for _, h := range [][]byte{hashes[0][:len(hashes[0])-1], append(bytes.Clone(hashes[0]), 0)} {
		if idx, ok := MatchRecovery(testPepper, c, [][]byte{h}); ok {
			t.Fatalf("hash of %d bytes matched %d", len(h), idx)
		}
	}
	// A hash moved from one code to another does not make the other code match.
	swapped := [][]byte{hashes[1]}
	if _, ok := MatchRecovery(testPepper, c, swapped); ok {
		t.Error("code 0 matched code 1's hash")
	}
}
