package identity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"bulwark/internal/apperr"
	mailer "bulwark/internal/mail"
)

// EmailIndex returns the blind index of an address, normalized first:
// what an invitation to that address is bound to. Invalid naming the
// field email for anything that is not one address.
func (s *Service) EmailIndex(ctx context.Context, email string) ([]byte, error) {
	e, err := NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	return s.emailIndex(ctx, e)
}

// UserEmailIndex returns the blind index of a user's address; not_found
// for an unknown user.
func (s *Service) UserEmailIndex(ctx context.Context, userID string) ([]byte, error) {
	var idx []byte
	err := s.st.Control().SQL().QueryRowContext(ctx, "SELECT email_index FROM users WHERE id = $1", userID).Scan(&idx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, apperr.Errorf(apperr.NotFound, "user not found")
	}
	if err != nil {
		return nil, fmt.Errorf("identity: read user: %w", err)
	}
	return idx, nil
}

// SendInvite mails an invitation to join orgName, with the link that
// carries its token. A failure to send is logged, not returned.
func (s *Service) SendInvite(ctx context.Context, email, orgName, token string) {
	e, err := NormalizeEmail(email)
	if err != nil {
		return
	}
	link := strings.TrimRight(s.opts.BaseURL, "/") + "/invites/accept?token=" + url.QueryEscape(token)
	s.send(ctx, mailer.Message{To: e, Subject: "You are invited to " + orgName + " on Bulwark",
		Text: "You have been invited to join " + orgName + ".\n\nSign in (or create an account with this address) and open this link within 7 days:\n\n" +
			link + "\n\nIf you did not expect this, you can ignore this message."})
}

// Notify mails a message to a user's address (an account that no longer
// exists is skipped; a failure to send is logged, not returned).
func (s *Service) Notify(ctx context.Context, userID, subject, text string) {
	u, err := s.User(ctx, userID)
	if err != nil {
		return
	}
	s.send(ctx, mailer.Message{To: u.Email, Subject: subject, Text: text})
}
