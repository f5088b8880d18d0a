package password

import (
	"crypto/rand"
	"slices"
	"strings"
	"testing"

	"bulwark/internal/apperr"
	"golang.org/x/crypto/bcrypt"
)

func codes(fs []apperr.FieldError) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Code)
	}
	return out
}

func TestDefaultPolicy_IsASVSWithNoDeviations(t *testing.T) {
	want := Policy{MinLength: 12, MaxLength: 128, History: 5, ForbidCommon: true}
	if DefaultPolicy != want {
		t.Fatalf("DefaultPolicy = %+v, want %+v", DefaultPolicy, want)
	}
	if d := Deviations(DefaultPolicy); len(d) != 0 {
		t.Fatalf("Deviations(DefaultPolicy) = %q, want none", d)
	}
}

func TestDeviations_NamesEachDepartureFromASVS(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Policy)
		want   string // in the one sentence expected
	}{
		{"short minimum", func(p *Policy) { p.MinLength = 8 }, "2.1.1"},
		{"no maximum", func(p *Policy) { p.MaxLength = 0 }, "2.1.2"},
		{"maximum under 64", func(p *Policy) { p.MaxLength = 32 }, "2.1.2"},
		{"maximum over 128", func(p *Policy) { p.MaxLength = 256 }, "2.1.2"},
		{"common allowed", func(p *Policy) { p.ForbidCommon = false }, "2.1.7"},
		{"upper required", func(p *Policy) { p.RequireUpper = true }, "upper-case"},
		{"lower required", func(p *Policy) { p.RequireLower = true }, "lower-case"},
		{"digit required", func(p *Policy) { p.RequireDigit = true }, "digit"},
		{"symbol required", func(p *Policy) { p.RequireSymbol = true }, "symbol"},
		{"expiry", func(p *Policy) { p.MaxAgeDays = 90 }, "90 days"},
	} {
		p := DefaultPolicy
		tc.change(&p)
		d := Deviations(p)
		if len(d) != 1 || !strings.Contains(d[0], tc.want) {
			t.Errorf("%s: Deviations = %q, want one sentence with %q", tc.name, d, tc.want)
		}
	}
	for _, p := range []Policy{
		{MinLength: 16, MaxLength: 64, ForbidCommon: true},
		{MinLength: 12, MaxLength: 128, History: 24, ForbidCommon: true},
	} {
		if d := Deviations(p); len(d) != 0 {
			t.Errorf("Deviations(%+v) = %q, want none: stricter is not a deviation", p, d)
		}
	}
	all := Policy{MinLength: 6, MaxLength: 20, RequireUpper: true, RequireLower: true, RequireDigit: true, RequireSymbol: true, MaxAgeDays: 30}
	if d := Deviations(all); len(d) != 8 {
		t.Errorf("Deviations of a policy breaking everything = %d sentences %q, want 8", len(d), d)
	}
}

func TestCheck_ReturnsEveryBrokenRule(t *testing.T) {
	strict := Policy{MinLength: 12, MaxLength: 20, RequireUpper: true, RequireLower: true, RequireDigit: true, RequireSymbol: true, ForbidCommon: true}
	ctx := Context{Email: "Alice.Smith@example.com", OrgName: "Acme Corp"}
	for _, tc := range []struct {
		name string
		p    Policy
		pw   string
		c    Context
		want []string
	}{
		{"good by default", DefaultPolicy, "violet tram sings at dusk", ctx, nil},
		{"good under strict", strict, "Violet tram 4 dusk", ctx, nil},
		{"short, no upper, digit or symbol", strict, "abc", Context{}, []string{"too_short", "missing_upper", "missing_digit", "missing_symbol"}},
		{"long and only digits", strict, strings.Repeat("7", 21), Context{}, []string{"too_long", "missing_upper", "missing_lower", "missing_symbol"}},
		{"common, ignoring case", DefaultPolicy, "QWERTY123456", Context{}, []string{"common"}},
		{"common and short", DefaultPolicy, "password", Context{}, []string{"too_short", "common"}},
		{"common allowed", Policy{MinLength: 8, ForbidCommon: false}, "password", Context{}, nil},
		{"email local part, ignoring case", DefaultPolicy, "my name is ALICE.SMITH!", ctx, []string{"contains_email"}},
		{"email local part equal", DefaultPolicy, "alice.smith@", Context{Email: "alice.smith@example.com"}, []string{"contains_email"}},
		{"email local part under 3 characters", DefaultPolicy, "al is my name, trust me", Context{Email: "al@example.com"}, nil},
		{"email domain alone is fine", DefaultPolicy, "example.com rocks forever", ctx, nil},
		{"org name, ignoring case and spaces", DefaultPolicy, "i love ACMECORP forever", ctx, []string{"contains_org_name"}},
		{"org name with spaces in the password", DefaultPolicy, "the a c m e  c o r p way", ctx, []string{"contains_org_name"}},
		{"org name under 3 characters", DefaultPolicy, "hp printers are fine", Context{OrgName: "H P"}, nil},
		{"everything", strict, "acmecorp", ctx, []string{"too_short", "contains_org_name", "missing_upper", "missing_digit", "missing_symbol"}},
		{"invalid UTF-8 breaks one rule", strict, "abc\xff\xfe", ctx, []string{"invalid_encoding"}},
	} {
		got := tc.p.Check(tc.pw, tc.c)
		if !slices.Equal(codes(got), tc.want) {
			t.Errorf("%s: Check = %v, want %v", tc.name, codes(got), tc.want)
		}
		for _, f := range got {
			if f.Field != "password" || f.Message == "" {
				t.Errorf("%s: field error %+v, want field password and a message", tc.name, f)
			}
			msg := strings.ToLower(f.Message)
			if (len(tc.pw) >= 9 && strings.Contains(msg, strings.ToLower(tc.pw))) || strings.Contains(msg, "alice") || strings.Contains(msg, "acme") {
				t.Errorf("%s: message %q repeats the password or the email", tc.name, f.Message)
			}
		}
	}
}

