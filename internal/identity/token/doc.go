// Package token issues and verifies Bulwark's access tokens: JWTs signed
// with HS512 under the access token keys of the keyring
// (keys.SignAccessToken).
//
// # Tokens
//
// A token is a compact JWS: base64url (no padding) of the header
// {"alg":"HS512","typ":"JWT","kid":KID}, of the claims and of the
// HMAC-SHA512 of the first two parts, joined by dots. The claims are iss,
// sub (user ID), aud (one audience, as a string), exp, nbf, iat (integer
// seconds), jti (128 random bits, base64url), sid (session ID) and amr.
// Issuer.Issue makes them; Issuer.Verify checks them.
//
// # Invariants of Verify
//
//   - A token over 8 KiB is refused before it is read (MaxTokenSize).
//   - The header is read by a strict parser: exactly three segments of
//     unpadded base64url, a JSON object with no member other than alg,
//     typ and kid, no duplicate member names, valid UTF-8.
//   - alg must be exactly "HS512": "none", HS256, RS256, ... are refused
//     before any key is looked up, so no other algorithm ever reaches a key.
//   - kid must name a current or retired-but-unexpired access token key of
//     the keyring; the MAC is compared in constant time (hmac.Equal).
//   - Only then are the claims decoded (the same strict parser: duplicate
//     member names, lone surrogates and invalid UTF-8 are refused; claims
//     this package does not know are ignored), and iss, aud, sub, sid, jti,
//     exp, nbf and iat checked, times with Options.Leeway (default 30 s, at
//     most 60 s).
//   - Every refusal is the same apperr unauthorized error with one fixed
//     message; the precise reason, for the audit log, is the Reason of the
//     *Invalid in the chain. Neither ever holds any part of the token.
//
// # Key cache and its window
//
// The keyring reads the control database at each VerificationKeys call, so
// an Issuer caches the kid → key map for Options.KeyCacheTTL (default 1 s)
// and calls VerificationKeys at most once per KeyCacheTTL, whether the
// tokens it sees carry known or unknown kids: a flood of made-up kids
// cannot reach the database. The cost is a window of KeyCacheTTL: a key
// that expired or was deleted from the keyring goes on verifying on a node
// for up to KeyCacheTTL, and a key created on another node is refused here
// for up to KeyCacheTTL. A failed refresh is also remembered for
// KeyCacheTTL (every Verify fails with that error, never unauthorized, and
// never with the keys of before: it fails closed), unless it failed because
// the caller's own context ended.
//
// # What this package does not do
//
// Verify says that the keyring signed the token and that it has not
// expired. It does not know about sessions: the caller must still check
// that the session sid has not been revoked (the API refuses a token of a
// revoked session within one second on every node).
package token
