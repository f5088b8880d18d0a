package password

import (
	"errors"
	"testing"
)

// FuzzVerify feeds arbitrary stored hashes and passwords to Verify: it must
// never panic, must answer a hash that does not parse with ErrMalformed and
// never a match, must accept an argon2id hash only in its one canonical
// spelling, must never let bcrypt match a password over 72 bytes, and
// Hash's output must verify its own password and no other.
// Hashes that parse but would cost more than a few milliseconds are parsed,
// not verified, to keep the fuzzer fast.
func FuzzVerify(f *testing.F) {
	for _, tc := range malformedHashes {
		f.Add(tc.encoded, "correct horse battery staple")
	}
	f.Add("$argon2id$v=19$m=64,t=1,p=2$c2FsdHNhbHRzYWx0$GymYosyR4v5zaIi5cjIhogaPPafbrqZ7", "pässwörd ☃ long enough")
	f.Add("$argon2id$v=19$m=19456,t=2,p=1$YnVsd2Fyay1zYWx0LTE2Yg$KsUBcMzJHRoAG34Oay72O+vj5vy0T0iBAuTHRDyE9mw", "correct horse battery staple")
	f.Add("$2a$04$l9Uj9Ny2qNdDn1GgXEc9XeOXCptpIu9llYZtBUmfWr10rdOS8RVF2", "imported password")
	f.Add("$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a", "rasmuslerdorf")
	f.Add("sha512$salt$1bad1df881698c4f6a0931f37a5dc4bcb5ff20d530144a1f14ba153c03c020a2a5fbec48265d76cb56f6bedd9297b645d38dff3d054807936c5da4a04a19737c", "correct horse battery staple")
	tiny := Params{MemoryKiB: 8, Time: 1, Threads: 1}
	f.Fuzz(func(t *testing.T, encoded, pw string) {
		h, perr := parseHash(encoded)
		if perr != nil {
			ok, rehash, err := Verify(encoded, pw, tiny)
			if ok || rehash || !errors.Is(err, ErrMalformed) {
				t.Fatalf("Verify(unparsable %q) = %v, %v, %v; want false, false, ErrMalformed", encoded, ok, rehash, err)
			}
			return
		}
		cheap := true
		switch h.scheme {
		case schemeArgon2id:
			if got := formatArgon2id(h.params, h.salt, h.key); got != encoded {
				t.Fatalf("argon2id hash %q parses, but its canonical spelling is %q", encoded, got)
			}
			cheap = uint64(h.params.MemoryKiB)*uint64(h.params.Time) <= 1024
		case schemeBcrypt:
			cheap = h.cost <= 5
		}
		if cheap {
			ok, rehash, err := Verify(encoded, pw, tiny)
			if err != nil && (h.scheme != schemeBcrypt || !errors.Is(err, ErrMalformed)) {
				t.Fatalf("Verify(%q) parsed but failed: %v", encoded, err)
			}
			if !ok && rehash {
				t.Fatalf("Verify(%q) asks to rehash a wrong password", encoded)
			}
			if ok && h.scheme == schemeBcrypt && len(pw) > bcryptMaxBytes {
				t.Fatalf("bcrypt hash %q accepted a password of %d bytes", encoded, len(pw))
			}
		}

		fresh, err := Hash(pw, tiny)
		if err != nil {
			t.Fatal(err)
		}
		if ok, rehash, err := Verify(fresh, pw, tiny); !ok || rehash || err != nil {
			t.Fatalf("Hash(%q) does not verify: %v, %v, %v", pw, ok, rehash, err)
		}
		if ok, _, _ := Verify(fresh, pw+"\x00", tiny); ok {
			t.Fatalf("Hash(%q) verifies a longer password", pw)
		}
	})
}
