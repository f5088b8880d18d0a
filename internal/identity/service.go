package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"bulwark/internal/apperr"
	"bulwark/internal/audit"
	"bulwark/internal/identity/password"
	"bulwark/internal/identity/token"
	"bulwark/internal/keys"
	mailer "bulwark/internal/mail"
	"bulwark/internal/store"
)

// Lockout is the throttling of failed logins (and failed second factors):
// after each failure the account (and, apart, the client address) must
// wait Base × 2^(failures-1) before the next attempt, and after Lock
// failures in a row it is locked for LockFor. Defaults: 1 s, 8 failures,
// 15 minutes.
type Lockout struct {
	Base    time.Duration
	Lock    int
	LockFor time.Duration
}

// DefaultLockout is the lockout of every account unless configured.
var DefaultLockout = Lockout{Base: time.Second, Lock: 8, LockFor: 15 * time.Minute}

// Sessions bounds sessions: a session unused for Idle, or older than
// Absolute, is over.
type Sessions struct {
	Idle, Absolute time.Duration
}

// DefaultSessions are the session lifetimes unless an org's policy says
// otherwise.
var DefaultSessions = Sessions{Idle: 30 * time.Minute, Absolute: 12 * time.Hour}

// ipFreeFailures is how many failed logins a client address may have
// before it is delayed.
const ipFreeFailures = 20

// Options configure a Service.
type Options struct {
	Passwords *password.Pool
	Params    password.Params
	// Policy is the server's password policy; OrgRules, when not nil,
	// returns the policies of the orgs a user belongs to: a new password
	// meets all of them, and the shortest maximum age applies at login.
	Policy   password.Policy
	OrgRules func(ctx context.Context, userID string) ([]OrgRules, error)
	Tokens   *token.Issuer
	// OpsTokens issues the access tokens of operators, with an audience of
	// their own so that the public listener refuses them (and Tokens'
	// tokens are refused on the ops listener).
	OpsTokens *token.Issuer
	Mail      mailer.Sender
	// BaseURL starts the links in e-mails, e.g. https://app.example.com.
	BaseURL  string
	Lockout  Lockout
	Sessions Sessions
	Logger   *slog.Logger
	Now      func() time.Time
}

// Service holds accounts, sessions, API keys and operators in the control
// database.
type Service struct {
	st    *store.Store
	ring  *keys.Ring
	audit *audit.Service
	opts  Options

	throttle   *throttle // per account, and per unknown address alike
	ipThrottle *throttle // per client address: more lenient (shared NATs)
	revoked    *revocations
	keyCache   apiKeyCache
}

// New returns the identity Service. The ring must have platform keys
// (keys.Ring.EnsurePlatformKeys).
func New(st *store.Store, ring *keys.Ring, aud *audit.Service, opts Options) *Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Lockout == (Lockout{}) {
		opts.Lockout = DefaultLockout
	}
	if opts.Sessions == (Sessions{}) {
		opts.Sessions = DefaultSessions
	}
	if opts.Params == (password.Params{}) {
		opts.Params = password.DefaultParams
	}
	if opts.Policy == (password.Policy{}) {
		opts.Policy = password.DefaultPolicy
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{st: st, ring: ring, audit: aud, opts: opts,
		throttle: newThrottle(opts.Lockout, opts.Now), ipThrottle: newThrottle(opts.Lockout, opts.Now),
		revoked: newRevocations(opts.Now)}
	// A client address may fail ipFreeFailures times before delays start
	// (offices and mobile carriers put many people behind one address).
	s.ipThrottle.after = ipFreeFailures
	return s
}

func (s *Service) now() time.Time { return s.opts.Now().UTC().Truncate(time.Microsecond) }

// NormalizeEmail returns the form of an address that is stored and
// compared: trimmed and lower-cased. Returns invalid naming the field for
// anything that is not one plain address.
func NormalizeEmail(email string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(email))
	bad := apperr.WithFields("invalid e-mail address", apperr.FieldError{Field: "email", Code: "invalid", Message: "not an e-mail address"})
	if e == "" || len(e) > 254 || !utf8.ValidString(e) {
		return "", bad
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Name != "" || a.Address != e || !strings.Contains(e[strings.LastIndexByte(e, '@')+1:], ".") {
		return "", bad
	}
	return e, nil
}

// emailIndex is the blind index of a normalized address.
func (s *Service) emailIndex(ctx context.Context, email string) ([]byte, error) {
	return s.ring.BlindIndex(ctx, keys.PlatformID, "users.email", []byte(email))
}

func userAD(id, field string) keys.AD { return keys.AD{Table: "users", RowID: id, Field: field} }

// User is an account as callers see it.
type User struct {
	ID            string     `json:"id"`
	Kind          string     `json:"kind"`
	Email         string     `json:"email"`
	Name          string     `json:"name"`
	EmailVerified bool       `json:"email_verified"`
	MFAEnabled    bool       `json:"mfa_enabled"`
	CreatedAt     time.Time  `json:"created_at"`
	PasswordSetAt time.Time  `json:"-"`
	LockedUntil   *time.Time `json:"-"`
}

