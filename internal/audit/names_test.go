package audit

import (
	"regexp"
	"testing"
)

// The patterns that isAction and isName check by hand.
var (
	actionPattern  = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){1,5}$`)
	typePattern    = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)
	detailPattern  = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	namesSeedTexts = []string{"", "a", "a.b", "record.created", "auth.login.succeeded", "a.b.c.d.e.f", "a.b.c.d.e.f.g",
		"A.b", "a..b", ".a.b", "a.b.", "a_1.b_2", "1a.b", "a.b-c", "auth.login.süccess", "x", "api_key",
		"abcdefghijklmnopqrstuvwxyz0123456789_abcd", "abcdefghijklmnopqrstuvwxyz0123456789_abc", "a\nb", "a.b\n"}
)

func checkNames(t *testing.T, s string) {
	if got, want := isAction(s), actionPattern.MatchString(s); got != want {
		t.Errorf("isAction(%q) = %v, the pattern says %v", s, got, want)
	}
	if got, want := isName(s, maxType), typePattern.MatchString(s); got != want {
		t.Errorf("isName(%q, %d) = %v, the pattern says %v", s, maxType, got, want)
	}
	if got, want := isName(s, maxDetailKey), detailPattern.MatchString(s); got != want {
		t.Errorf("isName(%q, %d) = %v, the pattern says %v", s, maxDetailKey, got, want)
	}
}

func TestNames_MatchTheirPatterns(t *testing.T) {
	for _, s := range namesSeedTexts {
		checkNames(t, s)
	}
	long := "a"
	for range 70 {
		long += "b"
		checkNames(t, long)
		checkNames(t, "x."+long)
	}
}

func FuzzNames(f *testing.F) {
	for _, s := range namesSeedTexts {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkNames(t, s) })
}
