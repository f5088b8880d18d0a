package config

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to the file reader. Whatever the file
// holds, Load must not panic, every error must be one non-empty line, and a
// configuration it accepts must be valid and survive WriteEffective and a
// second Load unchanged (apart from the masked database password).
// The seed corpus is in testdata/fuzz/FuzzLoad.
func FuzzLoad(f *testing.F) {
	noEnv := func(string) string { return "" }
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := load("fuzz.yaml", data, noEnv, nil)
		if err != nil {
			msg := err.Error()
			if len(msg) <= len("config: ") || !strings.HasPrefix(msg, "config: ") || strings.ContainsAny(msg, "\r\n") {
				t.Fatalf("error is not one non-empty \"config: \" line: %q", msg)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("load accepted a configuration that Validate refuses: %v", err)
		}
		var buf bytes.Buffer
		if err := c.WriteEffective(&buf); err != nil {
			t.Fatalf("WriteEffective: %v", err)
		}
		back, err := load("effective.yaml", buf.Bytes(), noEnv, nil)
		if err != nil {
			t.Fatalf("printed configuration does not load: %v\n%s", err, buf.String())
		}
		c.Database.URL = maskDatabaseURL(c.Database.URL)
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("printed configuration loads back as\n%+v\nwant\n%+v\n%s", back, c, buf.String())
		}
	})
}
