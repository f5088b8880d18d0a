package totp

import (
	"bytes"
	"math"
	"net/url"
	"strings"
	"testing"
	"time"
)

// rfcSecret is the SHA-1 seed of RFC 6238's test vectors.
var rfcSecret = []byte("12345678901234567890")

func TestCode_MatchesRFC6238Vectors(t *testing.T) {
	// RFC 6238 Appendix B, SHA-1: the 8-digit values, of which a 6-digit
	// code is the last six digits.
	for _, tc := range []struct {
		unix int64
		want string
	}{
		{59, "94287082"},
		{1111111109, "07081804"},
		{1111111111, "14050471"},
		{1234567890, "89005924"},
		{2000000000, "69279037"},
		{20000000000, "65353130"},
	} {
		if got := Code(rfcSecret, time.Unix(tc.unix, 0)); got != tc.want[2:] {
			t.Errorf("Code at %d = %q, want %q", tc.unix, got, tc.want[2:])
		}
	}
}

func TestCode_SameThroughoutAStep(t *testing.T) {
	start := time.Unix(1111111110, 0) // a step boundary
	want := Code(rfcSecret, start)
	for _, d := range []time.Duration{time.Nanosecond, time.Second, 29*time.Second + 999*time.Millisecond} {
		if got := Code(rfcSecret, start.Add(d)); got != want {
			t.Errorf("Code at boundary+%v = %q, want %q as at the boundary", d, got, want)
		}
	}
	if Code(rfcSecret, start.Add(-time.Nanosecond)) == want || Code(rfcSecret, start.Add(Period)) == want {
		t.Error("the steps before and after have the same code (they differ for this secret)")
	}
}

func TestNewSecret_TwentyRandomBytes(t *testing.T) {
	a, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 20 || len(b) != 20 {
		t.Fatalf("secrets of %d and %d bytes, want 20", len(a), len(b))
	}
	if bytes.Equal(a, b) || bytes.Equal(a, make([]byte, 20)) {
		t.Fatal("two secrets are equal, or zero")
	}
}

func TestBase32_UpperCaseWithoutPadding(t *testing.T) {
	if got := Base32(rfcSecret); got != "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" {
		t.Errorf("Base32(rfc secret) = %q", got)
	}
	if got := Base32([]byte{0xff}); got != "74" { // 8 bits: padding would follow
		t.Errorf("Base32(ff) = %q, want 74", got)
	}
}

func TestURI_EscapesIssuerAndAccount(t *testing.T) {
	got := URI("Bulwark", "alice@example.com", rfcSecret)
	want := "otpauth://totp/Bulwark:alice%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Bulwark&algorithm=SHA1&digits=6&period=30"
	if got != want {
		t.Errorf("URI = %q\nwant  %q", got, want)
	}

	// Characters that would cut the query or the label short, or that apps
	// would show wrong, come back exact.
	issuer, account := "Smith & Co=+ Ltd/ä", "bob+tag@example.com?x#y"
	u, err := url.Parse(URI(issuer, account, rfcSecret))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Scheme != "otpauth" || u.Host != "totp" || u.Path != "/"+issuer+":"+account {
		t.Errorf("parsed scheme %q host %q path %q", u.Scheme, u.Host, u.Path)
	}
	if q.Get("issuer") != issuer || q.Get("secret") != Base32(rfcSecret) || q.Get("algorithm") != "SHA1" ||
		q.Get("digits") != "6" || q.Get("period") != "30" || len(q) != 5 {
		t.Errorf("parsed query %v", q)
	}
	if s := URI(issuer, account, rfcSecret); strings.Contains(s, "+") || strings.Contains(s, " ") {
		t.Errorf("URI %q has a + or a space: apps show + as is", s)
	}
}

