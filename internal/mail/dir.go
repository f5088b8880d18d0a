package mail

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"time"

	"bulwark/internal/apperr"
)

// Dir is a Sender for development: it writes each message as an .eml file
// into a directory (by convention DATA/mail/outbox) instead of sending it,
// so that a developer can open it in a mail client or read the link in it.
// Files are mode 0600 (they hold addresses and live links) and are named
// after the time they were written, so that ls lists them in order. It is
// safe for concurrent use.
type Dir struct {
	dir  string
	from *mail.Address
}

var _ Sender = (*Dir)(nil)

// NewDir returns a sender writing into dir, which it creates (mode 0700)
// if missing. from is the From address written into each message. Returns
// invalid if from is not one e-mail address.
func NewDir(dir, from string) (*Dir, error) {
	addr, err := parseAddress(from)
	if err != nil {
		return nil, apperr.Errorf(apperr.Invalid, "mail outbox: from must be exactly one e-mail address")
	}
	if dir == "" {
		return nil, apperr.Errorf(apperr.Invalid, "mail outbox: directory is required")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mail outbox: %w", err)
	}
	return &Dir{dir: dir, from: addr}, nil
}

// Send writes m to a new file in the directory. It returns invalid if m is
// malformed, and an internal error if the file cannot be written. A reader
// never sees a partly written file: it is written under a hidden name and
// renamed when complete.
func (d *Dir) Send(ctx context.Context, m Message) error {
	to, err := validate(m)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	now := time.Now().UTC()
	msg := compose(d.from, to, m, now)

	tmp, err := os.CreateTemp(d.dir, ".writing-*") // mode 0600
	if err != nil {
		return fmt.Errorf("mail outbox: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // a no-op once renamed
	if _, err := msg.WriteTo(tmp); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("mail outbox: write: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("mail outbox: write: %w", err)
	}
	name := now.Format("20060102T150405.000000000Z") + "-" + strings.ToLower(rand.Text()[:8]) + ".eml"
	if err := os.Rename(tmp.Name(), filepath.Join(d.dir, name)); err != nil {
		return fmt.Errorf("mail outbox: %w", err)
	}
	return nil
}
