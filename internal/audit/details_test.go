package audit

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// checkCanonical compares canonicalDetails with encoding/json on d.
func checkCanonical(t *testing.T, d map[string]string) {
	t.Helper()
	got, err := canonicalDetails(d)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte("{}")
	if len(d) > 0 {
		if want, err = json.Marshal(d); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Errorf("canonicalDetails(%q) = %s, encoding/json gives %s", d, got, want)
	}
}

var detailsSeedTexts = []string{"", "size", "title,text", "a\"b", `back\slash`, "<script>&amp;", "tab\there", "nul\x00",
	"del\x7f", "é", "\xff\xfe", "line\u2028sep", "😀", strings.Repeat("z", 600)}

func TestCanonicalDetails_IsWhatEncodingJSONGives(t *testing.T) {
	checkCanonical(t, nil)
	checkCanonical(t, map[string]string{})
	for _, k := range detailsSeedTexts {
		for _, v := range detailsSeedTexts {
			checkCanonical(t, map[string]string{k: v, "b" + k: v + k, "size": "96", "changed": v})
		}
	}
}

func FuzzCanonicalDetails(f *testing.F) {
	for i, s := range detailsSeedTexts {
		f.Add(s, detailsSeedTexts[(i+1)%len(detailsSeedTexts)], "v")
	}
	f.Fuzz(func(t *testing.T, k1, v1, v2 string) {
		checkCanonical(t, map[string]string{k1: v1, k1 + "x": v2, "changed": v1 + v2})
	})
}