func TestCheck_AcceptsCurrentAndPreviousStepOnce(t *testing.T) {
	secret, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 12, 0, 10, 0, time.UTC)
	cur := stepOf(now)
	prevCode, curCode, nextCode := Code(secret, now.Add(-Period)), Code(secret, now), Code(secret, now.Add(Period))
	if prevCode == curCode || curCode == nextCode || prevCode == nextCode {
		t.Skip("two neighbouring codes collide for this secret (1 in ~500000): nothing to tell apart")
	}
	for _, tc := range []struct {
		name     string
		code     string
		lastStep int64
		want     int64 // the accepted step, or -1 when refused
	}{
		{"current step", curCode, 0, cur},
		{"previous step", prevCode, 0, cur - 1},
		{"next step", nextCode, 0, -1},
		{"two steps back", Code(secret, now.Add(-2*Period)), 0, -1},
		{"current step, replayed", curCode, cur, -1},
		{"previous step, replayed", prevCode, cur - 1, -1},
		{"previous step after the current one", prevCode, cur, -1},
		{"current step after the previous one", curCode, cur - 1, cur},
		{"spaces", curCode[:3] + " " + curCode[3:], 0, cur},
		{"spaces around", "  " + curCode + " ", 0, cur},
		{"wrong code", wrong(curCode, prevCode), 0, -1},
		{"seven digits", curCode + "0", 0, -1},
		{"seven digits, current code last", "0" + curCode, 0, -1},
		{"five digits", curCode[:5], 0, -1},
		{"letter", curCode[:5] + "a", 0, -1},
		{"dash", curCode[:3] + "-" + curCode[3:], 0, -1},
		{"tab", curCode[:3] + "\t" + curCode[3:], 0, -1},
		{"sign", "+" + curCode[1:], 0, -1},
		{"arabic-indic digits", "١٢٣٤٥٦", 0, -1},
		{"empty", "", 0, -1},
	} {
		step, ok := Check(secret, tc.code, now, tc.lastStep)
		if tc.want < 0 {
			if ok {
				t.Errorf("%s: Check(%q) accepted step %d, want refused", tc.name, tc.code, step)
			}
			continue
		}
		if !ok || step != tc.want {
			t.Errorf("%s: Check(%q) = %d, %v; want step %d", tc.name, tc.code, step, ok, tc.want)
		}
	}
}

// wrong returns a six-digit code that is neither a nor b.
func wrong(a, b string) string {
	for _, c := range []string{"000000", "111111", "222222"} {
		if c != a && c != b {
			return c
		}
	}
	panic("unreachable")
}

func TestCheck_CodeWorksOnceWhenCallerStoresTheStep(t *testing.T) {
	secret, _ := NewSecret()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	code := Code(secret, now)
	var last int64
	step, ok := Check(secret, code, now, last)
	if !ok {
		t.Fatal("fresh code refused")
	}
	last = step
	// The same code, replayed within its step and as the previous step.
	for _, at := range []time.Time{now.Add(time.Second), now.Add(Period)} {
		if _, ok := Check(secret, code, at, last); ok {
			t.Fatalf("replay at %v accepted", at)
		}
	}
	// The next step's code still works.
	if step, ok := Check(secret, Code(secret, now.Add(Period)), now.Add(Period), last); !ok || step != last+1 {
		t.Fatalf("next step's code = %d, %v; want %d", step, ok, last+1)
	}
}

func TestCheck_RefusesWeakSecretsAndTimesBeforeTheEpoch(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, secret := range [][]byte{nil, {}, make([]byte, 15)} {
		if _, ok := Check(secret, Code(secret, now), now, 0); ok {
			t.Errorf("secret of %d bytes: its code was accepted", len(secret))
		}
	}
	short := make([]byte, 16) // the floor: accepted
	if _, ok := Check(short, Code(short, now), now, 0); !ok {
		t.Error("16-byte secret: its code was refused")
	}
	// Steps before the epoch do not exist (the step counter is unsigned),
	// whatever the caller stored.
	for _, at := range []time.Time{time.Unix(-1, 0), time.Unix(-30, 0), time.Unix(-31, 0), time.Unix(-1<<40, 0)} {
		if step, ok := Check(rfcSecret, Code(rfcSecret, at), at, math.MinInt64); ok {
			t.Errorf("at %d: step %d accepted", at.Unix(), step)
		}
	}
	// The previous step of step 0 is before the epoch.
	at := time.Unix(10, 0)
	if step, ok := Check(rfcSecret, Code(rfcSecret, time.Unix(-1, 0)), at, math.MinInt64); ok {
		t.Errorf("in step 0: step %d accepted for the code of step -1", step)
	}
}
