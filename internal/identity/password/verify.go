package password

import (
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// ErrMalformed is wrapped by every error of Verify: the stored hash cannot
// be used (unknown scheme, bad syntax, or a cost outside the bounds). The
// error says what is wrong but never holds the hash or the password. It is
// not an application error: a caller reports it as internal and logs it.
var ErrMalformed = errors.New("password: unusable password hash")

// Bounds of the stored formats besides argon2id's Params.
const (
	maxEncodedLen = 512 // longer than any hash this package accepts
	// MaxBcryptCost is the highest bcrypt cost Verify accepts: 2^15
	// rounds, a few seconds per verify. Imported hashes use 10 to 12.
	MaxBcryptCost = 15
	// bcryptMaxBytes is where bcrypt stops reading a password.
	bcryptMaxBytes = 72
)

type scheme uint8

const (
	schemeArgon2id scheme = iota + 1
	schemeBcrypt
	schemeSHA512
)

// storedHash is a parsed encoded hash.
type storedHash struct {
	scheme scheme
	params Params // argon2id
	salt   []byte // argon2id (decoded), sha512 (as stored)
	key    []byte // argon2id key, sha512 digest
	cost   int    // bcrypt
	bcrypt []byte // bcrypt: the whole encoded hash
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// parseHash parses an encoded hash of any supported scheme. It checks the
// syntax strictly (one spelling per hash) and the cost bounds, and does no
// hashing.
func parseHash(encoded string) (storedHash, error) {
	if encoded == "" {
		return storedHash{}, malformed("empty")
	}
	if len(encoded) > maxEncodedLen {
		return storedHash{}, malformed("longer than %d bytes", maxEncodedLen)
	}
	for i := 0; i < len(encoded); i++ {
		if c := encoded[i]; c <= ' ' || c > '~' {
			return storedHash{}, malformed("byte %d is not printable ASCII", i)
		}
	}
	switch {
	case strings.HasPrefix(encoded, "$argon2id$"):
		return parseArgon2id(encoded)
	case strings.HasPrefix(encoded, "$2"):
		return parseBcrypt(encoded)
	case strings.HasPrefix(encoded, "sha512$"):
		return parseSHA512(encoded)
	}
	return storedHash{}, malformed("unknown scheme")
}

// parseArgon2id parses $argon2id$v=19$m=M,t=T,p=P$salt$key. Only version
// 19 (0x13) exists in x/crypto; the optional keyid and data fields of the
// PHC format are not supported.
func parseArgon2id(encoded string) (storedHash, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 {
		return storedHash{}, malformed("argon2id: want 5 fields separated by $, have %d", len(parts)-1)
	}
	if parts[2] != "v=19" {
		return storedHash{}, malformed("argon2id: version must be v=19")
	}
	fields := strings.Split(parts[3], ",")
	if len(fields) != 3 {
		return storedHash{}, malformed("argon2id: want parameters m,t,p")
	}
	var vals [3]uint32
	for i, name := range []string{"m=", "t=", "p="} {
		digits, ok := strings.CutPrefix(fields[i], name)
		if !ok {
			return storedHash{}, malformed("argon2id: parameter %d must be %s", i+1, strings.TrimSuffix(name, "="))
		}
		v, err := parseDecimal(digits)
		if err != nil {
			return storedHash{}, malformed("argon2id: parameter %s: %v", strings.TrimSuffix(name, "="), err)
		}
		vals[i] = v
	}
	if vals[2] > MaxThreads {
		return storedHash{}, malformed("argon2id: threads %d above %d", vals[2], MaxThreads)
	}
	p := Params{MemoryKiB: vals[0], Time: vals[1], Threads: uint8(vals[2])}
	if err := p.check(); err != nil {
		return storedHash{}, malformed("argon2id: %v", err)
	}
	salt, err := decodeB64(parts[4])
	if err != nil || len(salt) < minSaltLen || len(salt) > maxSaltLen {
		return storedHash{}, malformed("argon2id: salt must be %d to %d bytes in unpadded base64", minSaltLen, maxSaltLen)
	}
	key, err := decodeB64(parts[5])
	if err != nil || len(key) < minKeyLen || len(key) > maxKeyLen {
		return storedHash{}, malformed("argon2id: hash must be %d to %d bytes in unpadded base64", minKeyLen, maxKeyLen)
	}
	return storedHash{scheme: schemeArgon2id, params: p, salt: salt, key: key}, nil
}

// parseDecimal parses a PHC decimal: digits only, no sign, no leading zero,
// at most 32 bits.
func parseDecimal(s string) (uint32, error) {
	if s == "" || len(s) > 10 || (len(s) > 1 && s[0] == '0') {
		return 0, errors.New("not a canonical decimal")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("not a canonical decimal")
		}
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, errors.New("out of range")
	}
	return uint32(v), nil
}

// decodeB64 decodes unpadded standard base64 in its one canonical
// spelling (no padding, zero trailing bits; parseHash has refused the
// newlines that the decoder would skip).
func decodeB64(s string) ([]byte, error) {
	return base64.RawStdEncoding.Strict().DecodeString(s)
}

// parseBcrypt parses $2a$, $2b$ or $2y$, a two-digit cost, $, and 53
// characters of bcrypt's base64 (22 of salt, 31 of hash). The three
// prefixes name the same computation for passwords of at most 72 bytes,
// the only ones Verify gives to bcrypt.
func parseBcrypt(encoded string) (storedHash, error) {
	if len(encoded) != 60 {
		return storedHash{}, malformed("bcrypt: want 60 characters, have %d", len(encoded))
	}
	if encoded[0] != '$' || encoded[1] != '2' || !strings.ContainsRune("aby", rune(encoded[2])) || encoded[3] != '$' || encoded[6] != '$' {
		return storedHash{}, malformed("bcrypt: want $2a$, $2b$ or $2y$ and a two-digit cost")
	}
	if encoded[4] < '0' || encoded[4] > '9' || encoded[5] < '0' || encoded[5] > '9' {
		return storedHash{}, malformed("bcrypt: cost is not two digits")
	}
	cost := int(encoded[4]-'0')*10 + int(encoded[5]-'0')
	if cost < bcrypt.MinCost || cost > MaxBcryptCost {
		return storedHash{}, malformed("bcrypt: cost %d outside %d..%d", cost, bcrypt.MinCost, MaxBcryptCost)
	}
	const alphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	for i := 7; i < len(encoded); i++ {
		if strings.IndexByte(alphabet, encoded[i]) < 0 {
			return storedHash{}, malformed("bcrypt: character %d is not bcrypt base64", i)
		}
	}
	return storedHash{scheme: schemeBcrypt, cost: cost, bcrypt: []byte(encoded)}, nil
}

// parseSHA512 parses sha512$salt$hex, hex being the 128 hex digits of
// SHA-512(salt || password). The salt is used as stored (its bytes, not
// decoded); it is everything between the first and the last $, so it may
// hold a $, and must not be empty: an unsalted digest is not this format.
// Hex digits may be of either case.
func parseSHA512(encoded string) (storedHash, error) {
	rest := strings.TrimPrefix(encoded, "sha512$")
	i := strings.LastIndexByte(rest, '$')
	if i < 0 {
		return storedHash{}, malformed("sha512: want sha512$salt$hex")
	}
	salt, digest := rest[:i], rest[i+1:]
	if salt == "" {
		return storedHash{}, malformed("sha512: empty salt")
	}
	if len(digest) != 2*sha512.Size {
		return storedHash{}, malformed("sha512: want %d hex digits, have %d", 2*sha512.Size, len(digest))
	}
	key, err := hex.DecodeString(digest)
	if err != nil {
		return storedHash{}, malformed("sha512: digest is not hex")
	}
	return storedHash{scheme: schemeSHA512, salt: []byte(salt), key: key}, nil
}

// Verify reports whether pw is the password of the encoded hash, and, when
// it is, whether the caller should replace the hash with Hash(pw, want):
// always for bcrypt and SHA-512, and for argon2id whose cost, salt length
// or key length differ from what Hash(pw, want) makes. A wrong password is
// (false, false, nil). err wraps ErrMalformed when encoded cannot be used;
// it never says whether pw was right.
//
// bcrypt reads only the first 72 bytes of a password. Verify refuses
// (false, false, nil) a password longer than 72 bytes against a bcrypt
// hash, even when its first 72 bytes match: otherwise every password that
// starts with the same 72 bytes would log in, and the stored hash would be
// upgraded to an argon2id hash of a password the user never chose. The
// user of such an account (an import from a system that truncated) signs
// in with a password reset, which a wrong-password answer already offers;
// a distinct answer would tell an attacker which accounts hold bcrypt
// hashes. 72 bytes of UTF-8 may be fewer than 72 characters.
//
// Cost: one hash of encoded's scheme and cost, in the caller's goroutine.
// Request handlers go through a Pool instead.
func Verify(encoded, pw string, want Params) (ok, needsRehash bool, err error) {
	h, err := parseHash(encoded)
	if err != nil {
		return false, false, err
	}
	return h.verify(pw, want)
}

func (h storedHash) verify(pw string, want Params) (ok, needsRehash bool, err error) {
	switch h.scheme {
	case schemeArgon2id:
		key := argon2.IDKey([]byte(pw), h.salt, h.params.Time, h.params.MemoryKiB, h.params.Threads, uint32(len(h.key)))
		if subtle.ConstantTimeCompare(key, h.key) != 1 {
			return false, false, nil
		}
		return true, h.params != want || len(h.salt) != saltLen || len(h.key) != keyLen, nil
	case schemeBcrypt:
		if len(pw) > bcryptMaxBytes {
			return false, false, nil
		}
		switch err := bcrypt.CompareHashAndPassword(h.bcrypt, []byte(pw)); {
		case err == nil:
			return true, true, nil
		case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
			return false, false, nil
		default:
			return false, false, malformed("bcrypt: salt or hash does not decode")
		}
	case schemeSHA512:
		d := sha512.New()
		d.Write(h.salt)
		d.Write([]byte(pw))
		if subtle.ConstantTimeCompare(d.Sum(nil), h.key) != 1 {
			return false, false, nil
		}
		return true, true, nil
	}
	return false, false, malformed("unknown scheme")
}

// CheckEncoded reports whether encoded is a hash Verify can use (argon2id
// PHC, bcrypt or sha512$salt$hex within the cost limits), without hashing
// anything: for imports. The error wraps ErrMalformed and never holds the
// hash.
func CheckEncoded(encoded string) error {
	_, err := parseHash(encoded)
	return err
}
