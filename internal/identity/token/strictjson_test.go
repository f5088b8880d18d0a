package token

import (
	"encoding/json"
	"testing"
)

// str reads strings as encoding/json does, but refuses what encoding/json
// would silently replace with U+FFFD.
func TestJSONString_ReadsAsEncodingJSONAndRefusesWhatItWouldReplace(t *testing.T) {
	for _, tc := range []struct {
		in     string
		refuse bool
	}{
		{in: `""`}, {in: `"abc"`}, {in: `"é€😀"`}, {in: `"\"\\\/\b\f\n\r\t"`},
		{in: `"\u0041\u00e9\u20AC"`}, {in: `"\ud83d\ude00"`}, {in: `"a\ud83d\ude00b"`}, {in: `"\u0000"`},
		{in: `"\uFFFD"`}, {in: "\"\xef\xbf\xbd\""},
		{in: `"\ud800"`, refuse: true},         // a lone high surrogate
		{in: `"\ud800x"`, refuse: true},        // not followed by an escape
		{in: `"\ud800\u0041"`, refuse: true},   // followed by no low surrogate
		{in: `"\ud800\ud800"`, refuse: true},   // by a high one
		{in: `"\udc00"`, refuse: true},         // a lone low surrogate
		{in: `"\udc00\ud800"`, refuse: true},   // in the wrong order
		{in: "\"\xff\"", refuse: true},         // invalid UTF-8
		{in: "\"\xed\xa0\x80\"", refuse: true}, // a surrogate in UTF-8
		{in: "\"\xc3\"", refuse: true},         // a cut sequence
		{in: `"\u12"`, refuse: true}, {in: `"\u12g4"`, refuse: true}, {in: `"\x"`, refuse: true},
		{in: "\"\x1f\"", refuse: true}, {in: "\"a\tb\"", refuse: true}, {in: `"abc`, refuse: true},
		{in: `"abc\"`, refuse: true}, {in: `"\`, refuse: true},
	} {
		r := jsonReader{s: tc.in}
		got, ok := r.str()
		if tc.refuse {
			if ok {
				t.Errorf("str(%q) = %q, want refused", tc.in, got)
			}
			continue
		}
		var want string
		if err := json.Unmarshal([]byte(tc.in), &want); err != nil {
			t.Fatalf("encoding/json refuses %q: %v", tc.in, err)
		}
		if !ok || got != want || r.i != len(tc.in) {
			t.Errorf("str(%q) = %q, %v, at %d; want %q", tc.in, got, ok, r.i, want)
		}
	}
}