func TestCheck_LengthCountsCodePoints(t *testing.T) {
	p := DefaultPolicy
	for _, tc := range []struct {
		name string
		pw   string
		want []string
	}{
		{"12 × é is 24 bytes, 12 characters", strings.Repeat("é", 12), nil},
		{"11 × é", strings.Repeat("é", 11), []string{"too_short"}},
		{"12 emoji", strings.Repeat("🐝", 12), nil},
		{"128 CJK is 384 bytes", strings.Repeat("日", 128), nil},
		{"129 CJK", strings.Repeat("日", 129), []string{"too_long"}},
	} {
		if got := codes(p.Check(tc.pw, Context{})); !slices.Equal(got, tc.want) {
			t.Errorf("%s: Check = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestCheck_ClassesCountUnicodeLetters(t *testing.T) {
	p := Policy{RequireUpper: true, RequireLower: true, RequireDigit: true, RequireSymbol: true}
	if got := p.Check("Ölçü 9 ölçü", Context{}); len(got) != 0 { // space is a symbol
		t.Errorf("Check = %v, want none", codes(got))
	}
	if got := codes(p.Check("日本語パスワード", Context{})); !slices.Equal(got, []string{"missing_upper", "missing_lower", "missing_digit", "missing_symbol"}) {
		t.Errorf("caseless letters only: Check = %v", got)
	}
}

func TestCheck_RefusesReuseOfRecentPasswords(t *testing.T) {
	argon, err := Hash("the password before last", testParams)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := bcrypt.GenerateFromPassword([]byte("an imported bcrypt one"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	sha := "sha512$salt$1bad1df881698c4f6a0931f37a5dc4bcb5ff20d530144a1f14ba153c03c020a2a5fbec48265d76cb56f6bedd9297b645d38dff3d054807936c5da4a04a19737c"
	old, err := Hash("an old one beyond the history", testParams)
	if err != nil {
		t.Fatal(err)
	}
	prev := []string{"not a hash at all", argon, string(raw), sha, old}
	p := DefaultPolicy
	p.History = 4
	for _, tc := range []struct {
		pw     string
		reused bool
	}{
		{"the password before last", true},
		{"an imported bcrypt one", true},
		{"correct horse battery staple", true}, // the sha512 one
		{"an old one beyond the history", false},
		{"a brand new passphrase", false},
	} {
		got := codes(p.Check(tc.pw, Context{Previous: prev}))
		if slices.Contains(got, "reused") != tc.reused {
			t.Errorf("%q: Check = %v, want reused %v", tc.pw, got, tc.reused)
		}
	}
	p.History = 0
	if got := codes(p.Check("the password before last", Context{Previous: prev})); slices.Contains(got, "reused") {
		t.Errorf("History 0: Check = %v, want no reuse check", got)
	}
}

func TestCheck_RandomPasswordPassesTheDefaultPolicy(t *testing.T) {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	for range 20 {
		b := make([]byte, 20)
		rand.Read(b)
		for i := range b {
			b[i] = alphabet[int(b[i])%len(alphabet)]
		}
		if got := DefaultPolicy.Check(string(b), Context{Email: "someone@example.com", OrgName: "Example Org"}); len(got) != 0 {
			t.Fatalf("random password %q: Check = %v", b, codes(got))
		}
	}
}
