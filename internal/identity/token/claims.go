package token

import "time"

// header is the JOSE header of a token.
type header struct {
	alg, typ, kid string
}

// parseHeader reads a decoded header. Only alg, typ and kid may appear,
// each at most once and as a string: anything else (crit, jku, jwk, x5u,
// ...) is refused rather than ignored.
func parseHeader(s string) (h header, ok bool) {
	r := jsonReader{s: s}
	var seen uint8
	for first := true; ; first = false {
		name, done, ok := r.member(first)
		if !ok {
			return header{}, false
		}
		if done {
			break
		}
		var bit uint8
		var dst *string
		switch name {
		case "alg":
			bit, dst = 1, &h.alg
		case "typ":
			bit, dst = 2, &h.typ
		case "kid":
			bit, dst = 4, &h.kid
		default:
			return header{}, false
		}
		if seen&bit != 0 {
			return header{}, false
		}
		seen |= bit
		if *dst, ok = r.str(); !ok {
			return header{}, false
		}
	}
	if !r.end() {
		return header{}, false
	}
	return h, true
}

// maxClaims bounds the members of the claims: ours are 9, and the check
// for repeated names of claims we do not know is quadratic.
const maxClaims = 64

// maxNumericDate is 9999-12-31T23:59:59Z: a later date is no date of ours.
const maxNumericDate = 253402300799

// parseClaims reads decoded claims. reason is ReasonMalformed when s is
// not strict JSON or repeats a name, ReasonClaims when a claim of ours has
// the wrong type: strings for iss, sub, sid and jti, a string or an array
// of strings for aud, an array of strings for amr, integer seconds for
// exp, nbf and iat. Other claims are read and ignored; more than maxClaims
// claims are malformed. Whether the required claims are there is for the
// caller to check.
func parseClaims(s string) (c Claims, reason string) {
	r := jsonReader{s: s}
	var seen uint16
	var others []string // the names of the claims ignored, to refuse repeats
	for n := 0; ; n++ {
		name, done, ok := r.member(n == 0)
		if !ok {
			return Claims{}, ReasonMalformed
		}
		if done {
			break
		}
		if n == maxClaims {
			return Claims{}, ReasonMalformed
		}
		var bit uint16
		switch name {
		case "iss":
			bit, reason = 1<<0, r.stringClaim(&c.Issuer)
		case "sub":
			bit, reason = 1<<1, r.stringClaim(&c.Subject)
		case "sid":
			bit, reason = 1<<2, r.stringClaim(&c.Session)
		case "jti":
			bit, reason = 1<<3, r.stringClaim(&c.ID)
		case "aud":
			bit, reason = 1<<4, r.audience(&c.Audience)
		case "iat":
			bit, reason = 1<<5, r.dateClaim(&c.IssuedAt)
		case "nbf":
			bit, reason = 1<<6, r.dateClaim(&c.NotBefore)
		case "exp":
			bit, reason = 1<<7, r.dateClaim(&c.Expires)
		case "amr":
			bit, reason = 1<<8, r.stringArray(&c.AMR)
		default:
			for _, o := range others {
				if o == name {
					return Claims{}, ReasonMalformed
				}
			}
			others = append(others, name)
			if !r.skip(0) {
				return Claims{}, ReasonMalformed
			}
		}
		if seen&bit != 0 {
			return Claims{}, ReasonMalformed
		}
		seen |= bit
		if reason != "" {
			return Claims{}, reason
		}
	}
	if !r.end() {
		return Claims{}, ReasonMalformed
	}
	return c, ""
}

// wrongType is the reason for a value not of the type wanted: claims
// when it is some other JSON value, malformed when it is not JSON.
func (r *jsonReader) wrongType() (reason string) {
	if r.skip(0) {
		return ReasonClaims
	}
	return ReasonMalformed
}

func (r *jsonReader) stringClaim(dst *string) (reason string) {
	if r.peek() != '"' {
		return r.wrongType()
	}
	v, ok := r.str()
	if !ok {
		return ReasonMalformed
	}
	*dst = v
	return ""
}

func (r *jsonReader) stringArray(dst *[]string) (reason string) {
	if r.peek() != '[' {
		return r.wrongType()
	}
	r.i++
	out := make([]string, 0, 2)
	if r.eat(']') {
		*dst = out
		return ""
	}
	for {
		if r.peek() != '"' {
			return r.wrongType()
		}
		v, ok := r.str()
		if !ok {
			return ReasonMalformed
		}
		out = append(out, v)
		if r.eat(']') {
			*dst = out
			return ""
		}
		if !r.eat(',') {
			return ReasonMalformed
		}
	}
}

// audience reads aud: one string or an array of them.
func (r *jsonReader) audience(dst *[]string) (reason string) {
	if r.peek() == '"' {
		v, ok := r.str()
		if !ok {
			return ReasonMalformed
		}
		*dst = []string{v}
		return ""
	}
	return r.stringArray(dst)
}

// dateClaim reads a NumericDate: we issue whole seconds, so a fraction, an
// exponent, a negative number or one past maxNumericDate is refused.
func (r *jsonReader) dateClaim(dst *time.Time) (reason string) {
	if c := r.peek(); c != '-' && (c < '0' || c > '9') {
		return r.wrongType()
	}
	text, ok := r.number()
	if !ok {
		return ReasonMalformed
	}
	var v int64
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c < '0' || c > '9' || i >= 12 {
			return ReasonClaims
		}
		v = v*10 + int64(c-'0')
	}
	if v > maxNumericDate {
		return ReasonClaims
	}
	*dst = time.Unix(v, 0).UTC()
	return ""
}
