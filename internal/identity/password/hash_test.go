package password

import (
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// testParams is a cheap argon2id cost for tests that need many hashes.
var testParams = Params{MemoryKiB: 64, Time: 1, Threads: 1}

func TestHash_DefaultIsOWASPArgon2idInPHCFormat(t *testing.T) {
	if DefaultParams != (Params{MemoryKiB: 19456, Time: 2, Threads: 1}) {
		t.Fatalf("DefaultParams = %+v, want OWASP m=19456 t=2 p=1", DefaultParams)
	}
	h, err := Hash("correct horse battery staple", DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	// 16-byte salt = 22 base64 characters, 32-byte key = 43.
	if !regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`).MatchString(h) {
		t.Fatalf("Hash = %q, not a PHC argon2id string with a 16-byte salt and a 32-byte key", h)
	}
	ok, rehash, err := Verify(h, "correct horse battery staple", DefaultParams)
	if !ok || rehash || err != nil {
		t.Fatalf("Verify(own hash) = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
	if ok, rehash, err := Verify(h, "correct horse battery stapler", DefaultParams); ok || rehash || err != nil {
		t.Fatalf("Verify(wrong password) = %v, %v, %v; want false, false, nil", ok, rehash, err)
	}
	h2, _ := Hash("correct horse battery staple", DefaultParams)
	if h2 == h || strings.Split(h2, "$")[4] == strings.Split(h, "$")[4] {
		t.Fatal("two hashes of one password share a salt")
	}
}

func TestHash_NothingIsTruncatedOrNormalised(t *testing.T) {
	long := strings.Repeat("ß☃ long passphrase ", 600) // ~13 KB
	for _, tc := range []struct{ name, pw, other string }{
		{"last byte of a long password", long + "a", long + "b"},
		{"past bcrypt's 72 bytes", strings.Repeat("x", 72) + "1", strings.Repeat("x", 72) + "2"},
		{"trailing space", "password with space ", "password with space"},
		{"NFC and NFD spellings differ", "caf\u00e9 au lait 2024", "cafe\u0301 au lait 2024"},
		{"case", "Tr0ub4dor&3-horse", "tr0ub4dor&3-horse"},
		{"empty and NUL", "", "\x00"},
	} {
		h, err := Hash(tc.pw, testParams)
		if err != nil {
			t.Fatal(err)
		}
		if ok, _, err := Verify(h, tc.pw, testParams); !ok || err != nil {
			t.Errorf("%s: Verify(own password) = %v, %v", tc.name, ok, err)
		}
		if ok, _, _ := Verify(h, tc.other, testParams); ok {
			t.Errorf("%s: a different password verifies", tc.name)
		}
	}
}

func TestHash_RefusesParamsOutOfBounds(t *testing.T) {
	for _, p := range []Params{
		{},
		{MemoryKiB: 19456, Time: 2, Threads: 0},
		{MemoryKiB: 19456, Time: 0, Threads: 1},
		{MemoryKiB: 7, Time: 1, Threads: 1},  // under 8 KiB per lane
		{MemoryKiB: 15, Time: 1, Threads: 2}, // ditto
		{MemoryKiB: MaxMemoryKiB + 1, Time: 1, Threads: 1},
		{MemoryKiB: 19456, Time: MaxTime + 1, Threads: 1},
		{MemoryKiB: 19456, Time: 2, Threads: MaxThreads + 1},
	} {
		if h, err := Hash("pw", p); err == nil {
			t.Errorf("Hash with %+v = %q, want an error", p, h)
		}
	}
	for _, p := range []Params{{MemoryKiB: 8, Time: 1, Threads: 1}, {MemoryKiB: 128, Time: MaxTime, Threads: MaxThreads}} {
		if _, err := Hash("pw", p); err != nil {
			t.Errorf("Hash with %+v: %v", p, err)
		}
	}
}

// allocated returns how many bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// DummyVerify's point is to cost what Verify costs. Time is too noisy to
// assert on; argon2id's memory is not: it allocates the whole matrix.
func TestDummyVerify_SpendsWhatVerifySpends(t *testing.T) {
	p := Params{MemoryKiB: 4096, Time: 1, Threads: 1}
	h, err := Hash("some password", p)
	if err != nil {
		t.Fatal(err)
	}
	verify := allocated(func() { Verify(h, "wrong password", p) })
	dummy := allocated(func() { DummyVerify("wrong password", p) })
	if verify < 4<<20 || dummy < 4<<20 {
		t.Fatalf("Verify allocated %d bytes, DummyVerify %d; want both ≥ 4 MiB (one argon2id pass)", verify, dummy)
	}
	if dummy < verify/2 || dummy > verify*2 {
		t.Errorf("DummyVerify allocated %d bytes, Verify %d: not the same work", dummy, verify)
	}
	// Params out of bounds fall back to the default cost, never to none.
	if got := allocated(func() { DummyVerify("pw", Params{}) }); got < uint64(DefaultParams.MemoryKiB)<<10 {
		t.Errorf("DummyVerify with zero Params allocated %d bytes, want the default cost", got)
	}
}
