package token

import (
	"unicode/utf16"
	"unicode/utf8"
)

// jsonReader reads the two JSON objects of a token, header and claims,
// strictly: RFC 8259 syntax, valid UTF-8 (no lone surrogate escapes
// either), member names matched exactly (encoding/json matches them
// case-insensitively), nesting at most maxJSONDepth deep. It is small
// because the objects are flat and their members known; the callers check
// that names are not repeated, which encoding/json does not.
type jsonReader struct {
	s string
	i int
}

const maxJSONDepth = 16

func (r *jsonReader) ws() {
	for r.i < len(r.s) {
		switch r.s[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// peek returns the next byte after white space, 0 at the end.
func (r *jsonReader) peek() byte {
	r.ws()
	if r.i < len(r.s) {
		return r.s[r.i]
	}
	return 0
}

// eat consumes c, after white space, if it comes next.
func (r *jsonReader) eat(c byte) bool {
	if r.peek() == c {
		r.i++
		return true
	}
	return false
}

// end reports whether only white space is left.
func (r *jsonReader) end() bool {
	r.ws()
	return r.i == len(r.s)
}

// member reads the opening brace (first) or the comma before a member,
// then the member's name and colon; done when the object closes instead.
// ok is false on a syntax error.
func (r *jsonReader) member(first bool) (name string, done, ok bool) {
	if first {
		if !r.eat('{') {
			return "", false, false
		}
		if r.eat('}') {
			return "", true, true
		}
	} else {
		if r.eat('}') {
			return "", true, true
		}
		if !r.eat(',') {
			return "", false, false
		}
	}
	r.ws()
	name, ok = r.str()
	if !ok || !r.eat(':') {
		return "", false, false
	}
	r.ws()
	return name, false, true
}

// str reads a string at the current position and returns its value.
func (r *jsonReader) str() (string, bool) {
	if r.i >= len(r.s) || r.s[r.i] != '"' {
		return "", false
	}
	start := r.i + 1
	for j := start; j < len(r.s); j++ {
		c := r.s[j]
		if c == '"' {
			r.i = j + 1
			return r.s[start:j], true
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			return r.strSlow(start)
		}
	}
	return "", false
}

// strSlow is str for strings with escapes or non-ASCII bytes. Without
// escapes, the value is still a substring of the input.
func (r *jsonReader) strSlow(start int) (string, bool) {
	s := r.s
	var b []byte // the value, once an escape was seen
	escaped := false
	for j := start; j < len(s); {
		c := s[j]
		switch {
		case c == '"':
			r.i = j + 1
			if !escaped {
				return s[start:j], true
			}
			return string(b), true
		case c < 0x20:
			return "", false
		case c == '\\':
			if !escaped {
				b = append(make([]byte, 0, len(s)-start), s[start:j]...)
				escaped = true
			}
			if j+1 >= len(s) {
				return "", false
			}
			switch s[j+1] {
			case '"', '\\', '/':
				b = append(b, s[j+1])
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r1, ok := hex4(s, j+2)
				if !ok {
					return "", false
				}
				j += 6
				if utf16.IsSurrogate(r1) {
					// Only a high surrogate followed by an escaped low one.
					if j+1 >= len(s) || s[j] != '\\' || s[j+1] != 'u' {
						return "", false
					}
					r2, ok := hex4(s, j+2)
					if !ok {
						return "", false
					}
					r1 = utf16.DecodeRune(r1, r2)
					if r1 == utf8.RuneError {
						return "", false
					}
					j += 6
				}
				b = utf8.AppendRune(b, r1)
				continue
			default:
				return "", false
			}
			j += 2
		case c >= utf8.RuneSelf:
			ru, size := utf8.DecodeRuneInString(s[j:])
			if ru == utf8.RuneError && size == 1 {
				return "", false // invalid UTF-8, an encoded surrogate included
			}
			if escaped {
				b = append(b, s[j:j+size]...)
			}
			j += size
		default:
			if escaped {
				b = append(b, c)
			}
			j++
		}
	}
	return "", false
}

// hex4 reads the four hex digits of a \u escape at s[i:].
func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var v rune
	for _, c := range []byte(s[i : i+4]) {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		v = v<<4 | rune(c)
	}
	return v, true
}

// number reads a number at the current position and returns its text.
func (r *jsonReader) number() (string, bool) {
	s, j := r.s, r.i
	digits := func() int {
		k := j
		for j < len(s) && '0' <= s[j] && s[j] <= '9' {
			j++
		}
		return j - k
	}
	if j < len(s) && s[j] == '-' {
		j++
	}
	switch {
	case j < len(s) && s[j] == '0':
		j++
	case j < len(s) && '1' <= s[j] && s[j] <= '9':
		digits()
	default:
		return "", false
	}
	if j < len(s) && s[j] == '.' {
		j++
		if digits() == 0 {
			return "", false
		}
	}
	if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
		j++
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if digits() == 0 {
			return "", false
		}
	}
	text := s[r.i:j]
	r.i = j
	return text, true
}

// skip reads any value, for members this package does not know.
func (r *jsonReader) skip(depth int) bool {
	if depth > maxJSONDepth {
		return false
	}
	switch r.peek() {
	case '"':
		_, ok := r.str()
		return ok
	case '{':
		for first := true; ; first = false {
			_, done, ok := r.member(first)
			if !ok || done {
				return ok
			}
			if !r.skip(depth + 1) {
				return false
			}
		}
	case '[':
		r.i++
		if r.eat(']') {
			return true
		}
		for {
			if !r.skip(depth + 1) {
				return false
			}
			if !r.eat(',') {
				return r.eat(']')
			}
		}
	case 't':
		return r.literal("true")
	case 'f':
		return r.literal("false")
	case 'n':
		return r.literal("null")
	}
	_, ok := r.number()
	return ok
}

func (r *jsonReader) literal(lit string) bool {
	if len(r.s)-r.i < len(lit) || r.s[r.i:r.i+len(lit)] != lit {
		return false
	}
	r.i += len(lit)
	return true
}
