package identity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"bulwark/internal/apperr"
	"bulwark/internal/audit"
	"bulwark/internal/identity/totp"
	"bulwark/internal/keys"
	"bulwark/internal/store"
)

// Issuer is the name authenticator apps show for Bulwark's codes.
const Issuer = "Bulwark"

// recoveryPepper is the key of the recovery codes' hashes: derived from
// the platform's blind-index key, so it never sits in the database beside
// the hashes and needs the KEK to compute.
func (s *Service) recoveryPepper(ctx context.Context) ([]byte, error) {
	return s.ring.BlindIndex(ctx, keys.PlatformID, "identity.recovery_pepper", []byte("v1"))
}

// Enrolment is what a user needs to add Bulwark to an authenticator app.
type Enrolment struct {
	Secret     string `json:"secret"`
	OTPAuthURI string `json:"otpauth_uri"`
}

// StartTOTP creates a new TOTP secret for the user, stored sealed and not
// yet enabled; ConfirmTOTP enables it. Starting again replaces a secret
// that was not confirmed; an enabled one must be disabled first.
func (s *Service) StartTOTP(ctx context.Context, src audit.Source, userID string) (Enrolment, error) {
	u, err := s.userByID(ctx, s.st.Control().SQL(), userID)
	if err != nil {
		return Enrolment{}, err
	}
	if u.totpEnabledAt.Valid {
		return Enrolment{}, apperr.Errorf(apperr.Conflict, "two-factor authentication is on already; turn it off first")
	}
	pub, err := s.public(ctx, u)
	if err != nil {
		return Enrolment{}, err
	}
	secret, err := totp.NewSecret()
	if err != nil {
		return Enrolment{}, err
	}
	sealed, err := s.ring.Seal(ctx, keys.PlatformID, userAD(u.id, "totp"), secret)
	if err != nil {
		return Enrolment{}, err
	}
	err = s.st.Control().InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.ExecContext(ctx, "UPDATE users SET totp_sealed = $1, totp_last_step = 0, updated_at = $2 WHERE id = $3 AND totp_enabled_at IS NULL",
			sealed, tx.Now, u.id); err != nil {
			return err
		}
		return s.controlEvent(ctx, tx, src, "auth.mfa.enrolment_started", u.id, audit.Success, nil)
	})
	if err != nil {
		return Enrolment{}, err
	}
	return Enrolment{Secret: totp.Base32(secret), OTPAuthURI: totp.URI(Issuer, pub.Email, secret)}, nil
}

var errBadCode = apperr.WithFields("the code is wrong or was used already", apperr.FieldError{Field: "code", Code: "invalid"})

// checkTOTP checks a code against the user's secret and stores its step
// (compare-and-set: of two requests with one code, one wins). It returns
// whether the code was a replay, for the audit log.
func (s *Service) checkTOTP(ctx context.Context, tx *store.Tx, u userRow, code string) (ok, replay bool, err error) {
	if len(u.totpSealed) == 0 {
		return false, false, nil
	}
	secret, err := s.ring.Open(ctx, keys.PlatformID, userAD(u.id, "totp"), u.totpSealed)
	if err != nil {
		return false, false, err
	}
	step, ok := totp.Check(secret, code, tx.Now, u.totpLastStep)
	if !ok {
		// A code valid without the replay rule is a replay.
		_, replay = totp.Check(secret, code, tx.Now, 0)
		return false, replay, nil
	}
	res, err := tx.ExecContext(ctx, "UPDATE users SET totp_last_step = $1 WHERE id = $2 AND totp_last_step < $1", step, u.id)
	if err != nil {
		return false, false, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, true, nil
	}
	return true, false, nil
}

