package mail

import (
	"context"
	"encoding/base64"
	"errors"
	"net/mail"
	"strings"
	"testing"
)

func TestSMTPFailed_ScrubsPasswordAndRecipient(t *testing.T) {
	const pass = "hunter2-Very-Secret"
	s, err := NewSMTP(SMTPOptions{Host: "smtp.example.com", From: "a@bulwark.example", Username: "relay", Password: pass})
	if err != nil {
		t.Fatal(err)
	}
	to := &mail.Address{Name: "Ada Lovelace", Address: "ada@example.com"}
	plain := base64.StdEncoding.EncodeToString([]byte("\x00relay\x00" + pass))
	login := base64.StdEncoding.EncodeToString([]byte(pass))
	// A relay that echoes what it was sent, over several lines.
	cause := errors.New("535 5.7.8 bad credentials for AUTH PLAIN " + plain + "\n" +
		"334 " + login + " (" + pass + ")\n550 5.1.1 <ADA@example.com> Ada Lovelace: no such user")
	got := s.failed(context.Background(), cause, to).Error()
	for _, leak := range []string{pass, plain, login, "ADA@example.com", "ada@example.com", "Ada Lovelace"} {
		if strings.Contains(got, leak) {
			t.Errorf("error holds %q: %s", leak, got)
		}
	}
	if strings.ContainsAny(got, "\r\n") {
		t.Errorf("error is not one line: %q", got)
	}
	if !strings.Contains(got, "535 5.7.8") || !strings.Contains(got, "smtp.example.com:587") {
		t.Errorf("error lost its reason or relay: %s", got)
	}
}

func TestSMTPFailed_KeepsTheContextError(t *testing.T) {
	s, err := NewSMTP(SMTPOptions{Host: "smtp.example.com", From: "a@bulwark.example"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got := s.failed(ctx, errors.New("use of closed network connection"), &mail.Address{Address: "a@b.example"})
	if !errors.Is(got, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled in its chain", got)
	}
}
