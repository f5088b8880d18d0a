package identity

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"

	"bulwark/internal/apperr"
	"bulwark/internal/audit"
	"bulwark/internal/keys"
	"bulwark/internal/store"
)

// operatorSetupTTL is how long an operator's one-time setup link lasts.
const operatorSetupTTL = 24 * time.Hour

// CreateOperator creates a staff account with no password and returns a
// one-time setup link (24 hours) under opsURL: there the operator sets a
// password and enrols TOTP, which operators cannot do without. Operators
// log in on the ops listener only.
func (s *Service) CreateOperator(ctx context.Context, src audit.Source, email, name, opsURL string) (string, error) {
	e, err := NormalizeEmail(email)
	if err != nil {
		return "", err
	}
	if name, err = checkName(name); err != nil {
		return "", err
	}
	idx, err := s.emailIndex(ctx, e)
	if err != nil {
		return "", err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return "", err
	}
	uid := id.String()
	emailSeal, err := s.ring.Seal(ctx, keys.PlatformID, userAD(uid, "email"), []byte(e))
	if err != nil {
		return "", err
	}
	nameSeal, err := s.ring.Seal(ctx, keys.PlatformID, userAD(uid, "name"), []byte(name))
	if err != nil {
		return "", err
	}
	var link string
	err = s.st.Control().InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO users (id, kind, email_index, email_sealed, name_sealed, password_hash,
	password_set_at, email_verified_at, created_at, updated_at) VALUES ($1, 'operator', $2, $3, $4, '', $5, $5, $5, $5)`,
			uid, idx, emailSeal, nameSeal, tx.Now); err != nil {
			if store.IsUniqueViolation(err) {
				return apperr.WithFields("an account with this address exists", apperr.FieldError{Field: "email", Code: "taken"})
			}
			return err
		}
		text, hash, err := newSecret(32)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO email_tokens (hash, user_id, purpose, created_at, expires_at)
VALUES ($1, $2, 'operator_setup', $3, $4)`, hash, uid, tx.Now, tx.Now.Add(operatorSetupTTL)); err != nil {
			return err
		}
		link = strings.TrimRight(opsURL, "/") + "/ops/v1/setup?token=" + text
		return s.controlEvent(ctx, tx, src, "operator.created", uid, audit.Success, nil)
	})
	return link, err
}

// operatorSetup finds the operator of an unspent setup token.
func (s *Service) operatorSetup(ctx context.Context, tokenText string) (userRow, error) {
	bad := apperr.WithFields("the setup link is invalid or has expired", apperr.FieldError{Field: "token", Code: "invalid"})
	if tokenText == "" || len(tokenText) > 100 {
		return userRow{}, bad
	}
	var userID string
	var used sql.NullTime
	var expires sql.NullTime
	err := s.st.Control().SQL().QueryRowContext(ctx, `SELECT user_id, used_at, expires_at FROM email_tokens
WHERE hash = $1 AND purpose = 'operator_setup'`, hashSecret(tokenText)).Scan(&userID, &used, &expires)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && (used.Valid || !s.now().Before(expires.Time))) {
		return userRow{}, bad
	}
	if err != nil {
		return userRow{}, err
	}
	return s.userByID(ctx, s.st.Control().SQL(), userID)
}

// SetupOperator sets the operator's password (policy checked) and starts
// the TOTP enrolment; ConfirmOperator finishes it. The link stays valid
// until then.
func (s *Service) SetupOperator(ctx context.Context, src audit.Source, tokenText, pw string) (Enrolment, error) {
	u, err := s.operatorSetup(ctx, tokenText)
	if err != nil {
		return Enrolment{}, err
	}
	if err := s.setPassword(ctx, src, u, "", pw, "operator.password_set", nil); err != nil {
		return Enrolment{}, err
	}
	return s.StartTOTP(ctx, src, u.id)
}

// ConfirmOperator enables the operator's TOTP with a first code, spends
// the setup link and returns the recovery codes.
func (s *Service) ConfirmOperator(ctx context.Context, src audit.Source, tokenText, code string) ([]string, error) {
	u, err := s.operatorSetup(ctx, tokenText)
	if err != nil {
		return nil, err
	}
	if u.hash == "" {
		return nil, apperr.Errorf(apperr.Conflict, "set a password first")
	}
	codes, err := s.ConfirmTOTP(ctx, src, u.id, code)
	if err != nil {
		return nil, err
	}
	err = s.st.Control().InTx(ctx, func(tx *store.Tx) error {
		_, err := spendEmailToken(ctx, tx, tokenText, "operator_setup")
		return err
	})
	return codes, err
}

// IsOperator reports whether the account is an operator's.
func (s *Service) IsOperator(ctx context.Context, userID string) (bool, error) {
	u, err := s.userByID(ctx, s.st.Control().SQL(), userID)
	if errors.Is(err, errNoUser) {
		return false, nil
	}
	return err == nil && u.kind == "operator", err
}
