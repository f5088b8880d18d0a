package totp

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// oathtoolBinary finds oathtool (OATH Toolkit, Debian package oathtool) on
// PATH. BULWARK_TEST_OATHTOOL=skip skips the test; without a binary the
// test fails, so a missing install is never mistaken for a pass.
func oathtoolBinary(t *testing.T) string {
	t.Helper()
	if os.Getenv("BULWARK_TEST_OATHTOOL") == "skip" {
		t.Skip("BULWARK_TEST_OATHTOOL=skip: not checking codes against oathtool")
	}
	p, err := exec.LookPath("oathtool")
	if err != nil {
		t.Fatal("no oathtool on PATH: install it with `apt-get install oathtool` (scripts/deps.sh does); " +
			"BULWARK_TEST_OATHTOOL=skip skips this test")
	}
	return p
}

// oathtoolCode returns the code oathtool computes for secret at t, which
// must be a whole second.
func oathtoolCode(t *testing.T, bin string, secret []byte, at time.Time) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin, "--totp", "-b", Base32(secret), "--now", at.UTC().Format("2006-01-02 15:04:05 UTC"))
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("oathtool at %s: %v", at.UTC(), err)
	}
	code := strings.TrimSpace(string(out))
	if len(code) != Digits {
		t.Fatalf("oathtool at %s printed %q, want a %d-digit code", at.UTC(), out, Digits)
	}
	return code
}

// TestCheck_AcceptsOathtoolCodes plays the authenticator app with another
// implementation: oathtool's code at a time is Code's, and Check takes it
// at that time and one step later, not before, not two steps later, and
// not twice.
func TestCheck_AcceptsOathtoolCodes(t *testing.T) {
	bin := oathtoolBinary(t)
	random, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string][]byte{
		"rfc 6238":                     rfcSecret,
		"random":                       random,
		"16 bytes, unpadded in base32": []byte("sixteen byte key"),
	}
	times := []time.Time{
		// RFC 6238's vectors, up to the year 2603.
		time.Unix(59, 0), time.Unix(1111111111, 0), time.Unix(1234567890, 0),
		time.Unix(2000000000, 0), time.Unix(20000000000, 0),
		// Step boundaries: the last second of a step, the first of the next.
		time.Unix(1111111109, 0), time.Unix(1111111110, 0),
		time.Date(2026, 3, 1, 11, 59, 59, 0, time.UTC), time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		time.Date(2026, 3, 1, 12, 0, 29, 0, time.UTC),
		// Around 2^31 seconds (2038), where 32-bit time ends.
		time.Unix(1<<31-1, 0), time.Unix(1<<31, 0), time.Unix(1<<31+22, 0),
		time.Now().Truncate(time.Second),
	}
	for name, secret := range secrets {
		for _, at := range times {
			want := oathtoolCode(t, bin, secret, at)
			step := at.Unix() / 30
			for _, d := range []time.Duration{0, 999 * time.Millisecond} {
				if got := Code(secret, at.Add(d)); got != want {
					t.Errorf("%s at %s+%v: Code = %s, oathtool %s", name, at.UTC(), d, got, want)
				}
			}
			if s, ok := Check(secret, want, at, 0); !ok || s != step {
				t.Errorf("%s at %s: Check(oathtool's %s) = %d, %v; want step %d", name, at.UTC(), want, s, ok, step)
				continue
			}
			if s, ok := Check(secret, want, at.Add(Period), 0); !ok || s != step {
				t.Errorf("%s at %s: one step later, Check = %d, %v; want the previous step %d", name, at.UTC(), s, ok, step)
			}
			if _, ok := Check(secret, want, at, step); ok {
				t.Errorf("%s at %s: replay accepted", name, at.UTC())
			}
			if _, ok := Check(secret, want, at.Add(Period), step); ok {
				t.Errorf("%s at %s: replay one step later accepted", name, at.UTC())
			}
			// A code from the future, or too old; unless, 1 in ~500000,
			// the neighbouring step happens to have the same code.
			if Code(secret, at.Add(-Period)) != want && Code(secret, at.Add(-2*Period)) != want {
				if s, ok := Check(secret, want, at.Add(-Period), 0); ok {
					t.Errorf("%s at %s: the next step's code accepted (as step %d)", name, at.UTC(), s)
				}
			}
			if Code(secret, at.Add(2*Period)) != want && Code(secret, at.Add(Period)) != want {
				if s, ok := Check(secret, want, at.Add(2*Period), 0); ok {
					t.Errorf("%s at %s: a code two steps old accepted (as step %d)", name, at.UTC(), s)
				}
			}
			for _, bad := range []string{want + "0", want[:5], want[:5] + "x", "x" + want[1:], want[:3] + " " + want[3:] + "9"} {
				if _, ok := Check(secret, bad, at, 0); ok {
					t.Errorf("%s at %s: Check(%q) accepted", name, at.UTC(), bad)
				}
			}
			if _, ok := Check(secret, want[:3]+" "+want[3:], at, 0); !ok {
				t.Errorf("%s at %s: %q with a space refused", name, at.UTC(), want[:3]+" "+want[3:])
			}
			wrongCode := wrong(want, Code(secret, at.Add(-Period)))
			if _, ok := Check(secret, wrongCode, at, 0); ok {
				t.Errorf("%s at %s: wrong code %s accepted", name, at.UTC(), wrongCode)
			}
		}
	}
}
