// Package totp is Bulwark's second factor: RFC 6238 time-based one-time
// passwords, and single-use recovery codes for a user who lost the
// authenticator.
//
// # One-time passwords
//
// Codes are RFC 6238 with the parameters every authenticator app supports:
// HMAC-SHA-1, 6 digits, 30-second steps from the Unix epoch. NewSecret makes
// a 20-byte (160-bit, RFC 4226's recommendation) secret; URI gives the
// otpauth:// link a QR code carries; Code computes the code of a time.
//
// Check accepts the code of the current step or of the one before (a code
// typed just as the step turns over), never the one after: a code is never
// good before its time, and an app whose clock runs fast is fixed, not
// humoured. It returns the step it accepted; the caller stores that step
// and passes it back as lastStep, and Check refuses every step not after
// it, so each code works once and an older code never works after a newer
// one. The caller must store the step with a
// compare-and-set (UPDATE ... WHERE last_step < $step), or two concurrent
// requests carrying one code both pass. The caller also rate-limits: a
// guess is right with probability 2 in 10^6.
//
// # Recovery codes
//
// NewRecoveryCodes makes codes of 10 characters from Crockford's base32
// alphabet (no I, L, O or U; input folds o to 0 and i, l to 1), 50 random
// bits each, shown as xxxxx-xxxxx. Only their hashes are stored.
//
// A hash is HMAC-SHA-256 under a server pepper of a random 16-byte salt and
// the normalized code. The threat is a copy of the database (a backup, an
// injection): 50 bits are too few for a plain hash, since SHA-256 runs at
// about 10^10 a second on one GPU and an unsalted hash lets one guess test
// every stored code at once, so a database of ten thousand codes would give
// up its first one in about ten seconds. With the pepper held outside the database
// (the keyring or the config, never a column next to the hashes) the copy
// alone reveals nothing; should the pepper leak too, the salt still makes the
// attacker pay about 2^49 HMACs per code, one code at a time, and a code only
// replaces the second factor, not the password. A slow hash (Argon2) would
// cost every login attempt ten derivations and offer a denial of service;
// with a pepper it is not needed.
//
// # Must never
//
// The package never logs, returns in an error, or compares in variable time
// a secret, a code or a pepper. It does no storage: replay protection and
// deleting a used recovery code are the caller's, with the step and the
// index this package returns.
package totp
