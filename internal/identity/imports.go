package identity

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/google/uuid"

	"bulwark/internal/apperr"
	"bulwark/internal/audit"
	"bulwark/internal/identity/password"
	"bulwark/internal/keys"
	"bulwark/internal/store"
)

// ImportUser is one line of a user import: an account from another system
// with its password hash (argon2id PHC, bcrypt, or sha512$salt$hex where
// hex = SHA-512(salt || password)). Imported hashes are verified at login
// and replaced by argon2id at the first successful one.
type ImportUser struct {
	Email         string `json:"email"`
	Name          string `json:"name"`
	PasswordHash  string `json:"password_hash"`
	EmailVerified bool   `json:"email_verified"`
}

// maxImportLine bounds one line of an import file.
const maxImportLine = 64 << 10

// ReadImport reads JSON lines of ImportUser and checks every one before
// anything is imported: a file with any bad line (not JSON, an unknown
// field, a bad address, name or hash, an address twice) is refused as a
// whole with the line numbers. Blank lines are skipped.
func ReadImport(r io.Reader) ([]ImportUser, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxImportLine)
	var out []ImportUser
	var problems []string
	seen := map[string]int{}
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		dec := json.NewDecoder(strings.NewReader(text))
		dec.DisallowUnknownFields()
		var u ImportUser
		if err := dec.Decode(&u); err != nil || dec.More() {
			problems = append(problems, fmt.Sprintf("line %d: not one JSON object of email, name, password_hash, email_verified", line))
			continue
		}
		e, err := NormalizeEmail(u.Email)
		if err != nil {
			problems = append(problems, fmt.Sprintf("line %d: email is not an e-mail address", line))
			continue
		}
		if first, dup := seen[e]; dup {
			problems = append(problems, fmt.Sprintf("line %d: the address of line %d again", line, first))
			continue
		}
		seen[e] = line
		if u.Name, err = checkName(u.Name); err != nil {
			problems = append(problems, fmt.Sprintf("line %d: name must be 1 to 200 characters on one line", line))
			continue
		}
		if err := password.CheckEncoded(u.PasswordHash); err != nil {
			problems = append(problems, fmt.Sprintf("line %d: password_hash is not an argon2id, bcrypt or sha512$salt$hex hash", line))
			continue
		}
		u.Email = e
		out = append(out, u)
	}
	if err := sc.Err(); err != nil {
		return nil, apperr.Errorf(apperr.Invalid, "line %d: %v (lines are limited to %d bytes)", line+1, err, maxImportLine)
	}
	if len(problems) > 0 {
		if len(problems) > 20 {
			problems = append(problems[:20], fmt.Sprintf("and %d more", len(problems)-20))
		}
		return nil, apperr.Errorf(apperr.Invalid, "nothing imported: %s", strings.Join(problems, "; "))
	}
	return out, nil
}

// Import creates the accounts in one transaction; an address that has an
// account already is skipped (and counted), never overwritten.
func (s *Service) Import(ctx context.Context, src audit.Source, users []ImportUser) (imported, skipped int, err error) {
	type prepared struct {
		u                        ImportUser
		id                       string
		idx, emailSeal, nameSeal []byte
	}
	var ps []prepared
	for _, u := range users {
		id, err := uuid.NewV7()
		if err != nil {
			return 0, 0, err
		}
		p := prepared{u: u, id: id.String()}
		if p.idx, err = s.emailIndex(ctx, u.Email); err != nil {
			return 0, 0, err
		}
		if p.emailSeal, err = s.ring.Seal(ctx, keys.PlatformID, userAD(p.id, "email"), []byte(u.Email)); err != nil {
			return 0, 0, err
		}
		if p.nameSeal, err = s.ring.Seal(ctx, keys.PlatformID, userAD(p.id, "name"), []byte(u.Name)); err != nil {
			return 0, 0, err
		}
		ps = append(ps, p)
	}
	err = s.st.Control().InTx(ctx, func(tx *store.Tx) error {
		imported, skipped = 0, 0
		for _, p := range ps {
			var n int
			if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM users WHERE email_index = $1", p.idx).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				skipped++
				continue
			}
			var verified any
			if p.u.EmailVerified {
				verified = tx.Now
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO users (id, kind, email_index, email_sealed, name_sealed, password_hash,
	password_set_at, email_verified_at, created_at, updated_at) VALUES ($1, 'user', $2, $3, $4, $5, $6, $7, $6, $6)`,
				p.id, p.idx, p.emailSeal, p.nameSeal, p.u.PasswordHash, tx.Now, verified); err != nil {
				return fmt.Errorf("identity: import: %w", err)
			}
			if err := s.addHistory(ctx, tx, p.id, p.u.PasswordHash); err != nil {
				return err
			}
			if err := s.controlEvent(ctx, tx, src, "user.imported", p.id, audit.Success, nil); err != nil {
				return err
			}
			imported++
		}
		return nil
	})
	return imported, skipped, err
}
