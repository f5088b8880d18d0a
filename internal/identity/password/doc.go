// Package password hashes and verifies passwords, and checks new passwords
// against an org's password policy.
//
// # Hashes
//
// Hash makes argon2id hashes in the PHC string format
// ($argon2id$v=19$m=19456,t=2,p=1$salt$hash, salt and hash in unpadded
// standard base64), with DefaultParams the OWASP minimum (19 MiB, 2 passes,
// 1 lane), a 16-byte salt from crypto/rand and a 32-byte key. Verify also
// accepts the formats that imports bring, so that they can be upgraded at
// login: bcrypt ($2a$, $2b$, $2y$) and salted SHA-512
// (sha512$salt$hex of SHA-512(salt || password)). It reports needsRehash
// for every hash that Hash would not make today with the caller's Params;
// the caller then stores Hash(pw) while it still has the password.
//
// A stored hash names its own cost, so Verify refuses costs that would let
// one damaged or planted row stall the server (argon2id memory above 1 GiB,
// more than 20 passes or 16 lanes; bcrypt cost above 15).
//
// Hashing is slow on purpose, so a burst of logins can take every core.
// Pool bounds it: at most N hashes at once, at most M waiting, and a call
// beyond that fails with ErrBusy (unavailable), after a short pause spent
// asleep, instead of queueing without end. Its hashes run on worker
// goroutines, with a Go processor added to GOMAXPROCS for each worker while
// the pool is open, so that requests are not left waiting behind hashes for
// a processor. DummyVerify spends the time of one Verify for a login to an
// account that does not exist, so the answer's timing does not tell whether
// the account exists.
//
// # Policy
//
// Policy.Check lists every rule a new password breaks, as field errors on
// "password". DefaultPolicy follows OWASP ASVS 4.0.3 section 2.1: at least
// 12 and at most 128 characters (code points), common passwords refused,
// no composition rules, no expiry; Deviations names the settings of a
// policy that depart from it. The common passwords are a list embedded in
// the binary (common_passwords.txt; see scripts/common-passwords.sh).
//
// # Never
//
// This package never logs, returns or puts into an error a password or a
// stored hash, never truncates a password for argon2id, never lets bcrypt
// silently ignore the bytes of a password past its 72nd, and never uses a
// random source other than crypto/rand. Comparisons of hash outputs are
// constant-time.
package password
