package token

import (
	"context"
	"errors"
	"time"
)

// Keys is where an Issuer gets its keys: keys.Ring satisfies it. The
// purpose is always keys.SignAccessToken.
type Keys interface {
	// SigningKey returns the current key and its kid.
	SigningKey(ctx context.Context, purpose string) (kid string, key []byte, err error)
	// VerificationKeys returns every key that still verifies, by kid.
	VerificationKeys(ctx context.Context, purpose string) (map[string][]byte, error)
}

// Claims are the claims of an access token.
type Claims struct {
	Issuer    string    // iss
	Subject   string    // sub: the user ID
	Session   string    // sid: the session ID
	ID        string    // jti
	Audience  []string  // aud
	IssuedAt  time.Time // iat
	NotBefore time.Time // nbf
	Expires   time.Time // exp
	AMR       []string  // amr: how the user authenticated, e.g. ["pwd", "otp"]
}

// The defaults and bounds of Options.
const (
	DefaultTTL         = 10 * time.Minute
	DefaultLeeway      = 30 * time.Second
	MaxLeeway          = 60 * time.Second
	DefaultKeyCacheTTL = time.Second
	// MaxTokenSize is the size in bytes above which Verify refuses a token
	// unread.
	MaxTokenSize = 8 << 10
)

// Options configure an Issuer.
type Options struct {
	// Issuer is the iss of the tokens issued, and the only one accepted.
	Issuer string
	// Audience is the aud of the tokens issued; a token is accepted when
	// its aud holds it.
	Audience string
	// TTL is the lifetime of a token, in whole seconds (zero: 10 minutes).
	TTL time.Duration
	// Leeway is the clock skew allowed between nodes when exp, nbf and iat
	// are checked (zero: 30 s; at most MaxLeeway, 60 s). A token is thus
	// accepted for up to Leeway after its exp.
	Leeway time.Duration
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// KeyCacheTTL is how long the verification keys are cached (zero:
	// 1 s): also how long a key removed from the keyring may go on
	// verifying, and how long a key made on another node may be refused.
	// The keyring is asked at most once per KeyCacheTTL.
	KeyCacheTTL time.Duration
}

// Issuer issues and verifies access tokens. It is safe for concurrent use.
type Issuer struct {
	keys  Keys
	opts  Options
	cache keyCache
}

// NewIssuer returns an Issuer of tokens signed with the access token keys
// of keys. It fails when keys, the issuer or the audience is missing, or a
// duration is negative or the leeway exceeds MaxLeeway.
func NewIssuer(keys Keys, opts Options) (*Issuer, error) {
	switch {
	case keys == nil:
		return nil, errors.New("token: NewIssuer needs keys")
	case opts.Issuer == "" || opts.Audience == "":
		return nil, errors.New("token: NewIssuer needs an issuer and an audience")
	case opts.TTL < 0 || opts.Leeway < 0 || opts.KeyCacheTTL < 0:
		return nil, errors.New("token: negative duration in options")
	case opts.Leeway > MaxLeeway:
		return nil, errors.New("token: leeway over 60 s")
	}
	if opts.TTL == 0 {
		opts.TTL = DefaultTTL
	}
	if opts.TTL < time.Second {
		return nil, errors.New("token: TTL under 1 s")
	}
	if opts.Leeway == 0 {
		opts.Leeway = DefaultLeeway
	}
	if opts.KeyCacheTTL == 0 {
		opts.KeyCacheTTL = DefaultKeyCacheTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Issuer{keys: keys, opts: opts, cache: keyCache{keys: keys, ttl: opts.KeyCacheTTL, now: opts.Now}}, nil
}
