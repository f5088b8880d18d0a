package password

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestVerify_Argon2idOfTheReferenceImplementation(t *testing.T) {
	// Made with the reference argon2 CLI (Debian package argon2):
	//   printf %s PW | argon2 SALT -id -t T -k M -p P -l L -e
	for _, tc := range []struct {
		name, encoded, pw string
		rehash            bool
	}{
		{"default cost", "$argon2id$v=19$m=19456,t=2,p=1$YnVsd2Fyay1zYWx0LTE2Yg$KsUBcMzJHRoAG34Oay72O+vj5vy0T0iBAuTHRDyE9mw", "correct horse battery staple", false},
		// Two lanes, a 12-byte salt and a 24-byte key: verifies, and is
		// not what Hash makes today.
		{"other cost and lengths", "$argon2id$v=19$m=64,t=1,p=2$c2FsdHNhbHRzYWx0$GymYosyR4v5zaIi5cjIhogaPPafbrqZ7", "pässwörd ☃ long enough", true},
	} {
		ok, rehash, err := Verify(tc.encoded, tc.pw, DefaultParams)
		if !ok || rehash != tc.rehash || err != nil {
			t.Errorf("%s: Verify = %v, %v, %v; want true, %v, nil", tc.name, ok, rehash, err, tc.rehash)
		}
		if ok, _, err := Verify(tc.encoded, tc.pw+" ", DefaultParams); ok || err != nil {
			t.Errorf("%s: wrong password: %v, %v", tc.name, ok, err)
		}
	}
}

func TestVerify_NeedsRehashWhenCostDiffersFromWant(t *testing.T) {
	h, err := Hash("pw of the old cost", testParams)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		want   Params
		rehash bool
	}{
		{testParams, false},
		{DefaultParams, true},
		{Params{MemoryKiB: testParams.MemoryKiB, Time: 2, Threads: 1}, true},
		{Params{MemoryKiB: testParams.MemoryKiB, Time: 1, Threads: 2}, true},
	} {
		ok, rehash, err := Verify(h, "pw of the old cost", tc.want)
		if !ok || rehash != tc.rehash || err != nil {
			t.Errorf("want %+v: Verify = %v, %v, %v; want true, %v, nil", tc.want, ok, rehash, err, tc.rehash)
		}
	}
}

