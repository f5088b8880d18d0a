package token

import "strings"

// splitToken cuts a compact JWS into its three segments. There must be
// exactly two dots.
func splitToken(tok string) (header, payload, sig string, ok bool) {
	header, rest, ok := strings.Cut(tok, ".")
	if !ok {
		return "", "", "", false
	}
	payload, sig, ok = strings.Cut(rest, ".")
	if !ok || strings.IndexByte(sig, '.') >= 0 {
		return "", "", "", false
	}
	return header, payload, sig, true
}

const b64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// b64Values maps a byte to its value in b64Alphabet, or 0xFF.
var b64Values = func() (m [256]byte) {
	for i := range m {
		m[i] = 0xFF
	}
	for i := 0; i < len(b64Alphabet); i++ {
		m[b64Alphabet[i]] = byte(i)
	}
	return m
}()

// decodedLen is the number of bytes s decodes to, when it is well formed.
func decodedLen(s string) int { return len(s) * 6 / 8 }

// decodeSegment decodes s, unpadded base64url, into dst, which must hold
// decodedLen(s) bytes. It is stricter than encoding/base64: it takes no
// string (so no copy to a []byte), and it refuses anything but the
// alphabet (encoding/base64 skips \r and \n), padding, a length of 4n+1
// and non-zero trailing bits, so that one token has exactly one spelling.
func decodeSegment(dst []byte, s string) (n int, ok bool) {
	if len(s)%4 == 1 || len(dst) < decodedLen(s) {
		return 0, false
	}
	i := 0
	for ; i+4 <= len(s); i += 4 {
		a, b, c, d := b64Values[s[i]], b64Values[s[i+1]], b64Values[s[i+2]], b64Values[s[i+3]]
		if (a|b|c|d)&0xC0 != 0 { // 0xFF: not in the alphabet
			return 0, false
		}
		v := uint32(a)<<18 | uint32(b)<<12 | uint32(c)<<6 | uint32(d)
		dst[n], dst[n+1], dst[n+2] = byte(v>>16), byte(v>>8), byte(v)
		n += 3
	}
	switch len(s) - i {
	case 2:
		a, b := b64Values[s[i]], b64Values[s[i+1]]
		if (a|b)&0xC0 != 0 || b&0x0F != 0 {
			return 0, false
		}
		dst[n] = a<<2 | b>>4
		n++
	case 3:
		a, b, c := b64Values[s[i]], b64Values[s[i+1]], b64Values[s[i+2]]
		if (a|b|c)&0xC0 != 0 || c&0x03 != 0 {
			return 0, false
		}
		dst[n], dst[n+1] = a<<2|b>>4, b<<4|c>>2
		n += 2
	}
	return n, true
}
