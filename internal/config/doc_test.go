package config

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the key table in docs/configuration.md from Keys()")

const (
	configurationDoc = "../../docs/configuration.md"
	tableBegin       = "<!-- BEGIN KEYS: generated from config.Keys() by `go test ./internal/config -run TestConfigurationDoc -update` -->"
	tableEnd         = "<!-- END KEYS -->"
)

// keyTable renders Keys() as the Markdown table of docs/configuration.md.
func keyTable() string {
	cell := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	var b strings.Builder
	b.WriteString("| Key | Environment variable | Default | Allowed | Meaning |\n")
	b.WriteString("|---|---|---|---|---|\n")
	for _, k := range Keys() {
		def := "(none)"
		if k.Default != "" {
			def = "`" + cell(k.Default) + "`"
		}
		b.WriteString("| `" + k.Key + "` | `" + k.Env + "` | " + def + " | " + cell(k.Allowed) + " | " + cell(k.Description) + " |\n")
	}
	return b.String()
}

func TestConfigurationDoc_ListsEveryKey(t *testing.T) {
	data, err := os.ReadFile(configurationDoc)
	if err != nil {
		t.Fatalf("docs/configuration.md must document every key: %v", err)
	}
	doc := string(data)
	for _, k := range Keys() {
		if !strings.Contains(doc, "| `"+k.Key+"` | `"+k.Env+"` |") {
			t.Errorf("docs/configuration.md has no table row for %s (%s); run go test ./internal/config -run TestConfigurationDoc -update", k.Key, k.Env)
		}
	}
}

func TestConfigurationDoc_KeyTableMatchesKeys(t *testing.T) {
	data, err := os.ReadFile(configurationDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	before, rest, ok1 := strings.Cut(doc, tableBegin+"\n")
	table, after, ok2 := strings.Cut(rest, tableEnd)
	if !ok1 || !ok2 {
		t.Fatalf("docs/configuration.md lacks the markers %q and %q around the key table", tableBegin, tableEnd)
	}
	want := keyTable()
	if table == want {
		return
	}
	if *update {
		if err := os.WriteFile(configurationDoc, []byte(before+tableBegin+"\n"+want+tableEnd+after), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("the key table in docs/configuration.md is out of date; run go test ./internal/config -run TestConfigurationDoc -update")
}
