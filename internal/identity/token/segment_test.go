package token

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

// decodeSegment accepts exactly what strict unpadded base64url accepts,
// except the new lines encoding/base64 skips, and decodes it the same.
func TestDecodeSegment_AgreesWithStrictBase64URL(t *testing.T) {
	std := base64.RawURLEncoding.Strict()
	chars := b64Alphabet + "=+/.\n\r \x00\xff"
	check := func(s string) {
		want, err := std.DecodeString(s)
		wantOK := err == nil && !strings.ContainsAny(s, "\r\n")
		got := make([]byte, decodedLen(s))
		n, ok := decodeSegment(got, s)
		if ok != wantOK || ok && !bytes.Equal(got[:n], want) {
			t.Fatalf("decodeSegment(%q) = %x, %v; encoding/base64: %x, %v", s, got[:n], ok, want, err)
		}
	}
	check("")
	for i := range len(chars) {
		check(chars[i : i+1])
		for j := range len(chars) {
			check(chars[i:i+1] + chars[j:j+1])
			for k := range len(chars) {
				check(chars[i:i+1] + chars[j:j+1] + chars[k:k+1])
				check("QUJD" + chars[i:i+1] + chars[j:j+1] + chars[k:k+1])
			}
		}
	}
}
