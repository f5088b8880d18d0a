package mail_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"bulwark/internal/apperr"
	"bulwark/internal/mail"
	"bulwark/internal/mail/mailtest"
)

const (
	testUser     = "bulwark-relay"
	testPassword = "correct-Horse-battery-9-staple"
	testFrom     = "Bulwark <no-reply@bulwark.example>"
)

// newSMTP returns a sender for srv in the given TLS mode, trusting srv's
// certificate.
func newSMTP(t *testing.T, srv *mailtest.Server, mode, password string) *mail.SMTP {
	t.Helper()
	s, err := mail.NewSMTP(mail.SMTPOptions{
		Host:     srv.Host(),
		Port:     srv.Port(),
		Username: testUser,
		Password: password,
		From:     testFrom,
		TLS:      mode,
		Timeout:  10 * time.Second,
		RootCAs:  srv.CertPool(),
	})
	if err != nil {
		t.Fatalf("NewSMTP: %v", err)
	}
	return s
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSMTP_StartTLSWithAuthDeliversTheMessage(t *testing.T) {
	srv := mailtest.New(t, mailtest.Options{Username: testUser, Password: testPassword, RequireAuth: true})
	s := newSMTP(t, srv, "", testPassword) // "" is starttls
	m := mail.Message{
		To:      "Ada Lovelace <ada@example.com>",
		Subject: "Vérifiez votre adresse – Bulwark",
		Text:    "Hello Ada,\n\n.a line that starts with a dot\n..and two\n\nhttps://bulwark.example/verify?t=abc\n",
	}
	if err := s.Send(testCtx(t), m); err != nil {
		t.Fatalf("Send: %v", err)
	}

	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("server received %d messages, want 1", len(msgs))
	}
	got := msgs[0]
	if !got.TLS || got.AuthUser != testUser {
		t.Errorf("TLS = %v, AuthUser = %q; want TLS and %q", got.TLS, got.AuthUser, testUser)
	}
	if got.From != "no-reply@bulwark.example" || len(got.To) != 1 || got.To[0] != "ada@example.com" {
		t.Errorf("envelope from %q to %q", got.From, got.To)
	}
	if got.Header == nil {
		t.Fatalf("message does not parse:\n%s", got.Data)
	}
	h := got.Header
	var dec mime.WordDecoder
	subject, err := dec.DecodeHeader(h.Get("Subject"))
	if err != nil || subject != m.Subject {
		t.Errorf("Subject = %q (%v), want %q", subject, err, m.Subject)
	}
	if to, err := h.AddressList("To"); err != nil || len(to) != 1 || to[0].Address != "ada@example.com" || to[0].Name != "Ada Lovelace" {
		t.Errorf("To = %v (%v)", to, err)
	}
	if from, err := h.AddressList("From"); err != nil || len(from) != 1 || from[0].Address != "no-reply@bulwark.example" {
		t.Errorf("From = %v (%v)", from, err)
	}
	if id := h.Get("Message-Id"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@bulwark.example>") {
		t.Errorf("Message-ID = %q, want <...@bulwark.example>", id)
	}
	if date, err := h.Date(); err != nil || time.Since(date).Abs() > time.Minute {
		t.Errorf("Date = %q (%v)", h.Get("Date"), err)
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") || !strings.Contains(strings.ToLower(ct), "utf-8") {
		t.Errorf("Content-Type = %q", ct)
	}
	for _, k := range []string{"User-Agent", "X-Mailer", "Bcc"} {
		if v := h.Get(k); v != "" {
			t.Errorf("header %s = %q, want none", k, v)
		}
	}
	body := decodeBody(t, h, got.Body)
	if want := strings.ReplaceAll(m.Text, "\n", "\r\n"); body != want {
		t.Errorf("body = %q\nwant %q", body, want)
	}
}

// decodeBody undoes the Content-Transfer-Encoding of a text body.
func decodeBody(t *testing.T, h netmail.Header, body []byte) string {
	t.Helper()
	var r io.Reader = strings.NewReader(string(body))
	switch strings.ToLower(h.Get("Content-Transfer-Encoding")) {
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, r)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decode body: %v", err)
	}
	return string(b)
}