func TestVerify_BcryptImportsVerifyAndAskForRehash(t *testing.T) {
	// PHP's manual example for password_verify ($2y$, cost 10).
	if ok, rehash, err := Verify("$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a", "rasmuslerdorf", DefaultParams); !ok || !rehash || err != nil {
		t.Fatalf("PHP $2y$ vector: %v, %v, %v; want true, true, nil", ok, rehash, err)
	}
	raw, err := bcrypt.GenerateFromPassword([]byte("imported password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"$2a$", "$2b$", "$2y$"} {
		h := prefix + string(raw[4:])
		if ok, rehash, err := Verify(h, "imported password", DefaultParams); !ok || !rehash || err != nil {
			t.Errorf("%s: Verify = %v, %v, %v; want true, true, nil", prefix, ok, rehash, err)
		}
		if ok, rehash, err := Verify(h, "imported passwore", DefaultParams); ok || rehash || err != nil {
			t.Errorf("%s: wrong password: %v, %v, %v; want false, false, nil", prefix, ok, rehash, err)
		}
	}
}

// bcrypt ignores every byte past the 72nd. Verify must not: a longer
// password is refused, even when its first 72 bytes are right.
func TestVerify_BcryptRefusesPasswordsLongerThan72Bytes(t *testing.T) {
	pw72 := strings.Repeat("0123456789abcdef", 4) + "-72bytes" // 72 bytes
	raw, err := bcrypt.GenerateFromPassword([]byte(pw72), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	longer := pw72 + " and whatever follows"
	// The attack this guards against: the library alone accepts it.
	if err := bcrypt.CompareHashAndPassword(raw, []byte(longer)); err != nil {
		t.Fatalf("x/crypto/bcrypt no longer truncates (%v): revisit the 72-byte rule", err)
	}
	if ok, _, err := Verify(string(raw), pw72, DefaultParams); !ok || err != nil {
		t.Fatalf("72-byte password: %v, %v; want true", ok, err)
	}
	if ok, rehash, err := Verify(string(raw), longer, DefaultParams); ok || rehash || err != nil {
		t.Fatalf("73+ byte password with the right first 72: %v, %v, %v; want false, false, nil", ok, rehash, err)
	}
	// The limit is in bytes of UTF-8: 36 × "é" is 72 bytes, 37 is 74.
	e36 := strings.Repeat("é", 36)
	rawE, err := bcrypt.GenerateFromPassword([]byte(e36), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := Verify(string(rawE), e36, DefaultParams); !ok {
		t.Error("36 × é (72 bytes) does not verify")
	}
	if ok, _, _ := Verify(string(rawE), e36+"é", DefaultParams); ok {
		t.Error("37 × é (74 bytes) verifies against the hash of 36")
	}
}

func TestVerify_SaltedSHA512ImportsVerifyAndAskForRehash(t *testing.T) {
	// Digests from sha512sum of salt || password.
	const pw = "correct horse battery staple"
	for _, tc := range []struct{ name, encoded string }{
		{"salt", "sha512$salt$1bad1df881698c4f6a0931f37a5dc4bcb5ff20d530144a1f14ba153c03c020a2a5fbec48265d76cb56f6bedd9297b645d38dff3d054807936c5da4a04a19737c"},
		{"other salt", "sha512$N4CL$fef9a4f267629d16527d6f4f1e830c7cd8f7af20de436f5c8d7b02c1a37a714e3f19483db7080a1c09676c3b5d4e74aec21cd6c91e45eb09b0b2870b2154039e"},
		{"salt with a $", "sha512$a$b$69892173b21b507bb70e7025e92ca4ca23cc61f179c63e3b0383e7ce369e66340507e4eb076835d8ecd7832958c3b55c15a7cb3a21dc0529055f89609e7361b8"},
		{"upper-case hex", "sha512$salt$" + strings.ToUpper("1bad1df881698c4f6a0931f37a5dc4bcb5ff20d530144a1f14ba153c03c020a2a5fbec48265d76cb56f6bedd9297b645d38dff3d054807936c5da4a04a19737c")},
	} {
		if ok, rehash, err := Verify(tc.encoded, pw, DefaultParams); !ok || !rehash || err != nil {
			t.Errorf("%s: Verify = %v, %v, %v; want true, true, nil", tc.name, ok, rehash, err)
		}
	}
	// "one byte shorter" is SHA-512("salt" || "correct horse battery stapl").
	for _, tc := range []struct{ name, encoded, pw string }{
		{"wrong password", "sha512$salt$1bad1df881698c4f6a0931f37a5dc4bcb5ff20d530144a1f14ba153c03c020a2a5fbec48265d76cb56f6bedd9297b645d38dff3d054807936c5da4a04a19737c", pw + "!"},
		{"one byte shorter", "sha512$salt$899befcbcb8fb67e7c9b1aedb2bde356c913a0d80383ace93a140b242a3ef20b04facb6a3a43b933ba889c42d3913428b4b9739f863192c0c1591d0861b294d9", pw},
	} {
		if ok, rehash, err := Verify(tc.encoded, tc.pw, DefaultParams); ok || rehash || err != nil {
			t.Errorf("%s: Verify = %v, %v, %v; want false, false, nil", tc.name, ok, rehash, err)
		}
	}
}

// malformedHashes are stored hashes Verify must refuse with an error. The
// argon2id ones are variants of one good hash.
var malformedHashes = []struct{ name, encoded string }{
	{"empty", ""},
	{"plain text", "hunter2"},
	{"unknown scheme", "$argon2i$v=19$m=19456,t=2,p=1$YnVsd2Fyay1zYWx0LTE2Yg$KsUBcMzJHRoAG34Oay72O+vj5vy0T0iBAuTHRDyE9mw"},
	{"scrypt", "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E"},
	{"argon2id without version", "$argon2id$m=19456,t=2,p=1$YnVsd2Fyay1zYWx0LTE2Yg$KsUBcMzJHRoAG34Oay72O+vj5vy0T0iBAuTHRDyE9mw"},
	{"argon2id version 16", "$argon2id$v=16$m=19456,t=2,p=1$YnVsd2Fyay1zYWx0LTE2Yg$KsUBcMzJHRoAG34Oay72O+vj5vy0T0iBAuTHRDyE9mw"},
	{"argon2id params reordered", "$argon2id$v=19$t=2,m=19456,p=1$YnVsd2Fyay1zYWx0LTE2Yg$KsUBcMzJHRoAG34Oay72O+vj5vy0T0iBAuTHRDyE9mw"},
	{"argon2id leading zero", "$argon2id$v=19$m=019456,t=2,p=1$YnVsd2Fyay1zYWx0LTE2Yg$KsUBcMzJHRoAG34Oay72O+vj5vy0T0iBAuTHRDyE9mw"},
	{"argon2id sign", "$argon2id$v=19$m=+19456,t=2,p=1$YnVsd2Fyay1zYWx0LTE2Yg$KsUBcMzJHRoAG34Oay72O+vj5vy0T0iBAuTHRDyE9mw"},
	{"argon2id keyid", "$argon2id$v=19$m=19456,t=2,p=1,keyid=a$YnVsd2Fyay1zYWx0LTE2Yg$KsUBcMzJHRoAG34Oay72O+vj5vy0T0iBAuTHRDyE9mw"},
	{"argon2id no hash", "$argon2id$v=19$m=19456,t=2,p=1$YnVsd2Fyay1zYWx0LTE2Yg"},
	{"argon2id extra field", "$argon2id$v=19$m=19456,t=2,p=1$YnVsd2Fyay1zYWx0LTE2Yg$KsUBcMzJHRoAG34Oay72O+vj5vy0T0iBAuTHRDyE9mw$"},
	{"argon2id m=0", "$argon2id$v=19$m=0,t=2,p=1$YnVsd2Fyay1zYWx0LTE2Yg$KsUBcMzJHRoAG34Oay72O+vj5vy0T0iBAuTHRDyE9mw"},
	{"argon2id t=0", "$argon2id$v=19$m=19456,t=0,p=1$YnVsd2Fyay1zYWx0LTE2Yg$KsUBcMzJHRoAG34Oay72O+vj5vy0T0iBAuTHRDyE9mw"},
	{"argon2id p=0", "$argon2id$v=19$m=19456,t=2,p=0$YnVsd2Fyay1zYWx0LTE2Yg$KsUBcMzJHRoAG34Oay72O+vj5vy0T0iBAuTHRDyE9mw"},
	{"argon2id m under 8p", "$argon2id$v=19$m=15,t=1,p=2$YnVsd2Fyay1zYWx0LTE2Yg$KsUBcMzJHRoAG34Oay72O+vj5vy0T0iBAuTHRDyE9mw"},
	{"argon2id m over 1 GiB", "$argon2id$v=19$m=1048577,t=2,p=1$YnVsd2Fyay1zYWx0LTE2Yg$KsUBcMzJHRoAG34Oay72O+vj5vy0T0iBAuTHRDyE9mw"},
	{"argon2id m over 32 bits", "$argon2id$v=19$m=4294967296,t=2,p=1$YnVsd2Fyay1zYWx0LTE2Yg$KsUBcMzJHRoAG34Oay72O+vj5vy0T0iBAuTHRDyE9mw"},
	{"argon2id t over 20", "$argon2id$v=19$m=19456,t=21,p=1$YnVsd2Fyay1zYWx0LTE2Yg$KsUBcMzJHRoAG34Oay72O+vj5vy0T0iBAuTHRDyE9mw"},
	{"argon2id p over 16", "$argon2id$v=19$m=19456,t=2,p=17$YnVsd2Fyay1zYWx0LTE2Yg$KsUBcMzJHRoAG34Oay72O+vj5vy0T0iBAuTHRDyE9mw"},
	{"argon2id p=257 wraps to 1 in a byte", "$argon2id$v=19$m=19456,t=2,p=257$YnVsd2Fyay1zYWx0LTE2Yg$KsUBcMzJHRoAG34Oay72O+vj5vy0T0iBAuTHRDyE9mw"},
	{"argon2id padded salt", "$argon2id$v=19$m=19456,t=2,p=1$YnVsd2Fyay1zYWx0LTE2Yg==$KsUBcMzJHRoAG34Oay72O+vj5vy0T0iBAuTHRDyE9mw"},
	{"argon2id url-safe base64", "$argon2id$v=19$m=19456,t=2,p=1$YnVsd2Fyay1zYWx0LTE2Yg$KsUBcMzJHRoAG34Oay72O-vj5vy0T0iBAuTHRDyE9mw"},
	{"argon2id non-canonical trailing bits", "$argon2id$v=19$m=19456,t=2,p=1$YnVsd2Fyay1zYWx0LTE2Yh$KsUBcMzJHRoAG34Oay72O+vj5vy0T0iBAuTHRDyE9mw"},
	{"argon2id newline in base64", "$argon2id$v=19$m=19456,t=2,p=1$YnVsd2Fyay1z\nYWx0LTE2Yg$KsUBcMzJHRoAG34Oay72O+vj5vy0T0iBAuTHRDyE9mw"},
	{"argon2id salt under 8 bytes", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$KsUBcMzJHRoAG34Oay72O+vj5vy0T0iBAuTHRDyE9mw"},
	{"argon2id key under 16 bytes", "$argon2id$v=19$m=19456,t=2,p=1$YnVsd2Fyay1zYWx0LTE2Yg$KsUBcMzJHRoAG34Oay72"},
	{"argon2id empty key", "$argon2id$v=19$m=19456,t=2,p=1$YnVsd2Fyay1zYWx0LTE2Yg$"},
	{"bcrypt $2x$", "$2x$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a"},
	{"bcrypt $2$", "$2$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a"},
	{"bcrypt cost 3", "$2y$03$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a"},
	{"bcrypt cost 16", "$2y$16$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a"},
	{"bcrypt cost 31", "$2y$31$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a"},
	{"bcrypt signed cost", "$2y$+9$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a"},
	{"bcrypt short", "$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1"},
	{"bcrypt long", "$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1aa"},
	{"bcrypt bad character", "$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1+"},
	{"sha512 without salt", "sha512$$1bad1df881698c4f6a0931f37a5dc4bcb5ff20d530144a1f14ba153c03c020a2a5fbec48265d76cb56f6bedd9297b645d38dff3d054807936c5da4a04a19737c"},
	{"sha512 without digest", "sha512$salt"},
	{"sha512 short digest", "sha512$salt$1bad1df881698c4f"},
	{"sha512 not hex", "sha512$salt$zbad1df881698c4f6a0931f37a5dc4bcb5ff20d530144a1f14ba153c03c020a2a5fbec48265d76cb56f6bedd9297b645d38dff3d054807936c5da4a04a19737c"},
	{"SHA512 upper-case scheme", "SHA512$salt$1bad1df881698c4f6a0931f37a5dc4bcb5ff20d530144a1f14ba153c03c020a2a5fbec48265d76cb56f6bedd9297b645d38dff3d054807936c5da4a04a19737c"},
	{"space in salt", "sha512$my salt$1bad1df881698c4f6a0931f37a5dc4bcb5ff20d530144a1f14ba153c03c020a2a5fbec48265d76cb56f6bedd9297b645d38dff3d054807936c5da4a04a19737c"},
	{"too long", "sha512$" + strings.Repeat("s", 500) + "$1bad1df881698c4f6a0931f37a5dc4bcb5ff20d530144a1f14ba153c03c020a2a5fbec48265d76cb56f6bedd9297b645d38dff3d054807936c5da4a04a19737c"},
	{"not ASCII", "sha512$sälz$1bad1df881698c4f6a0931f37a5dc4bcb5ff20d530144a1f14ba153c03c020a2a5fbec48265d76cb56f6bedd9297b645d38dff3d054807936c5da4a04a19737c"},
}

func TestVerify_MalformedHashIsAnErrorNeverAMatch(t *testing.T) {
	for _, tc := range malformedHashes {
		ok, rehash, err := Verify(tc.encoded, "correct horse battery staple", DefaultParams)
		if ok || rehash || err == nil || !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Verify = %v, %v, %v; want false, false, ErrMalformed", tc.name, ok, rehash, err)
			continue
		}
		// The error goes to logs: it must not carry the stored hash.
		if tail := tc.encoded[max(0, len(tc.encoded)-12):]; len(tc.encoded) > 12 && strings.Contains(err.Error(), tail) {
			t.Errorf("%s: error %q repeats the stored hash", tc.name, err)
		}
	}
}