// userRow is a users row as stored.
type userRow struct {
	id, kind, hash                         string
	emailSealed, nameSealed, totpSealed    []byte
	passwordSetAt, createdAt               time.Time
	verifiedAt, totpEnabledAt, lockedUntil sql.NullTime
	totpLastStep                           int64
	failed                                 int
}

const userColumns = `id, kind, email_sealed, name_sealed, password_hash, password_set_at, email_verified_at,
	totp_sealed, totp_enabled_at, totp_last_step, failed_logins, locked_until, created_at`

type rowScanner interface{ Scan(...any) error }

func scanUser(r rowScanner) (userRow, error) {
	var u userRow
	err := r.Scan(&u.id, &u.kind, &u.emailSealed, &u.nameSealed, &u.hash, &u.passwordSetAt, &u.verifiedAt,
		&u.totpSealed, &u.totpEnabledAt, &u.totpLastStep, &u.failed, &u.lockedUntil, &u.createdAt)
	return u, err
}

// errNoUser is internal: callers turn it into their own answer.
var errNoUser = errors.New("identity: no such user")

// userByEmail finds the account of a normalized address.
func (s *Service) userByEmail(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, email string) (userRow, error) {
	idx, err := s.emailIndex(ctx, email)
	if err != nil {
		return userRow{}, err
	}
	u, err := scanUser(q.QueryRowContext(ctx, "SELECT "+userColumns+" FROM users WHERE email_index = $1", idx))
	if errors.Is(err, sql.ErrNoRows) {
		return userRow{}, errNoUser
	}
	if err != nil {
		return userRow{}, fmt.Errorf("identity: read user: %w", err)
	}
	return u, nil
}

func (s *Service) userByID(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, id string) (userRow, error) {
	u, err := scanUser(q.QueryRowContext(ctx, "SELECT "+userColumns+" FROM users WHERE id = $1", id))
	if errors.Is(err, sql.ErrNoRows) {
		return userRow{}, errNoUser
	}
	if err != nil {
		return userRow{}, fmt.Errorf("identity: read user: %w", err)
	}
	return u, nil
}

// public opens a row's sealed fields.
func (s *Service) public(ctx context.Context, u userRow) (User, error) {
	email, err := s.ring.Open(ctx, keys.PlatformID, userAD(u.id, "email"), u.emailSealed)
	if err != nil {
		return User{}, err
	}
	name, err := s.ring.Open(ctx, keys.PlatformID, userAD(u.id, "name"), u.nameSealed)
	if err != nil {
		return User{}, err
	}
	out := User{ID: u.id, Kind: u.kind, Email: string(email), Name: string(name), EmailVerified: u.verifiedAt.Valid,
		MFAEnabled: u.totpEnabledAt.Valid, CreatedAt: u.createdAt.UTC(), PasswordSetAt: u.passwordSetAt.UTC()}
	if u.lockedUntil.Valid {
		t := u.lockedUntil.Time.UTC()
		out.LockedUntil = &t
	}
	return out, nil
}

// newSecret returns n random bytes as unpadded base64url, and the SHA-256
// of that text, which is what is stored: the secrets are 256-bit random,
// so a fast hash is enough.
func newSecret(n int) (text string, hash []byte, err error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("identity: random: %w", err)
	}
	text = base64.RawURLEncoding.EncodeToString(b)
	return text, hashSecret(text), nil
}

func hashSecret(text string) []byte {
	h := sha256.Sum256([]byte(text))
	return h[:]
}

// controlEvent records an event in the control-plane log, in tx.
func (s *Service) controlEvent(ctx context.Context, tx *store.Tx, src audit.Source, action string, userID, outcome string, details map[string]string) error {
	_, err := s.audit.Append(ctx, tx, audit.ControlLog, src.Event(action, audit.Resource{Type: "user", ID: userID}, outcome, details))
	return err
}

// User returns an account by id; not_found if there is none.
func (s *Service) User(ctx context.Context, id string) (User, error) {
	u, err := s.userByID(ctx, s.st.Control().SQL(), id)
	if errors.Is(err, errNoUser) {
		return User{}, apperr.Errorf(apperr.NotFound, "user not found")
	}
	if err != nil {
		return User{}, err
	}
	return s.public(ctx, u)
}

// UpdateName changes the user's name.
func (s *Service) UpdateName(ctx context.Context, src audit.Source, userID, name string) (User, error) {
	n, err := checkName(name)
	if err != nil {
		return User{}, err
	}
	sealed, err := s.ring.Seal(ctx, keys.PlatformID, userAD(userID, "name"), []byte(n))
	if err != nil {
		return User{}, err
	}
	err = s.st.Control().InTx(ctx, func(tx *store.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE users SET name_sealed = $1, updated_at = $2 WHERE id = $3", sealed, tx.Now, userID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return apperr.Errorf(apperr.NotFound, "user not found")
		}
		return s.controlEvent(ctx, tx, src, "user.updated", userID, audit.Success, map[string]string{"changed": "name"})
	})
	if err != nil {
		return User{}, err
	}
	return s.User(ctx, userID)
}
