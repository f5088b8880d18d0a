package totp

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"

	"bulwark/internal/apperr"
)

// Recovery codes: see the package documentation for the format and why
// the hash is keyed.
const (
	// DefaultRecoveryCodes is how many codes NewRecoveryCodes makes when
	// asked for 0.
	DefaultRecoveryCodes = 10
	// MaxRecoveryCodes bounds n in NewRecoveryCodes.
	MaxRecoveryCodes = 100
	// MinPepper is the shortest pepper the recovery code functions take.
	MinPepper = 32

	recoveryLen = 10 // characters, 5 bits each
	// The stored hash: format (1 byte) | salt (16) | HMAC-SHA-256 (32).
	recoveryFormatV1 = 0x01
	recoverySaltSize = 16
	recoveryHashSize = 1 + recoverySaltSize + sha256.Size
)

// crockford is Crockford's base32 alphabet: digits and upper case letters
// without I, L, O and U. Its size divides 256, so a random byte masked to
// five bits picks a character without bias.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// recoveryDomain keeps these MACs apart from anything else the pepper
// might key.
const recoveryDomain = "bulwark/totp/recovery/v1"

// NewRecoveryCodes returns n new recovery codes (DefaultRecoveryCodes when
// n is 0), to be shown to the user once, and their hashes under pepper, to
// be stored in place of the codes; hashes[i] is the hash of codes[i]. Each
// code is ten Crockford base32 characters in lower case shown as
// "xxxxx-xxxxx", 50 random bits; no two codes of one call are equal.
// Pepper is a server secret of at least MinPepper bytes kept outside the
// database that stores the hashes, the same for every later MatchRecovery.
// Returns invalid when n is negative or above MaxRecoveryCodes; any other
// error (a short pepper, a failed random source) is internal.
func NewRecoveryCodes(pepper []byte, n int) (codes []string, hashes [][]byte, err error) {
	if n == 0 {
		n = DefaultRecoveryCodes
	}
	if n < 0 || n > MaxRecoveryCodes {
		return nil, nil, apperr.Errorf(apperr.Invalid, "the number of recovery codes must be between 1 and %d", MaxRecoveryCodes)
	}
	if len(pepper) < MinPepper {
		return nil, nil, fmt.Errorf("totp: recovery code pepper of %d bytes, want at least %d", len(pepper), MinPepper)
	}
	codes = make([]string, 0, n)
	hashes = make([][]byte, 0, n)
	seen := make(map[[recoveryLen]byte]bool, n)
	for len(codes) < n {
		var raw [recoveryLen]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return nil, nil, fmt.Errorf("totp: read random recovery code: %w", err)
		}
		var c [recoveryLen]byte
		for i, r := range raw {
			c[i] = crockford[r&31]
		}
		if seen[c] { // 1 in 2^50 per pair: a repeat would make MatchRecovery's index ambiguous
			continue
		}
		seen[c] = true
		var salt [recoverySaltSize]byte
		if _, err := rand.Read(salt[:]); err != nil {
			return nil, nil, fmt.Errorf("totp: read random salt: %w", err)
		}
		h := make([]byte, 0, recoveryHashSize)
		h = append(h, recoveryFormatV1)
		h = append(h, salt[:]...)
		h = recoveryMAC(h, pepper, salt[:], &c)
		hashes = append(hashes, h)
		codes = append(codes, display(&c))
	}
	return codes, hashes, nil
}

// MatchRecovery reports whether code, as a user typed it, is one of the
// codes whose hashes under pepper are given, and returns the index of the
// hash it matched (the first, should a hash be listed twice); the caller deletes that hash (with a compare-and-set on
// it, or two concurrent requests could both use the code) before it lets
// the user in. Input is case-insensitive, dashes and spaces are ignored,
// and o, i and l are read as 0, 1 and 1; anything that is not then ten
// characters of the alphabet matches nothing. Every hash is computed and
// compared in constant time, whether or not an earlier one matched; nil or
// malformed entries (a deleted code) match nothing. A pepper shorter than
// MinPepper matches nothing.
func MatchRecovery(pepper []byte, code string, hashes [][]byte) (index int, ok bool) {
	c, valid := normalizeRecovery(code)
	if !valid || len(pepper) < MinPepper {
		return -1, false
	}
	index = -1
	var buf [recoveryHashSize]byte
	for i, h := range hashes {
		if len(h) != recoveryHashSize || h[0] != recoveryFormatV1 {
			continue
		}
		want := recoveryMAC(buf[:0], pepper, h[1:1+recoverySaltSize], &c)
		if subtle.ConstantTimeCompare(want, h[1+recoverySaltSize:]) == 1 && index < 0 {
			index = i
		}
	}
	return index, index >= 0
}

// recoveryMAC appends HMAC-SHA-256(pepper, domain | salt | code) to b.
// Domain and salt have fixed lengths, so the encoding is unambiguous.
func recoveryMAC(b, pepper, salt []byte, c *[recoveryLen]byte) []byte {
	mac := hmac.New(sha256.New, pepper)
	mac.Write([]byte(recoveryDomain))
	mac.Write(salt)
	mac.Write(c[:])
	return mac.Sum(b)
}

// display writes a normalized code as users see it: lower case, grouped
// "xxxxx-xxxxx".
func display(c *[recoveryLen]byte) string {
	var b [recoveryLen + 1]byte
	j := 0
	for i, ch := range c {
		if i == recoveryLen/2 {
			b[j] = '-'
			j++
		}
		if ch >= 'A' && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		b[j] = ch
		j++
	}
	return string(b[:])
}

// maxRecoveryInput bounds the input normalizeRecovery looks at.
const maxRecoveryInput = 64

// normalizeRecovery returns the canonical form of a typed recovery code
// (upper case, no separators, Crockford's o/i/l folded), or false when it
// is not ten characters of the alphabet.
func normalizeRecovery(s string) (c [recoveryLen]byte, ok bool) {
	if len(s) > maxRecoveryInput {
		return c, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch == '-' || ch == ' ' {
			continue
		}
		if ch >= 'a' && ch <= 'z' {
			ch -= 'a' - 'A'
		}
		switch ch {
		case 'O':
			ch = '0'
		case 'I', 'L':
			ch = '1'
		}
		if n == recoveryLen || !inCrockford(ch) {
			return c, false
		}
		c[n] = ch
		n++
	}
	return c, n == recoveryLen
}

func inCrockford(ch byte) bool {
	return ch >= '0' && ch <= '9' || ch >= 'A' && ch <= 'Z' && ch != 'I' && ch != 'L' && ch != 'O' && ch != 'U'
}