// ConfirmTOTP turns two-factor authentication on with a first code and
// returns the recovery codes, shown this once.
func (s *Service) ConfirmTOTP(ctx context.Context, src audit.Source, userID, code string) ([]string, error) {
	pepper, err := s.recoveryPepper(ctx)
	if err != nil {
		return nil, err
	}
	codes, hashes, err := totp.NewRecoveryCodes(pepper, totp.DefaultRecoveryCodes)
	if err != nil {
		return nil, err
	}
	err = s.st.Control().InTx(ctx, func(tx *store.Tx) error {
		u, err := s.userByID(ctx, tx, userID)
		if err != nil {
			return err
		}
		if u.totpEnabledAt.Valid {
			return apperr.Errorf(apperr.Conflict, "two-factor authentication is on already")
		}
		if len(u.totpSealed) == 0 {
			return apperr.Errorf(apperr.Conflict, "start the enrolment first")
		}
		ok, _, err := s.checkTOTP(ctx, tx, u, code)
		if err != nil {
			return err
		}
		if !ok {
			return errBadCode
		}
		if _, err := tx.ExecContext(ctx, "UPDATE users SET totp_enabled_at = $1, updated_at = $1 WHERE id = $2", tx.Now, u.id); err != nil {
			return err
		}
		if err := replaceRecovery(ctx, tx, u.id, hashes); err != nil {
			return err
		}
		return s.controlEvent(ctx, tx, src, "auth.mfa.enabled", u.id, audit.Success, nil)
	})
	if err != nil {
		return nil, err
	}
	return codes, nil
}

func replaceRecovery(ctx context.Context, tx *store.Tx, userID string, hashes [][]byte) error {
	if _, err := tx.ExecContext(ctx, "DELETE FROM recovery_codes WHERE user_id = $1", userID); err != nil {
		return err
	}
	for _, h := range hashes {
		if _, err := tx.ExecContext(ctx, "INSERT INTO recovery_codes (user_id, hash) VALUES ($1, $2)", userID, h); err != nil {
			return fmt.Errorf("identity: store recovery code: %w", err)
		}
	}
	return nil
}

// DisableTOTP turns two-factor authentication off with a current code.
// Operators cannot turn it off.
func (s *Service) DisableTOTP(ctx context.Context, src audit.Source, userID, code string) error {
	return s.st.Control().InTx(ctx, func(tx *store.Tx) error {
		u, err := s.userByID(ctx, tx, userID)
		if err != nil {
			return err
		}
		if u.kind == "operator" {
			return apperr.Errorf(apperr.Forbidden, "operators must keep two-factor authentication")
		}
		if !u.totpEnabledAt.Valid {
			return apperr.Errorf(apperr.Conflict, "two-factor authentication is off")
		}
		ok, _, err := s.checkTOTP(ctx, tx, u, code)
		if err != nil {
			return err
		}
		if !ok {
			return errBadCode
		}
		if _, err := tx.ExecContext(ctx, "UPDATE users SET totp_sealed = NULL, totp_enabled_at = NULL, totp_last_step = 0, updated_at = $1 WHERE id = $2", tx.Now, u.id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM recovery_codes WHERE user_id = $1", u.id); err != nil {
			return err
		}
		return s.controlEvent(ctx, tx, src, "auth.mfa.disabled", u.id, audit.Success, nil)
	})
}

var errBadMFAToken = apperr.Errorf(apperr.Unauthorized, "the login has expired; log in again")

