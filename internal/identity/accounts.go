package identity

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"bulwark/internal/apperr"
	"bulwark/internal/audit"
	"bulwark/internal/identity/password"
	"bulwark/internal/keys"
	mailer "bulwark/internal/mail"
	"bulwark/internal/store"
)

// The lifetimes of e-mailed tokens.
const (
	verifyTTL = 24 * time.Hour
	resetTTL  = 30 * time.Minute
	mfaTTL    = 5 * time.Minute
)

// errBadCredentials is the one answer to a failed login, whether the
// address is unknown or the password wrong.
var errBadCredentials = apperr.Errorf(apperr.Unauthorized, "the e-mail address or the password is wrong")

// throttled is the apperr form of a Throttled wait, which the HTTP layer
// answers with 429 and Retry-After.
func throttled(d time.Duration) error {
	if d < time.Second {
		d = time.Second
	}
	return &apperr.Error{Code: apperr.RateLimited, Message: "too many failed attempts; try again later",
		RetryAfter: d.Round(time.Second)}
}

func checkName(name string) (string, error) {
	n := strings.TrimSpace(name)
	if n == "" || utf8.RuneCountInString(n) > 200 || !utf8.ValidString(n) || strings.ContainsAny(n, "\x00\r\n") {
		return "", apperr.WithFields("invalid name", apperr.FieldError{Field: "name", Code: "invalid", Message: "1 to 200 characters, one line"})
	}
	return n, nil
}

