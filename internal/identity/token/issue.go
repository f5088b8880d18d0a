package token

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"bulwark/internal/keys"
)

// jwtHeader and jwtClaims are what Issue writes; the field order is the
// order on the wire.
type jwtHeader struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
	Kid string `json:"kid"`
}

type jwtClaims struct {
	Iss string   `json:"iss"`
	Sub string   `json:"sub"`
	Aud string   `json:"aud"`
	Exp int64    `json:"exp"`
	Nbf int64    `json:"nbf"`
	Iat int64    `json:"iat"`
	Jti string   `json:"jti"`
	Sid string   `json:"sid"`
	AMR []string `json:"amr,omitempty"`
}

// Issue returns a new access token for user sub in session sid, signed
// with the current access token key, and its claims: iat = nbf = now (in
// whole seconds), exp = now + Options.TTL, a random 128-bit jti. For the
// services that authenticated the user; amr says how (e.g. "pwd", "otp").
// Returns the error of Keys (unavailable when the KEK provider is down), or
// internal when sub or sid is empty, sub, sid or amr is not valid UTF-8,
// or the signing key is shorter than 64 bytes.
func (is *Issuer) Issue(ctx context.Context, sub, sid string, amr []string) (string, Claims, error) {
	if sub == "" || sid == "" {
		return "", Claims{}, errors.New("token: Issue needs a subject and a session")
	}
	// encoding/json would replace invalid UTF-8: the claims returned would
	// not be the claims signed.
	if !utf8.ValidString(sub) || !utf8.ValidString(sid) || slices.ContainsFunc(amr, func(m string) bool { return !utf8.ValidString(m) }) {
		return "", Claims{}, errors.New("token: Issue needs valid UTF-8")
	}
	kid, key, err := is.keys.SigningKey(ctx, keys.SignAccessToken)
	if err != nil {
		return "", Claims{}, fmt.Errorf("token: signing key: %w", err)
	}
	defer clear(key)
	if kid == "" || len(key) < minKeySize {
		return "", Claims{}, errors.New("token: the signing key is not an HS512 key")
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", Claims{}, fmt.Errorf("token: jti: %w", err)
	}
	now := time.Unix(is.opts.Now().Unix(), 0).UTC()
	c := Claims{
		Issuer:    is.opts.Issuer,
		Subject:   sub,
		Session:   sid,
		ID:        base64.RawURLEncoding.EncodeToString(id[:]),
		Audience:  []string{is.opts.Audience},
		IssuedAt:  now,
		NotBefore: now,
		Expires:   now.Add(is.opts.TTL.Truncate(time.Second)),
	}
	if len(amr) > 0 {
		c.AMR = slices.Clone(amr)
	}
	h, err := json.Marshal(jwtHeader{Alg: "HS512", Typ: "JWT", Kid: kid})
	if err != nil {
		return "", Claims{}, fmt.Errorf("token: header: %w", err)
	}
	p, err := json.Marshal(jwtClaims{Iss: c.Issuer, Sub: sub, Aud: is.opts.Audience,
		Exp: c.Expires.Unix(), Nbf: now.Unix(), Iat: now.Unix(), Jti: c.ID, Sid: sid, AMR: c.AMR})
	if err != nil {
		return "", Claims{}, fmt.Errorf("token: claims: %w", err)
	}
	enc := base64.RawURLEncoding
	b := make([]byte, 0, enc.EncodedLen(len(h))+enc.EncodedLen(len(p))+sigSegment+2)
	b = enc.AppendEncode(b, h)
	b = append(b, '.')
	b = enc.AppendEncode(b, p)
	mac := hmac.New(sha512.New, key)
	mac.Write(b)
	b = append(b, '.')
	b = enc.AppendEncode(b, mac.Sum(nil))
	return string(b), c, nil
}