// CompleteMFA finishes a login that needs a second factor: a TOTP code,
// or one of the recovery codes (then spent). Failures count towards the
// account's lockout like failed passwords; a replayed code is refused and
// audited.
func (s *Service) CompleteMFA(ctx context.Context, src audit.Source, mfaToken, code string) (LoginResult, error) {
	if mfaToken == "" || len(mfaToken) > 100 {
		return LoginResult{}, errBadMFAToken
	}
	hash := hashSecret(mfaToken)
	var userID string
	var used sql.NullTime
	var expires time.Time
	err := s.st.Control().SQL().QueryRowContext(ctx, "SELECT user_id, used_at, expires_at FROM mfa_challenges WHERE hash = $1", hash).
		Scan(&userID, &used, &expires)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && (used.Valid || !s.now().Before(expires))) {
		return LoginResult{}, errBadMFAToken
	}
	if err != nil {
		return LoginResult{}, err
	}
	acctKey := "mfa:" + userID
	if d := s.throttle.wait(acctKey); d > 0 {
		return LoginResult{}, throttled(d)
	}
	pepper, err := s.recoveryPepper(ctx)
	if err != nil {
		return LoginResult{}, err
	}
	var res LoginResult
	var failure, replay bool
	err = s.st.Control().InTx(ctx, func(tx *store.Tx) error {
		u, err := s.userByID(ctx, tx, userID)
		if err != nil {
			return err
		}
		if u.lockedUntil.Valid && tx.Now.Before(u.lockedUntil.Time) {
			return throttled(u.lockedUntil.Time.Sub(tx.Now))
		}
		amr := "otp"
		ok, rep, err := s.checkTOTP(ctx, tx, u, code)
		if err != nil {
			return err
		}
		replay = rep
		if !ok && !rep {
			ok, err = s.spendRecovery(ctx, tx, pepper, u.id, code)
			if err != nil {
				return err
			}
			amr = "rc"
		}
		if !ok {
			failure = true
			return nil
		}
		res.UserID = u.id
		// The challenge is single use.
		r, err := tx.ExecContext(ctx, "UPDATE mfa_challenges SET used_at = $1 WHERE hash = $2 AND used_at IS NULL", tx.Now, hash)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return errBadMFAToken
		}
		t, sid, err := s.startSession(ctx, tx, u.id, []string{"pwd", amr}, src)
		if err != nil {
			return err
		}
		res.Tokens, res.SessionID, res.amr, res.kind = &t, sid, []string{"pwd", amr}, u.kind
		return s.controlEvent(ctx, tx, src, "auth.login.succeeded", u.id, audit.Success, map[string]string{"session_id": sid, "mfa": amr})
	})
	if err != nil {
		return LoginResult{}, err
	}
	if failure {
		locked := s.throttle.fail(acctKey)
		action := "auth.mfa.failed"
		if replay {
			action = "auth.mfa.replayed"
		}
		rerr := s.st.Control().InTx(ctx, func(tx *store.Tx) error {
			if locked {
				if _, err := tx.ExecContext(ctx, "UPDATE users SET locked_until = $1 WHERE id = $2", tx.Now.Add(s.opts.Lockout.LockFor), userID); err != nil {
					return err
				}
			}
			return s.controlEvent(ctx, tx, src, action, userID, audit.Denied, nil)
		})
		if rerr != nil {
			s.opts.Logger.Error("failed second factor not recorded", "error", rerr.Error())
		}
		return LoginResult{}, errBadCode
	}
	s.throttle.reset(acctKey)
	if err := s.issueAccess(ctx, res.Tokens, res.UserID, res.SessionID, res.amr, res.kind); err != nil {
		return LoginResult{}, err
	}
	return res, nil
}

// spendRecovery deletes the recovery code that matches, if any.
func (s *Service) spendRecovery(ctx context.Context, tx *store.Tx, pepper []byte, userID, code string) (bool, error) {
	if strings.TrimSpace(code) == "" {
		return false, nil
	}
	rows, err := tx.QueryContext(ctx, "SELECT hash FROM recovery_codes WHERE user_id = $1", userID)
	if err != nil {
		return false, err
	}
	var hashes [][]byte
	for rows.Next() {
		var h []byte
		if err := rows.Scan(&h); err != nil {
			rows.Close()
			return false, err
		}
		hashes = append(hashes, h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, err
	}
	i, ok := totp.MatchRecovery(pepper, code, hashes)
	if !ok {
		return false, nil
	}
	r, err := tx.ExecContext(ctx, "DELETE FROM recovery_codes WHERE user_id = $1 AND hash = $2", userID, hashes[i])
	if err != nil {
		return false, err
	}
	n, _ := r.RowsAffected()
	return n == 1, nil
}
