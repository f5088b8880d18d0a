package token

import (
	"context"
	"crypto/sha512"
	"slices"
)

const (
	// maxHeaderSegment bounds the encoded header: ours is under 100 bytes.
	maxHeaderSegment = 512
	// maxKidSize bounds a kid: the keyring's are 22 bytes.
	maxKidSize = 128
	// sigSegment is the length of an encoded HS512 MAC.
	sigSegment = (sha512.Size*8 + 5) / 6
)

// Verify checks token and returns its claims. The order of the checks is
// part of the contract: size; three base64url segments; a strict header;
// alg exactly HS512, before any key is looked up; a kid of the keyring;
// the MAC, compared in constant time; only then the claims: strict JSON,
// iss, aud, sub, sid and jti, exp, nbf, then iat, times with the leeway.
// It does not check whether the session sid was revoked: that is the
// caller's.
//
// Any caller may call it with untrusted input. Returns an *Invalid (code
// unauthorized, one fixed message, the reason for the audit log) for
// every token it refuses, or the error of Keys (not unauthorized) when the
// verification keys cannot be read.
func (is *Issuer) Verify(ctx context.Context, token string) (Claims, error) {
	if len(token) > MaxTokenSize {
		return Claims{}, invalid(ReasonTooLarge)
	}
	hseg, pseg, sseg, ok := splitToken(token)
	if !ok || len(hseg) > maxHeaderSegment {
		return Claims{}, invalid(ReasonMalformed)
	}
	var hbuf [maxHeaderSegment * 6 / 8]byte
	n, ok := decodeSegment(hbuf[:], hseg)
	if !ok {
		return Claims{}, invalid(ReasonMalformed)
	}
	h, ok := parseHeader(string(hbuf[:n]))
	if !ok {
		return Claims{}, invalid(ReasonMalformed)
	}
	if h.alg != "HS512" {
		return Claims{}, invalid(ReasonAlg)
	}
	if h.typ != "JWT" {
		return Claims{}, invalid(ReasonMalformed)
	}
	if h.kid == "" || len(h.kid) > maxKidSize {
		return Claims{}, invalid(ReasonKid)
	}
	var mac [sha512.Size]byte
	if len(sseg) != sigSegment {
		return Claims{}, invalid(ReasonSignature)
	}
	if _, ok := decodeSegment(mac[:], sseg); !ok {
		return Claims{}, invalid(ReasonMalformed)
	}
	key, err := is.cache.get(ctx, h.kid)
	if err != nil {
		return Claims{}, err
	}
	if key == nil {
		return Claims{}, invalid(ReasonKid)
	}
	if !key.verify(token[:len(hseg)+1+len(pseg)], mac[:]) {
		return Claims{}, invalid(ReasonSignature)
	}

	// Authentic from here on: the claims were written by us.
	var pbuf [1024]byte
	p := pbuf[:]
	if decodedLen(pseg) > len(p) {
		p = make([]byte, decodedLen(pseg))
	}
	n, ok = decodeSegment(p, pseg)
	if !ok {
		return Claims{}, invalid(ReasonMalformed)
	}
	c, reason := parseClaims(string(p[:n]))
	if reason != "" {
		return Claims{}, invalid(reason)
	}
	if reason := is.check(&c); reason != "" {
		return Claims{}, invalid(reason)
	}
	return c, nil
}

// check checks the claims' values.
func (is *Issuer) check(c *Claims) (reason string) {
	switch {
	case c.Issuer != is.opts.Issuer:
		return ReasonIssuer
	case !slices.Contains(c.Audience, is.opts.Audience):
		return ReasonAudience
	case c.Subject == "" || c.Session == "" || c.ID == "" ||
		c.Expires.IsZero() || c.NotBefore.IsZero() || c.IssuedAt.IsZero():
		return ReasonClaims
	}
	now, leeway := is.opts.Now(), is.opts.Leeway
	switch {
	case !now.Before(c.Expires.Add(leeway)):
		return ReasonExpired
	case now.Before(c.NotBefore.Add(-leeway)):
		return ReasonNotYetValid
	case c.IssuedAt.After(now.Add(leeway)):
		return ReasonIssuedInFuture
	}
	return ""
}
