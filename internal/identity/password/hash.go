package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"

	"golang.org/x/crypto/argon2"
)

// Params is the cost of an argon2id hash: memory in KiB, passes over the
// memory, and lanes (threads).
type Params struct {
	MemoryKiB, Time uint32
	Threads         uint8
}

// DefaultParams is OWASP's recommended minimum for argon2id (Password
// Storage Cheat Sheet): 19 MiB, 2 passes, 1 lane.
var DefaultParams = Params{MemoryKiB: 19456, Time: 2, Threads: 1}

// Bounds on the argon2id cost. Verify refuses a stored hash outside them, so
// that a damaged or planted hash cannot make one login take gigabytes or
// minutes; Hash refuses Params outside them.
const (
	MaxMemoryKiB = 1 << 20 // 1 GiB
	MaxTime      = 20
	MaxThreads   = 16
)

// The salt and key lengths of Hash. Verify accepts stored salts of 8 to 64
// bytes and keys of 16 to 64 bytes (made by other implementations), and
// asks for a rehash of those that differ from these.
const (
	saltLen = 16
	keyLen  = 32

	minSaltLen, maxSaltLen = 8, 64
	minKeyLen, maxKeyLen   = 16, 64
)

// check returns an error when p is not a cost this package uses: out of
// the bounds above, or below what argon2 needs (RFC 9106: at least one
// pass, one lane, and 8 KiB of memory per lane).
func (p Params) check() error {
	switch {
	case p.Threads < 1 || p.Threads > MaxThreads:
		return fmt.Errorf("threads %d outside 1..%d", p.Threads, MaxThreads)
	case p.Time < 1 || p.Time > MaxTime:
		return fmt.Errorf("time %d outside 1..%d", p.Time, MaxTime)
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > MaxMemoryKiB:
		return fmt.Errorf("memory %d KiB outside %d..%d for %d threads", p.MemoryKiB, 8*uint32(p.Threads), MaxMemoryKiB, p.Threads)
	}
	return nil
}

// Hash returns the argon2id hash of pw with cost p and a new random salt, in
// the PHC string format. pw is hashed as its bytes, whatever its length:
// nothing is truncated or normalised. Returns an error (internal) only when
// p is outside the bounds of Params.
func Hash(pw string, p Params) (string, error) {
	if err := p.check(); err != nil {
		return "", fmt.Errorf("password: hash params: %w", err)
	}
	salt := make([]byte, saltLen)
	rand.Read(salt) // never fails (crypto/rand aborts the program instead)
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.MemoryKiB, p.Threads, keyLen)
	return formatArgon2id(p, salt, key), nil
}

// formatArgon2id writes the PHC string of an argon2id hash.
func formatArgon2id(p Params, salt, key []byte) string {
	b := make([]byte, 0, 64+base64.RawStdEncoding.EncodedLen(len(salt))+base64.RawStdEncoding.EncodedLen(len(key)))
	b = append(b, "$argon2id$v=19$m="...)
	b = strconv.AppendUint(b, uint64(p.MemoryKiB), 10)
	b = append(b, ",t="...)
	b = strconv.AppendUint(b, uint64(p.Time), 10)
	b = append(b, ",p="...)
	b = strconv.AppendUint(b, uint64(p.Threads), 10)
	b = append(b, '$')
	b = base64.RawStdEncoding.AppendEncode(b, salt)
	b = append(b, '$')
	b = base64.RawStdEncoding.AppendEncode(b, key)
	return string(b)
}

// dummySalt and dummyKey stand in for a stored hash in DummyVerify.
var (
	dummySalt = make([]byte, saltLen)
	dummyKey  = make([]byte, keyLen)
)

// DummyVerify spends what Verify spends on an argon2id hash of cost p,
// and reports nothing. A login to an account that does not exist calls it
// with the Params its hashes use, so that its answer comes no sooner than a
// wrong password's and timing does not tell which accounts exist. (An
// account whose hash is still bcrypt, SHA-512 or an older argon2id cost
// answers in that hash's time until its next login upgrades it.) Params
// outside the bounds of Params are replaced by DefaultParams.
func DummyVerify(pw string, p Params) {
	if p.check() != nil {
		p = DefaultParams
	}
	key := argon2.IDKey([]byte(pw), dummySalt, p.Time, p.MemoryKiB, p.Threads, keyLen)
	subtle.ConstantTimeCompare(key, dummyKey)
}
