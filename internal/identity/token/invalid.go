package token

import "bulwark/internal/apperr"

// The reasons of an *Invalid: why Verify refused a token.
const (
	ReasonTooLarge       = "too_large"        // over MaxTokenSize
	ReasonMalformed      = "malformed"        // not three base64url segments, or a header or claims that are not strict JSON
	ReasonAlg            = "alg"              // alg is not exactly HS512
	ReasonKid            = "kid"              // no kid, or not a key of the keyring (unknown, expired, removed)
	ReasonSignature      = "signature"        // the MAC does not match
	ReasonClaims         = "claims"           // a required claim is missing, or a claim has the wrong type
	ReasonIssuer         = "issuer"           // iss is not ours
	ReasonAudience       = "audience"         // aud does not hold ours
	ReasonExpired        = "expired"          // exp passed, beyond the leeway
	ReasonNotYetValid    = "not_yet_valid"    // nbf is ahead, beyond the leeway
	ReasonIssuedInFuture = "issued_in_future" // iat is ahead, beyond the leeway
)

// invalidMessage is the one message of every refusal.
const invalidMessage = "invalid or expired access token"

// Invalid is the error of every token Verify refuses. It unwraps to an
// apperr unauthorized error whose message is the same for every refusal,
// so that apperr.CodeOf and apperr.MessageOf see only that; Reason, one of
// the Reason constants, is for the audit log and is never shown to the
// client. Neither holds anything taken from the token.
type Invalid struct {
	Reason string
}

func invalid(reason string) *Invalid { return &Invalid{Reason: reason} }

// Error returns the fixed message and the reason, for logs.
func (e *Invalid) Error() string { return "token: " + invalidMessage + " (" + e.Reason + ")" }

// Unwrap returns the unauthorized error that clients see.
func (e *Invalid) Unwrap() error {
	return &apperr.Error{Code: apperr.Unauthorized, Message: invalidMessage}
}