func TestSMTP_ImplicitTLSDelivers(t *testing.T) {
	srv := mailtest.New(t, mailtest.Options{ImplicitTLS: true, Username: testUser, Password: testPassword, RequireAuth: true})
	s := newSMTP(t, srv, mail.TLSImplicit, testPassword)
	if err := s.Send(testCtx(t), mail.Message{To: "ada@example.com", Subject: "hello", Text: "hi"}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 || !msgs[0].TLS || msgs[0].AuthUser != testUser {
		t.Fatalf("messages = %+v, want one over TLS, authenticated", msgs)
	}
}

func TestSMTP_RefusesServerWithoutSTARTTLS(t *testing.T) {
	// The server would even take the password in clear: the client must
	// not offer it, nor the message.
	srv := mailtest.New(t, mailtest.Options{DisableSTARTTLS: true, Username: testUser, Password: testPassword, AuthWithoutTLS: true})
	s := newSMTP(t, srv, mail.TLSStartTLS, testPassword)
	err := s.Send(testCtx(t), mail.Message{To: "ada@example.com", Subject: "hello", Text: "secret link"})
	if err == nil {
		t.Fatal("Send succeeded over a connection without STARTTLS")
	}
	if !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("error does not say why: %v", err)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("server received %d messages in clear", n)
	}
	if n := srv.AuthAttempts(); n != 0 {
		t.Errorf("client sent AUTH %d times without TLS", n)
	}
}

