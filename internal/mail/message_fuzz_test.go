package mail

import (
	"bytes"
	"net/mail"
	"slices"
	"testing"
	"time"
)

// FuzzCompose checks that whatever validate accepts cannot add a header or a
// recipient: the written message parses, with exactly the headers compose
// sets and the one recipient given.
func FuzzCompose(f *testing.F) {
	f.Add("ada@example.com", "hello", "text")
	f.Add("Ada <ada@example.com>", "Vérifiez", ".\r\n.\r\n")
	f.Add("=?utf-8?q?Ada=0D=0ABcc:_x@y?= <ada@example.com>", "s", "t")
	f.Add("\"a\\\r\\\nb\"@example.com", "s\tt", "t")
	f.Add("ada@example.com", "hi\r\nBcc: eve@evil.example", "t")
	f.Add("ada@example.com, eve@evil.example", "s", "t")
	from := &mail.Address{Name: "Bulwark", Address: "no-reply@bulwark.example"}
	want := []string{"Content-Transfer-Encoding", "Content-Type", "Date", "From", "Message-Id", "Mime-Version", "Subject", "To"}
	f.Fuzz(func(t *testing.T, to, subject, text string) {
		m := Message{To: to, Subject: subject, Text: text}
		rcpt, err := validate(m)
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if _, err := compose(from, rcpt, m, time.Unix(0, 0)).WriteTo(&buf); err != nil {
			t.Fatalf("WriteTo: %v", err)
		}
		msg, err := mail.ReadMessage(&buf)
		if err != nil {
			t.Fatalf("accepted message does not parse: %v", err)
		}
		var keys []string
		for k, v := range msg.Header {
			keys = append(keys, k)
			if len(v) != 1 {
				t.Errorf("header %s appears %d times", k, len(v))
			}
		}
		slices.Sort(keys)
		if !slices.Equal(keys, want) {
			t.Fatalf("headers = %v, want %v", keys, want)
		}
		list, err := msg.Header.AddressList("To")
		if err != nil || len(list) != 1 || list[0].Address != rcpt.Address {
			t.Fatalf("To = %v (%v), want only %s", list, err, rcpt.Address)
		}
	})
}