// Signup creates an account and e-mails a verification link. An address
// that has an account already gets the same answer (a user object that
// looks alike, after the same work), and its owner an e-mail saying so:
// the answer does not tell whether the address is registered.
func (s *Service) Signup(ctx context.Context, src audit.Source, email, pw, name string) (User, error) {
	var fields []apperr.FieldError
	e, err := NormalizeEmail(email)
	if err != nil {
		fields = append(fields, apperr.FieldsOf(err)...)
	}
	n, err := checkName(name)
	if err != nil {
		fields = append(fields, apperr.FieldsOf(err)...)
	}
	fields = append(fields, s.opts.Policy.Check(pw, password.Context{Email: e})...)
	if len(fields) > 0 {
		return User{}, apperr.WithFields("invalid signup", fields...)
	}
	hash, err := s.opts.Passwords.Hash(ctx, pw)
	if err != nil {
		return User{}, err
	}
	idx, err := s.emailIndex(ctx, e)
	if err != nil {
		return User{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return User{}, err
	}
	u := User{ID: id.String(), Kind: "user", Email: e, Name: n}
	var link string
	exists := false
	err = s.st.Control().InTx(ctx, func(tx *store.Tx) error {
		var other string
		err := tx.QueryRowContext(ctx, "SELECT id FROM users WHERE email_index = $1", idx).Scan(&other)
		if err == nil {
			exists = true
			return s.controlEvent(ctx, tx, src, "auth.signup.existing", other, audit.Failure, nil)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		u.CreatedAt = tx.Now
		emailSealed, err := s.ring.Seal(ctx, keys.PlatformID, userAD(u.ID, "email"), []byte(e))
		if err != nil {
			return err
		}
		nameSealed, err := s.ring.Seal(ctx, keys.PlatformID, userAD(u.ID, "name"), []byte(n))
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO users (id, kind, email_index, email_sealed, name_sealed, password_hash,
	password_set_at, created_at, updated_at) VALUES ($1, 'user', $2, $3, $4, $5, $6, $6, $6)`,
			u.ID, idx, emailSealed, nameSealed, hash, tx.Now); err != nil {
			if store.IsUniqueViolation(err) {
				exists = true // a concurrent signup of the same address
				return s.controlEvent(ctx, tx, src, "auth.signup.existing", "", audit.Failure, nil)
			}
			return err
		}
		if err := s.addHistory(ctx, tx, u.ID, hash); err != nil {
			return err
		}
		if link, err = s.emailToken(ctx, tx, u.ID, "verify", verifyTTL, "/verify-email"); err != nil {
			return err
		}
		return s.controlEvent(ctx, tx, src, "auth.signup.succeeded", u.ID, audit.Success, nil)
	})
	if err != nil {
		return User{}, err
	}
	if exists {
		s.send(ctx, mailer.Message{To: e, Subject: "Someone tried to sign up with your address",
			Text: "Someone (perhaps you) tried to create an account with this e-mail address, which has one already.\n" +
				"If it was you, log in or reset your password. If not, you can ignore this message."})
		return u, nil // the made-up user is never stored
	}
	s.send(ctx, mailer.Message{To: e, Subject: "Confirm your e-mail address",
		Text: "Open this link within 24 hours to confirm your address:\n\n" + link + "\n"})
	return u, nil
}

// send mails m; a failure is logged (without the address) and not the
// caller's: the answer must not depend on it.
func (s *Service) send(ctx context.Context, m mailer.Message) {
	if s.opts.Mail == nil {
		return
	}
	if err := s.opts.Mail.Send(ctx, m); err != nil {
		s.opts.Logger.Error("mail not sent", "subject", m.Subject, "error", err.Error())
	}
}

// emailToken stores a single-use token for purpose and returns the link
// that carries it.
func (s *Service) emailToken(ctx context.Context, tx *store.Tx, userID, purpose string, ttl time.Duration, path string) (string, error) {
	text, hash, err := newSecret(32)
	if err != nil {
		return "", err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO email_tokens (hash, user_id, purpose, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5)`, hash, userID, purpose, tx.Now, tx.Now.Add(ttl)); err != nil {
		return "", fmt.Errorf("identity: store %s token: %w", purpose, err)
	}
	return strings.TrimRight(s.opts.BaseURL, "/") + path + "?token=" + url.QueryEscape(text), nil
}

// spendEmailToken marks a token of purpose used in tx and returns its
// user; a token that is unknown, used, expired or of another purpose is
// invalid, all alike.
func spendEmailToken(ctx context.Context, tx *store.Tx, text, purpose string) (string, error) {
	bad := apperr.WithFields("the link is invalid or has expired", apperr.FieldError{Field: "token", Code: "invalid"})
	if text == "" || len(text) > 100 {
		return "", bad
	}
	var userID, p string
	var used sql.NullTime
	var expires time.Time
	err := tx.QueryRowContext(ctx, "SELECT user_id, purpose, used_at, expires_at FROM email_tokens WHERE hash = $1", hashSecret(text)).
		Scan(&userID, &p, &used, &expires)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && (p != purpose || used.Valid || !tx.Now.Before(expires))) {
		return "", bad
	}
	if err != nil {
		return "", err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE email_tokens SET used_at = $1 WHERE hash = $2", tx.Now, hashSecret(text)); err != nil {
		return "", err
	}
	return userID, nil
}

// VerifyEmail confirms the address of the token's account.
func (s *Service) VerifyEmail(ctx context.Context, src audit.Source, tokenText string) error {
	return s.st.Control().InTx(ctx, func(tx *store.Tx) error {
		userID, err := spendEmailToken(ctx, tx, tokenText, "verify")
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE users SET email_verified_at = $1, updated_at = $1 WHERE id = $2 AND email_verified_at IS NULL", tx.Now, userID); err != nil {
			return err
		}
		return s.controlEvent(ctx, tx, src, "auth.email.verified", userID, audit.Success, nil)
	})
}

// historyDepth is how many earlier password hashes are kept.
const historyDepth = 24

func (s *Service) addHistory(ctx context.Context, tx *store.Tx, userID, hash string) error {
	if _, err := tx.ExecContext(ctx, "INSERT INTO password_history (user_id, hash, created_at) VALUES ($1, $2, $3)", userID, hash, tx.Now); err != nil {
		return fmt.Errorf("identity: password history: %w", err)
	}
	return nil
}

func (s *Service) history(ctx context.Context, userID string, n int) ([]string, error) {
	if n <= 0 {
		return nil, nil
	}
	rows, err := s.st.Control().SQL().QueryContext(ctx,
		"SELECT hash FROM password_history WHERE user_id = $1 ORDER BY created_at DESC LIMIT "+strconv.Itoa(n), userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// LoginResult is a login's outcome: tokens, or a second factor to give.
type LoginResult struct {
	Tokens      *Tokens
	MFARequired bool
	MFAToken    string
	// PasswordExpired: the password is older than a policy of the user's
	// orgs allows; PasswordToken changes it (ChangeExpiredPassword), and
	// no session is started.
	PasswordExpired bool
	PasswordToken   string
	UserID          string
	SessionID       string
	amr             []string
	kind            string
}

// Login checks an address and password. Failures are counted per
// account (or per unknown address) and per client address, with an
// exponential delay and then a lock (Lockout); a lock is stored and
// mailed to the owner. An unknown address costs the same password hash as
// a known one and gets the same answers.
func (s *Service) Login(ctx context.Context, src audit.Source, email, pw string) (LoginResult, error) {
	return s.login(ctx, src, email, pw, "user")
}

// LoginOperator is Login for operators, on the ops listener: an account
// that is not an operator's is answered as an unknown address (and an
// operator cannot log in with Login). Operators always give a second
// factor.
func (s *Service) LoginOperator(ctx context.Context, src audit.Source, email, pw string) (LoginResult, error) {
	return s.login(ctx, src, email, pw, "operator")
}

func (s *Service) login(ctx context.Context, src audit.Source, email, pw, kind string) (LoginResult, error) {
	ipKey := src.IP
	if d := s.ipThrottle.wait(ipKey); d > 0 {
		return LoginResult{}, throttled(d)
	}
	e, err := NormalizeEmail(email)
	if err != nil || pw == "" || len(pw) > 4*password.DefaultPolicy.MaxLength {
		return LoginResult{}, errBadCredentials
	}
	// Every login ends in a hash. When the pool has no room, refuse before
	// reading the account: the fast 503 of a flood then costs no database
	// read or blind index, and answers alike whether the address exists.
	if err := s.opts.Passwords.Refusal(ctx); err != nil {
		return LoginResult{}, err
	}
	u, err := s.userByEmail(ctx, s.st.Control().SQL(), e)
	known := err == nil
	if err != nil && !errors.Is(err, errNoUser) {
		return LoginResult{}, err
	}
	idx, _ := s.emailIndex(ctx, e)
	acctKey := "acct:" + hex.EncodeToString(idx)
	if d := s.throttle.wait(acctKey); d > 0 {
		return LoginResult{}, throttled(d)
	}
	now := s.now()
	if known && u.kind == kind && u.lockedUntil.Valid && now.Before(u.lockedUntil.Time) {
		_ = s.opts.Passwords.DummyVerify(ctx, pw)
		return LoginResult{}, throttled(u.lockedUntil.Time.Sub(now))
	}
	if !known || u.hash == "" || u.kind != kind {
		// A refusal of the pool is answered as for an address that exists,
		// and is no failure of the client's.
		if err := s.opts.Passwords.DummyVerify(ctx, pw); err != nil {
			return LoginResult{}, err
		}
		s.failed(ctx, src, acctKey, ipKey, nil)
		return LoginResult{}, errBadCredentials
	}
	ok, rehash, err := s.opts.Passwords.Verify(ctx, u.hash, pw)
	if err != nil && !ok {
		if apperr.CodeOf(err) == apperr.Unavailable || apperr.CodeOf(err) == apperr.RateLimited {
			return LoginResult{}, err
		}
		s.opts.Logger.Error("stored password hash unreadable", "user_id", u.id, "error", err.Error())
	}
	if !ok {
		s.failed(ctx, src, acctKey, ipKey, &u)
		return LoginResult{}, errBadCredentials
	}
	s.throttle.reset(acctKey)
	s.ipThrottle.reset(ipKey)
	var res LoginResult
	res.UserID = u.id
	rules, err := s.rules(ctx, u.id)
	if err != nil {
		return LoginResult{}, err
	}
	expired := false
	if age := maxAge(rules); age > 0 && now.Sub(u.passwordSetAt) > age {
		expired = true
	}
	err = s.st.Control().InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.ExecContext(ctx, "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1", u.id); err != nil {
			return err
		}
		if expired {
			text, hash, err := newSecret(32)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO email_tokens (hash, user_id, purpose, created_at, expires_at)
VALUES ($1, $2, 'password_expired', $3, $4)`, hash, u.id, tx.Now, tx.Now.Add(passwordChangeTTL)); err != nil {
				return err
			}
			res.PasswordExpired, res.PasswordToken = true, text
			return s.controlEvent(ctx, tx, src, "auth.login.password_expired", u.id, audit.Failure, nil)
		}
		if rehash {
			h, err := s.opts.Passwords.Hash(ctx, pw)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3", h, tx.Now, u.id); err != nil {
				return err
			}
			if err := s.controlEvent(ctx, tx, src, "auth.password.rehashed", u.id, audit.Success, nil); err != nil {
				return err
			}
		}
		if u.totpEnabledAt.Valid || u.kind == "operator" {
			text, hash, err := newSecret(32)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO mfa_challenges (hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
				hash, u.id, tx.Now, tx.Now.Add(mfaTTL)); err != nil {
				return err
			}
			res.MFARequired, res.MFAToken = true, text
			return s.controlEvent(ctx, tx, src, "auth.login.password_ok", u.id, audit.Success, map[string]string{"next": "mfa"})
		}
		t, sid, err := s.startSession(ctx, tx, u.id, []string{"pwd"}, src)
		if err != nil {
			return err
		}
		res.Tokens, res.SessionID = &t, sid
		return s.controlEvent(ctx, tx, src, "auth.login.succeeded", u.id, audit.Success, map[string]string{"session_id": sid})
	})
	if err != nil {
		return LoginResult{}, err
	}
	if res.Tokens != nil {
		if err := s.issueAccess(ctx, res.Tokens, res.UserID, res.SessionID, []string{"pwd"}, kind); err != nil {
			return LoginResult{}, err
		}
	}
	return res, nil
}

// failed counts a failed login against the account key and the client
// address, stores and mails a lock, and records the failure.
func (s *Service) failed(ctx context.Context, src audit.Source, acctKey, ipKey string, u *userRow) {
	locked := s.throttle.fail(acctKey)
	s.ipThrottle.fail(ipKey)
	userID := ""
	if u != nil {
		userID = u.id
	}
	err := s.st.Control().InTx(ctx, func(tx *store.Tx) error {
		if u != nil {
			if _, err := tx.ExecContext(ctx, "UPDATE users SET failed_logins = failed_logins + 1 WHERE id = $1", u.id); err != nil {
				return err
			}
			if locked {
				until := tx.Now.Add(s.opts.Lockout.LockFor)
				if _, err := tx.ExecContext(ctx, "UPDATE users SET locked_until = $1 WHERE id = $2", until, u.id); err != nil {
					return err
				}
				if err := s.controlEvent(ctx, tx, src, "auth.account.locked", u.id, audit.Denied,
					map[string]string{"until": until.Format(time.RFC3339)}); err != nil {
					return err
				}
			}
		}
		return s.controlEvent(ctx, tx, src, "auth.login.failed", userID, audit.Failure, nil)
	})
	if err != nil {
		s.opts.Logger.Error("failed login not recorded", "error", err.Error())
	}
	if locked && u != nil {
		if pub, err := s.public(ctx, *u); err == nil {
			s.send(ctx, mailer.Message{To: pub.Email, Subject: "Your account was locked",
				Text: "After several failed attempts to log in, your account is locked for " +
					s.opts.Lockout.LockFor.String() + ". If this was not you, change your password after the lock ends."})
		}
	}
}

// Unlock lifts an account's lock (an operator's action).
func (s *Service) Unlock(ctx context.Context, src audit.Source, email string) error {
	e, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	u, err := s.userByEmail(ctx, s.st.Control().SQL(), e)
	if errors.Is(err, errNoUser) {
		return apperr.Errorf(apperr.NotFound, "no account with this address")
	}
	if err != nil {
		return err
	}
	idx, _ := s.emailIndex(ctx, e)
	s.throttle.reset("acct:" + hex.EncodeToString(idx))
	return s.st.Control().InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.ExecContext(ctx, "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1", u.id); err != nil {
			return err
		}
		return s.controlEvent(ctx, tx, src, "auth.account.unlocked", u.id, audit.Success, nil)
	})
}

// ChangePassword sets a new password after checking the current one; the
// user's other sessions are revoked.
func (s *Service) ChangePassword(ctx context.Context, src audit.Source, userID, sid, current, next string) error {
	u, err := s.userByID(ctx, s.st.Control().SQL(), userID)
	if err != nil {
		return err
	}
	ok, _, err := s.opts.Passwords.Verify(ctx, u.hash, current)
	if err != nil && !ok && (apperr.CodeOf(err) == apperr.Unavailable || apperr.CodeOf(err) == apperr.RateLimited) {
		return err
	}
	if !ok {
		return apperr.WithFields("the current password is wrong", apperr.FieldError{Field: "current_password", Code: "wrong"})
	}
	return s.setPassword(ctx, src, u, sid, next, "auth.password.changed", nil)
}

// setPassword checks next against the policy (history included), stores
// it and revokes every session but keep; first, in the same transaction,
// it runs pre (if not nil), whose error undoes everything.
func (s *Service) setPassword(ctx context.Context, src audit.Source, u userRow, keep, next, action string, pre func(tx *store.Tx) error) error {
	pub, err := s.public(ctx, u)
	if err != nil {
		return err
	}
	rules, err := s.rules(ctx, u.id)
	if err != nil {
		return err
	}
	prev, err := s.history(ctx, u.id, maxHistory(rules))
	if err != nil {
		return err
	}
	if fields := checkPassword(rules, next, pub.Email, prev); len(fields) > 0 {
		return apperr.WithFields("the password does not meet the policy", fields...)
	}
	hash, err := s.opts.Passwords.Hash(ctx, next)
	if err != nil {
		return err
	}
	var revoked []string
	err = s.st.Control().InTx(ctx, func(tx *store.Tx) error {
		if pre != nil {
			if err := pre(tx); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = $1, password_set_at = $2, updated_at = $2,
	failed_logins = 0, locked_until = NULL WHERE id = $3`, hash, tx.Now, u.id); err != nil {
			return err
		}
		if err := s.addHistory(ctx, tx, u.id, hash); err != nil {
			return err
		}
		if revoked, err = s.revokeOthers(ctx, tx, u.id, keep, "password_changed"); err != nil {
			return err
		}
		return s.controlEvent(ctx, tx, src, action, u.id, audit.Success, map[string]string{"sessions_revoked": strconv.Itoa(len(revoked))})
	})
	if err == nil {
		s.revoked.revoke(revoked...)
	}
	return err
}

// ForgotPassword e-mails a reset link (30 minutes, single use) if the
// address has an account. The answer is the same either way.
func (s *Service) ForgotPassword(ctx context.Context, src audit.Source, email string) {
	e, err := NormalizeEmail(email)
	if err != nil {
		return
	}
	u, err := s.userByEmail(ctx, s.st.Control().SQL(), e)
	if err != nil {
		return
	}
	var link string
	err = s.st.Control().InTx(ctx, func(tx *store.Tx) error {
		var err error
		if link, err = s.emailToken(ctx, tx, u.id, "reset", resetTTL, "/reset-password"); err != nil {
			return err
		}
		return s.controlEvent(ctx, tx, src, "auth.password.reset_requested", u.id, audit.Success, nil)
	})
	if err != nil {
		s.opts.Logger.Error("password reset not started", "error", err.Error())
		return
	}
	s.send(ctx, mailer.Message{To: e, Subject: "Reset your password",
		Text: "Open this link within 30 minutes to choose a new password:\n\n" + link + "\n\nIf you did not ask for this, ignore this message."})
}

// ResetPassword sets a new password with an e-mailed token and revokes
// every session.
func (s *Service) ResetPassword(ctx context.Context, src audit.Source, tokenText, next string) error {
	// The token is checked (not spent) first, so that a password the
	// policy refuses does not use it up.
	var userID string
	err := s.st.Control().InTx(ctx, func(tx *store.Tx) error {
		var err error
		userID, err = spendEmailToken(ctx, tx, tokenText, "reset")
		if err != nil {
			return err
		}
		return errPeek
	})
	if !errors.Is(err, errPeek) {
		return err
	}
	u, err := s.userByID(ctx, s.st.Control().SQL(), userID)
	if err != nil {
		return err
	}
	// Spent in the transaction that sets the password: of two resets with
	// one token, one wins.
	return s.setPassword(ctx, src, u, "", next, "auth.password.reset", func(tx *store.Tx) error {
		_, err := spendEmailToken(ctx, tx, tokenText, "reset")
		return err
	})
}

// errPeek rolls back a transaction that only looked.
var errPeek = errors.New("identity: look only")
