package password

import (
	_ "embed"
	"slices"
	"strings"
	"sync"
)

// commonFile is the list of common passwords: one a line, lower-case, with
// # comment lines naming its source and licence. It is made by
// scripts/common-passwords.sh.
//
//go:embed common_passwords.txt
var commonFile string

// commonList returns the common passwords sorted for binary search. The
// strings share the embedded file's memory; only the slice (18k entries,
// under 300 KB) is allocated, on first use.
var commonList = sync.OnceValue(func() []string {
	list := make([]string, 0, strings.Count(commonFile, "\n"))
	for line := range strings.Lines(commonFile) {
		line = strings.TrimRight(line, "\r\n")
		if line == "" || line[0] == '#' {
			continue
		}
		list = append(list, line)
	}
	slices.Sort(list)
	return slices.Compact(list)
})

// IsCommon reports whether pw, ignoring case, is on the embedded list of
// common passwords.
func IsCommon(pw string) bool {
	_, found := slices.BinarySearch(commonList(), strings.ToLower(pw))
	return found
}
