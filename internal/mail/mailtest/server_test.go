package mailtest_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"net"
	"net/smtp"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"bulwark/internal/mail/mailtest"
)

// dial opens a raw session and reads the greeting.
func dial(t *testing.T, srv *mailtest.Server) *textproto.Conn {
	t.Helper()
	c, err := textproto.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	expect(t, c, 220)
	return c
}

// cmd sends one command and checks the reply code.
func cmd(t *testing.T, c *textproto.Conn, code int, format string, args ...any) string {
	t.Helper()
	if err := c.PrintfLine(format, args...); err != nil {
		t.Fatal(err)
	}
	return expect(t, c, code)
}

func expect(t *testing.T, c *textproto.Conn, code int) string {
	t.Helper()
	got, msg, err := c.ReadResponse(0)
	if got != code {
		t.Fatalf("reply %d %q (%v), want %d", got, msg, err, code)
	}
	return msg
}

func TestServer_DotUnstuffsAndParsesTheMessage(t *testing.T) {
	srv := mailtest.New(t, mailtest.Options{})
	c := dial(t, srv)
	cmd(t, c, 250, "EHLO client.example")
	cmd(t, c, 250, "MAIL FROM:<from@example.com> BODY=8BITMIME SIZE=100")
	cmd(t, c, 250, "RCPT TO:<a@example.com>")
	cmd(t, c, 250, "RCPT TO:<b@example.com>")
	cmd(t, c, 354, "DATA")
	for _, l := range []string{"Subject: hi", "To: a@example.com", "", "..one dot", "...two dots", "plain"} {
		if err := c.PrintfLine("%s", l); err != nil {
			t.Fatal(err)
		}
	}
	cmd(t, c, 250, ".")
	cmd(t, c, 221, "QUIT")

	msgs, err := srv.WaitFor(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	m := msgs[0]
	if m.From != "from@example.com" || strings.Join(m.To, ",") != "a@example.com,b@example.com" || m.TLS {
		t.Errorf("envelope = %q %q TLS %v", m.From, m.To, m.TLS)
	}
	if m.Header.Get("Subject") != "hi" {
		t.Errorf("Subject = %q", m.Header.Get("Subject"))
	}
	if want := ".one dot\r\n..two dots\r\nplain\r\n"; string(m.Body) != want {
		t.Errorf("body = %q, want %q", m.Body, want)
	}
}

func TestServer_StandardClientSendsOverSTARTTLSWithAuth(t *testing.T) {
	srv := mailtest.New(t, mailtest.Options{Username: "u", Password: "pw", RequireAuth: true})
	c, err := smtp.Dial(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, _ := c.Extension("AUTH"); ok {
		t.Error("AUTH offered before TLS")
	}
	if err := c.StartTLS(&tls.Config{ServerName: "127.0.0.1", RootCAs: srv.CertPool()}); err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	if err := c.Auth(smtp.PlainAuth("", "u", "pw", "127.0.0.1")); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	if err := c.Mail("from@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("to@example.com"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write([]byte("Subject: s\r\n\r\nbody\r\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_ = c.Quit()
	msgs := srv.Messages()
	if len(msgs) != 1 || !msgs[0].TLS || msgs[0].AuthUser != "u" || string(msgs[0].Body) != "body\r\n" {
		t.Fatalf("messages = %+v", msgs)
	}
}

func TestServer_EnforcesAuthAndOrder(t *testing.T) {
	srv := mailtest.New(t, mailtest.Options{Username: "u", Password: "pw", RequireAuth: true, AuthWithoutTLS: true})
	c := dial(t, srv)
	cmd(t, c, 503, "MAIL FROM:<a@example.com>") // before EHLO
	cmd(t, c, 250, "EHLO client.example")
	cmd(t, c, 530, "MAIL FROM:<a@example.com>")
	cmd(t, c, 535, "AUTH PLAIN %s", base64.StdEncoding.EncodeToString([]byte("\x00u\x00wrong")))
	cmd(t, c, 334, "AUTH PLAIN")
	cmd(t, c, 235, "%s", base64.StdEncoding.EncodeToString([]byte("\x00u\x00pw")))
	cmd(t, c, 503, "RCPT TO:<b@example.com>") // before MAIL
	cmd(t, c, 250, "MAIL FROM:<>")
	cmd(t, c, 503, "MAIL FROM:<a@example.com>") // nested
	cmd(t, c, 503, "DATA")                      // no recipient
	cmd(t, c, 501, "RCPT TO:<Name b@example.com>")
	cmd(t, c, 250, "RSET")
	cmd(t, c, 503, "RCPT TO:<b@example.com>") // RSET ended the transaction
	cmd(t, c, 250, "NOOP")
	cmd(t, c, 500, "TURN")
	cmd(t, c, 221, "QUIT")
	if srv.AuthFailures() != 1 || srv.AuthAttempts() != 2 || len(srv.Messages()) != 0 {
		t.Fatalf("failures %d, attempts %d, messages %d", srv.AuthFailures(), srv.AuthAttempts(), len(srv.Messages()))
	}
}

func TestServer_RefusesAuthBeforeTLS(t *testing.T) {
	srv := mailtest.New(t, mailtest.Options{Username: "u", Password: "pw"})
	c := dial(t, srv)
	cmd(t, c, 250, "EHLO client.example")
	cmd(t, c, 538, "AUTH PLAIN %s", base64.StdEncoding.EncodeToString([]byte("\x00u\x00pw")))
}

func TestServer_WithoutSTARTTLSRefusesIt(t *testing.T) {
	srv := mailtest.New(t, mailtest.Options{DisableSTARTTLS: true})
	c := dial(t, srv)
	if ext := cmd(t, c, 250, "EHLO client.example"); strings.Contains(ext, "STARTTLS") {
		t.Errorf("EHLO advertises STARTTLS: %q", ext)
	}
	cmd(t, c, 502, "STARTTLS")
}

// rawSession returns a connection past the greeting for byte-level tests.
func rawSession(t *testing.T, srv *mailtest.Server) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	if line, _ := r.ReadString('\n'); !strings.HasPrefix(line, "220 ") {
		t.Fatalf("greeting %q", line)
	}
	return conn, r
}

// lastReply reads a possibly multi-line reply and returns its last line.
func lastReply(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read reply: %v", err)
		}
		if len(line) < 4 || line[3] != '-' {
			return line
		}
	}
}

