package mail_test

import (
	"bytes"
	"io/fs"
	"log/slog"
	netmail "net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"bulwark/internal/mail"
)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestDir_WritesEachMessageAsAPrivateEMLFile(t *testing.T) {
	outbox := filepath.Join(t.TempDir(), "mail", "outbox")
	d, err := mail.NewDir(outbox, testFrom)
	if err != nil {
		t.Fatalf("NewDir: %v", err)
	}
	m := mail.Message{To: "ada@example.com", Subject: "Reset your password", Text: "Open https://bulwark.example/reset?t=xyz\n"}
	if err := d.Send(testCtx(t), m); err != nil {
		t.Fatalf("Send: %v", err)
	}

	if fi, err := os.Stat(outbox); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("outbox mode = %v (%v), want 0700", fi.Mode().Perm(), err)
	}
	entries, err := os.ReadDir(outbox)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || !strings.HasSuffix(entries[0].Name(), ".eml") {
		t.Fatalf("outbox holds %v, want one .eml file", names(entries))
	}
	path := filepath.Join(outbox, entries[0].Name())
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode = %v, want 0600", fi.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("file is not a message: %v\n%s", err, raw)
	}
	if to, err := msg.Header.AddressList("To"); err != nil || len(to) != 1 || to[0].Address != "ada@example.com" {
		t.Errorf("To = %v (%v)", to, err)
	}
	if got := msg.Header.Get("Subject"); got != m.Subject {
		t.Errorf("Subject = %q, want %q", got, m.Subject)
	}
	if msg.Header.Get("Message-Id") == "" || msg.Header.Get("Date") == "" {
		t.Errorf("Message-ID or Date missing")
	}
	var body bytes.Buffer
	_, _ = body.ReadFrom(msg.Body)
	if got := decodeBody(t, msg.Header, body.Bytes()); !strings.Contains(got, "https://bulwark.example/reset?t=xyz") {
		t.Errorf("body lost the link: %q", got)
	}
}

func TestDir_ConcurrentSendsWriteDistinctFiles(t *testing.T) {
	outbox := t.TempDir()
	d, err := mail.NewDir(outbox, testFrom)
	if err != nil {
		t.Fatal(err)
	}
	const n = 30
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if err := d.Send(t.Context(), mail.Message{To: "ada@example.com", Subject: "s", Text: "t"}); err != nil {
				t.Errorf("Send: %v", err)
			}
		})
	}
	wg.Wait()
	entries, err := os.ReadDir(outbox)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != n {
		t.Fatalf("outbox holds %d entries, want %d: %v", len(entries), n, names(entries))
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".eml") {
			t.Errorf("left behind %s", e.Name())
		}
	}
}

func TestLog_LogsTheSubjectButNotTheAddressOrBody(t *testing.T) {
	var buf bytes.Buffer
	l := mail.NewLog(slog.New(slog.NewJSONHandler(&buf, nil)))
	err := l.Send(testCtx(t), mail.Message{To: "Ada <ada@example.com>", Subject: "Verify your address", Text: "https://bulwark.example/verify?t=SECRET"})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	out := buf.String()
	if !strings.Contains(out, "Verify your address") {
		t.Errorf("log lacks the subject: %s", out)
	}
	for _, leak := range []string{"ada@example.com", "Ada", "SECRET", "verify?t"} {
		if strings.Contains(out, leak) {
			t.Errorf("log holds %q: %s", leak, out)
		}
	}
}

func names(entries []fs.DirEntry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.Name()
	}
	return out
}