func TestSMTP_RefusesUntrustedCertificate(t *testing.T) {
	srv := mailtest.New(t, mailtest.Options{Username: testUser, Password: testPassword})
	s, err := mail.NewSMTP(mail.SMTPOptions{
		Host: srv.Host(), Port: srv.Port(), Username: testUser, Password: testPassword, From: testFrom,
		Timeout: 10 * time.Second, // RootCAs nil: the system's, which do not know the test certificate
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(testCtx(t), mail.Message{To: "ada@example.com", Subject: "hello", Text: "hi"}); err == nil {
		t.Fatal("Send trusted a self-signed certificate")
	}
	if srv.AuthAttempts() != 0 || len(srv.Messages()) != 0 {
		t.Errorf("credentials or message went to an unverified server")
	}
}

func TestSMTP_NoneOnLoopbackDelivers(t *testing.T) {
	srv := mailtest.New(t, mailtest.Options{Username: testUser, Password: testPassword, AuthWithoutTLS: true, RequireAuth: true})
	s := newSMTP(t, srv, mail.TLSNone, testPassword)
	if err := s.Send(testCtx(t), mail.Message{To: "ada@example.com", Subject: "hello", Text: "hi"}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 || msgs[0].TLS || msgs[0].AuthUser != testUser {
		t.Fatalf("messages = %+v, want one in clear, authenticated", msgs)
	}
}

func TestNewSMTP_RefusesInsecureOrIncompleteOptions(t *testing.T) {
	ok := mail.SMTPOptions{Host: "smtp.example.com", From: testFrom, Username: "relay", Password: testPassword}
	tests := []struct {
		name   string
		change func(*mail.SMTPOptions)
		valid  bool
	}{
		{"defaults to starttls", func(o *mail.SMTPOptions) {}, true},
		{"implicit tls", func(o *mail.SMTPOptions) { o.TLS = "tls" }, true},
		{"none to a remote name", func(o *mail.SMTPOptions) { o.TLS = "none" }, false},
		{"none to a private address", func(o *mail.SMTPOptions) { o.TLS = "none"; o.Host = "10.0.0.5" }, false},
		{"none to a public address", func(o *mail.SMTPOptions) { o.TLS = "none"; o.Host = "192.0.2.1" }, false},
		{"none to a name that merely starts with localhost", func(o *mail.SMTPOptions) { o.TLS = "none"; o.Host = "localhost.attacker.example" }, false},
		{"none to 127.0.0.1", func(o *mail.SMTPOptions) { o.TLS = "none"; o.Host = "127.0.0.1" }, true},
		{"none to ::1", func(o *mail.SMTPOptions) { o.TLS = "none"; o.Host = "::1" }, true},
		{"none to localhost", func(o *mail.SMTPOptions) { o.TLS = "none"; o.Host = "localhost" }, true},
		{"unknown tls mode", func(o *mail.SMTPOptions) { o.TLS = "opportunistic" }, false},
		{"no host", func(o *mail.SMTPOptions) { o.Host = "" }, false},
		{"host with port", func(o *mail.SMTPOptions) { o.Host = "smtp.example.com:587" }, false},
		{"host with CRLF", func(o *mail.SMTPOptions) { o.Host = "smtp.example.com\r\nMAIL FROM:<x@y>" }, false},
		{"port out of range", func(o *mail.SMTPOptions) { o.Port = 70000 }, false},
		{"no from", func(o *mail.SMTPOptions) { o.From = "" }, false},
		{"from with CRLF", func(o *mail.SMTPOptions) { o.From = "a@example.com\r\nBcc: b@example.com" }, false},
		{"two froms", func(o *mail.SMTPOptions) { o.From = "a@example.com, b@example.com" }, false},
		{"password without user", func(o *mail.SMTPOptions) { o.Username = "" }, false},
		{"user without password", func(o *mail.SMTPOptions) { o.Password = "" }, false},
		{"no credentials", func(o *mail.SMTPOptions) { o.Username, o.Password = "", "" }, true},
		{"negative timeout", func(o *mail.SMTPOptions) { o.Timeout = -time.Second }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := ok
			tt.change(&o)
			_, err := mail.NewSMTP(o)
			if tt.valid {
				if err != nil {
					t.Fatalf("NewSMTP: %v", err)
				}
				return
			}
			if apperr.CodeOf(err) != apperr.Invalid {
				t.Fatalf("NewSMTP error = %v, want invalid", err)
			}
			if strings.Contains(err.Error(), o.Password) && o.Password != "" {
				t.Errorf("error holds the password: %v", err)
			}
		})
	}
}

// injections are messages that try to add headers or recipients.
var injections = []struct {
	name string
	msg  mail.Message
}{
	{"CRLF in To", mail.Message{To: "ada@example.com\r\nBcc: eve@evil.example", Subject: "s", Text: "t"}},
	{"LF in To", mail.Message{To: "ada@example.com\nBcc: eve@evil.example", Subject: "s", Text: "t"}},
	{"two recipients in To", mail.Message{To: "ada@example.com, eve@evil.example", Subject: "s", Text: "t"}},
	{"CRLF in an encoded display name", mail.Message{To: "=?utf-8?q?Ada=0D=0ABcc:_eve@evil.example?= <ada@example.com>", Subject: "s", Text: "t"}},
	{"not an address", mail.Message{To: "ada", Subject: "s", Text: "t"}},
	{"empty To", mail.Message{To: "", Subject: "s", Text: "t"}},
	{"CRLF in Subject", mail.Message{To: "ada@example.com", Subject: "hi\r\nBcc: eve@evil.example", Text: "t"}},
	{"LF in Subject", mail.Message{To: "ada@example.com", Subject: "hi\nBcc: eve@evil.example", Text: "t"}},
	{"CR in Subject", mail.Message{To: "ada@example.com", Subject: "hi\rBcc: eve@evil.example", Text: "t"}},
	{"NUL in Subject", mail.Message{To: "ada@example.com", Subject: "hi\x00", Text: "t"}},
	{"empty Subject", mail.Message{To: "ada@example.com", Subject: " ", Text: "t"}},
	{"invalid UTF-8 in Text", mail.Message{To: "ada@example.com", Subject: "s", Text: "\xff\xfe"}},
}

func TestSend_RefusesHeaderInjection(t *testing.T) {
	srv := mailtest.New(t, mailtest.Options{Username: testUser, Password: testPassword})
	smtp := newSMTP(t, srv, mail.TLSStartTLS, testPassword)
	dir, err := mail.NewDir(t.TempDir(), testFrom)
	if err != nil {
		t.Fatal(err)
	}
	senders := map[string]mail.Sender{"smtp": smtp, "dir": dir, "log": mail.NewLog(discardLogger())}
	for sname, s := range senders {
		for _, tt := range injections {
			t.Run(sname+"/"+tt.name, func(t *testing.T) {
				err := s.Send(testCtx(t), tt.msg)
				if apperr.CodeOf(err) != apperr.Invalid {
					t.Fatalf("Send error = %v, want invalid", err)
				}
				if len(apperr.FieldsOf(err)) == 0 {
					t.Errorf("error names no field: %v", err)
				}
				for _, f := range apperr.FieldsOf(err) {
					if strings.Contains(f.Message, "@") {
						t.Errorf("field error repeats an address: %+v", f)
					}
				}
			})
		}
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("server received %d messages", n)
	}
	if n := srv.AuthAttempts(); n != 0 {
		t.Errorf("a refused message still opened %d sessions", n)
	}
}

func TestSMTP_WrongPasswordFailsWithoutShowingIt(t *testing.T) {
	srv := mailtest.New(t, mailtest.Options{Username: testUser, Password: testPassword, RequireAuth: true})
	const wrong = "wrong-Secret-Passw0rd!"
	s := newSMTP(t, srv, mail.TLSStartTLS, wrong)
	err := s.Send(testCtx(t), mail.Message{To: "ada@example.com", Subject: "hello", Text: "hi"})
	if err == nil {
		t.Fatal("Send succeeded with a wrong password")
	}
	text := err.Error()
	for _, secret := range []string{
		wrong,
		base64.StdEncoding.EncodeToString([]byte(wrong)),
		base64.StdEncoding.EncodeToString([]byte("\x00" + testUser + "\x00" + wrong)),
		"ada@example.com",
	} {
		if strings.Contains(text, secret) {
			t.Errorf("error holds %q: %s", secret, text)
		}
	}
	if strings.ContainsAny(text, "\r\n") {
		t.Errorf("error is more than one line: %q", text)
	}
	if !strings.Contains(text, "535") {
		t.Errorf("error does not carry the server's reason: %s", text)
	}
	if apperr.CodeOf(err) != apperr.Internal {
		t.Errorf("code = %s, want internal", apperr.CodeOf(err))
	}
	if srv.AuthFailures() != 1 || len(srv.Messages()) != 0 {
		t.Errorf("auth failures = %d, messages = %d; want 1 and 0", srv.AuthFailures(), len(srv.Messages()))
	}
}

func TestSMTP_ConcurrentSendsAllArrive(t *testing.T) {
	srv := mailtest.New(t, mailtest.Options{Username: testUser, Password: testPassword, RequireAuth: true})
	s := newSMTP(t, srv, mail.TLSStartTLS, testPassword)
	const n = 20
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			errs <- s.Send(ctx, mail.Message{
				To:      fmt.Sprintf("user%d@example.com", i),
				Subject: fmt.Sprintf("message %d", i),
				Text:    fmt.Sprintf("body %d", i),
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Send: %v", err)
		}
	}
	msgs, err := srv.WaitFor(ctx, n)
	if err != nil {
		t.Fatalf("WaitFor: %v (got %d)", err, len(msgs))
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		subject := m.Header.Get("Subject")
		want := "user" + strings.TrimPrefix(subject, "message ") + "@example.com"
		if len(m.To) != 1 || m.To[0] != want {
			t.Errorf("%q went to %v, want %s", subject, m.To, want)
		}
		if seen[subject] {
			t.Errorf("%q arrived twice", subject)
		}
		seen[subject] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct messages arrived, want %d", len(seen), n)
	}
}

func TestSMTP_ContextEndsAStalledSession(t *testing.T) {
	// A relay that accepts the connection and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	s, err := mail.NewSMTP(mail.SMTPOptions{Host: "127.0.0.1", Port: port, From: testFrom, Timeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Send(ctx, mail.Message{To: "ada@example.com", Subject: "hello", Text: "hi"}) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Send error = %v, want the context's deadline", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Send ignored its context")
	}
}