func TestServer_RefusesCommandsPipelinedAfterSTARTTLS(t *testing.T) {
	srv := mailtest.New(t, mailtest.Options{})
	conn, r := rawSession(t, srv)
	_, _ = conn.Write([]byte("EHLO x\r\n"))
	lastReply(t, r)
	// CVE-2011-0411: a man in the middle appends a command in clear.
	_, _ = conn.Write([]byte("STARTTLS\r\nRSET\r\n"))
	if line := lastReply(t, r); !strings.HasPrefix(line, "503 ") {
		t.Fatalf("reply %q, want 503", line)
	}
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("session continued")
	}
}

func TestServer_RefusesBareLFAndLongLines(t *testing.T) {
	tests := []struct {
		name, send string
	}{
		{"bare LF in a command", "NOOP\n"},
		{"bare LF in data", "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nSubject: x\r\n\r\nhidden\n.\nMAIL FROM:<e@evil.example>\r\n.\r\n"},
		{"bare CR in data", "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nSubject: x\r\n\r\nhidden\r.\r\n.\r\n"},
		{"long command", "NOOP " + strings.Repeat("x", 600) + "\r\n"},
		{"long data line", "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n" + strings.Repeat("x", 1200) + "\r\n.\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := mailtest.New(t, mailtest.Options{})
			conn, r := rawSession(t, srv)
			_, _ = conn.Write([]byte("EHLO x\r\n"))
			lastReply(t, r)
			_, _ = conn.Write([]byte(tt.send))
			var last string
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					break
				}
				last = line
			}
			if !strings.HasPrefix(last, "500 ") {
				t.Errorf("last reply %q, want 500 and a hang-up", last)
			}
			if n := len(srv.Messages()); n != 0 {
				t.Errorf("server accepted %d messages", n)
			}
		})
	}
}

func TestServer_RefusesMessagesOverTheSizeLimit(t *testing.T) {
	srv := mailtest.New(t, mailtest.Options{MaxMessageBytes: 100})
	c := dial(t, srv)
	cmd(t, c, 250, "EHLO client.example")
	cmd(t, c, 552, "MAIL FROM:<a@example.com> SIZE=101")
	cmd(t, c, 250, "MAIL FROM:<a@example.com>")
	cmd(t, c, 250, "RCPT TO:<b@example.com>")
	cmd(t, c, 354, "DATA")
	for range 5 {
		_ = c.PrintfLine("%s", strings.Repeat("y", 50))
	}
	cmd(t, c, 552, ".")
	cmd(t, c, 250, "NOOP") // the session goes on
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("server accepted %d messages", n)
	}
}

func TestServer_HangsUpOnIdleClients(t *testing.T) {
	srv := mailtest.New(t, mailtest.Options{Timeout: 100 * time.Millisecond})
	_, r := rawSession(t, srv)
	line, _ := r.ReadString('\n')
	if !strings.HasPrefix(line, "421 ") {
		t.Fatalf("reply %q, want 421", line)
	}
}

func TestServer_CloseEndsOpenSessionsAndWaitForHonoursContext(t *testing.T) {
	srv, err := mailtest.Start(mailtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, r := rawSession(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := srv.WaitFor(ctx, 1); err == nil {
		t.Error("WaitFor returned without a message")
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadString('\n'); err == nil {
		t.Error("session still open after Close")
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
