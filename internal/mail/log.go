package mail

import (
	"context"
	"log/slog"
)

// Log is a Sender that sends nothing: it logs that a message was sent and
// its subject, never the address or the body. A link in the message is
// lost, so prefer Dir where someone must follow it. It is safe for
// concurrent use.
type Log struct {
	logger *slog.Logger
}

var _ Sender = (*Log)(nil)

// NewLog returns a sender writing to logger.
func NewLog(logger *slog.Logger) *Log { return &Log{logger: logger} }

// Send validates m and logs its subject. It returns invalid if m is
// malformed, so that a bad message fails in development as it would with
// SMTP.
func (l *Log) Send(ctx context.Context, m Message) error {
	if _, err := validate(m); err != nil {
		return err
	}
	l.logger.InfoContext(ctx, "mail sent to the log only (no SMTP relay configured)", slog.String("subject", m.Subject))
	return nil
}
