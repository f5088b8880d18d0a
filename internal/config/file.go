package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// applyFile reads YAML settings from data (the file name) into c, recording in
// from where each key came from. It decodes into yaml.Node rather than into
// a struct so that it can name unknown keys and the line of every problem.
func applyFile(c *Config, name string, data []byte, from map[string]string) error {
	doc, err := parseYAML(name, data)
	if err != nil || doc == nil {
		return err
	}
	root := doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil
		}
		root = root.Content[0]
	}
	root, err = resolveAlias(name, root)
	if err != nil {
		return err
	}
	if isNull(root) {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		return lineError("%s:%d: expected a mapping of settings at the top level, found %s", name, root.Line, kindName(root))
	}
	r := fileReader{c: c, name: name, from: from}
	return r.mapping(root, "")
}

// parseYAML parses the one YAML document in data; nil means an empty file.
func parseYAML(name string, data []byte) (doc *yaml.Node, err error) {
	defer func() {
		// The YAML library reports malformed input by panicking internally;
		// should one of those escape, it is still just a bad file.
		if p := recover(); p != nil {
			doc, err = nil, lineError("%s:%d: invalid YAML: %v", name, firstBadLine(data), p)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var first yaml.Node
	if err := dec.Decode(&first); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, yamlError(name, data, err)
	}
	var second yaml.Node
	switch err := dec.Decode(&second); {
	case errors.Is(err, io.EOF):
		return &first, nil
	case err != nil:
		return nil, yamlError(name, data, err)
	default:
		return nil, lineError("%s:%d: a second YAML document starts here; the file must hold one", name, second.Line)
	}
}

var (
	yamlLine      = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)
	unknownAnchor = regexp.MustCompile(`unknown anchor '(.*)' referenced`)
)

// parserProblems start the YAML library's parser (not scanner) errors,
// whose "line N" counts from 0 while scanner errors count from 1.
var parserProblems = []string{"did not find expected", "found undefined tag handle", "found duplicate %", "found incompatible YAML document"}

// yamlError turns a YAML syntax error into one line that names the line.
func yamlError(name string, data []byte, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
		for _, p := range parserProblems {
			if strings.HasPrefix(msg, p) {
				line++
				break
			}
		}
		return lineError("%s:%d: invalid YAML: %s", name, line, msg)
	}
	line := firstBadLine(data)
	if m := unknownAnchor.FindStringSubmatch(msg); m != nil {
		if i := bytes.Index(data, []byte("*"+m[1])); i >= 0 {
			line = 1 + bytes.Count(data[:i], []byte("\n"))
		}
	}
	return lineError("%s:%d: invalid YAML: %s", name, line, msg)
}

// firstBadLine guesses the line of an error the YAML library reported
// without one: the first invalid UTF-8 or control character, else line 1
// (the library leaves the line out for errors on the first line).
func firstBadLine(data []byte) int {
	line := 1
	for len(data) > 0 {
		r, size := utf8.DecodeRune(data)
		if r == utf8.RuneError && size <= 1 {
			return line
		}
		if r == '\n' {
			line++
		} else if unicode.IsControl(r) && r != '\t' && r != '\r' {
			return line
		}
		data = data[size:]
	}
	return 1
}

// fileReader walks the document, applying each leaf to the settings table.
type fileReader struct {
	c    *Config
	name string
	from map[string]string
}

// mapping applies the pairs of m; prefix is "" at the top level or the
// section name followed by a dot.
func (r *fileReader) mapping(m *yaml.Node, prefix string) error {
	seen := make(map[string]int)
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return lineError("%s:%d: expected a key name, found %s", r.name, k.Line, kindName(k))
		}
		key := prefix + k.Value
		if line, dup := seen[k.Value]; dup {
			return lineError("%s:%d: key %q appears twice (first on line %d)", r.name, k.Line, key, line)
		}
		seen[k.Value] = k.Line
		if s := lookup(key); s != nil && !strings.Contains(k.Value, ".") {
			if err := r.leaf(s, v); err != nil {
				return err
			}
			continue
		}
		if prefix == "" && slices.Contains(sections(), key) {
			if err := r.section(key, v); err != nil {
				return err
			}
			continue
		}
		if sec, leaf, ok := strings.Cut(key, "."); ok && prefix == "" && lookup(key) != nil {
			return lineError("%s:%d: key %q must be nested: write %q with %q indented under it", r.name, k.Line, key, sec+":", leaf+":")
		}
		where := "known top-level keys"
		if prefix != "" {
			where = "known keys under " + strings.TrimSuffix(prefix, ".")
		}
		return lineError("%s:%d: unknown key %q (%s%s: %s)", r.name, k.Line, key,
			suggestion(key), where, strings.Join(keysUnder(strings.TrimSuffix(prefix, ".")), ", "))
	}
	return nil
}

// section applies a mapping such as tls: {...}.
func (r *fileReader) section(name string, v *yaml.Node) error {
	n, err := resolveAlias(r.name, v)
	if err != nil {
		return err
	}
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return lineError("%s (from %s:%d): expected a mapping of settings (%s), found %s",
			name, r.name, v.Line, strings.Join(keysUnder(name), ", "), kindName(n))
	}
	return r.mapping(n, name+".")
}

// leaf applies one setting's value node.
func (r *fileReader) leaf(s *setting, v *yaml.Node) error {
	where := r.name + ":" + strconv.Itoa(v.Line)
	n, err := resolveAlias(r.name, v)
	if err != nil {
		return err
	}
	var vals []string
	switch {
	case s.list && isNull(n):
		vals = nil
	case s.list && n.Kind == yaml.SequenceNode:
		for _, item := range n.Content {
			item, err := resolveAlias(r.name, item)
			if err != nil {
				return err
			}
			if item.Kind != yaml.ScalarNode {
				return keyError(s.key, where, fmt.Errorf("list items must be single values, found %s", kindName(item)))
			}
			vals = append(vals, item.Value)
		}
	case s.list:
		return keyError(s.key, where, fmt.Errorf("expected a list such as [a, b], found %s", kindName(n)))
	case isNull(n):
		vals = []string{""}
	case n.Kind == yaml.ScalarNode:
		vals = []string{n.Value}
	default:
		return keyError(s.key, where, fmt.Errorf("expected a single value, found %s", kindName(n)))
	}
	if err := s.parse(r.c, vals); err != nil {
		return keyError(s.key, where, err)
	}
	r.from[s.key] = where
	return nil
}

// resolveAlias follows *alias references to the node they name.
func resolveAlias(name string, n *yaml.Node) (*yaml.Node, error) {
	line := n.Line
	for range 16 {
		if n == nil || n.Kind != yaml.AliasNode {
			break
		}
		n = n.Alias
	}
	if n == nil || n.Kind == yaml.AliasNode {
		return nil, lineError("%s:%d: alias cannot be resolved", name, line)
	}
	return n, nil
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a single value"
	case yaml.DocumentNode:
		return "a document"
	default:
		return "an alias"
	}
}

// sections lists the section names (tls, database, ...) in table order.
func sections() []string {
	var out []string
	for _, k := range allKeys() {
		if sec, _, ok := strings.Cut(k, "."); ok && !slices.Contains(out, sec) {
			out = append(out, sec)
		}
	}
	return out
}

// keysUnder lists the names valid inside section ("" for the top level,
// where sections count as names).
func keysUnder(section string) []string {
	var out []string
	for _, k := range allKeys() {
		sec, leaf, nested := strings.Cut(k, ".")
		switch {
		case section == "" && !nested:
			out = append(out, k)
		case section == "" && !slices.Contains(out, sec):
			out = append(out, sec)
		case nested && sec == section:
			out = append(out, leaf)
		}
	}
	return out
}

// suggestion returns `did you mean "x"? ` for a key one or two edits from a
// known key or naming a key's command-line flag, else "".
func suggestion(key string) string {
	best, bestDist := "", 3
	for i := range table {
		k := table[i].key
		if table[i].flag != "" && key == table[i].flag {
			best, bestDist = k, 0
		}
		if d := editDistance(strings.ReplaceAll(key, "-", "_"), k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("did you mean %q? ", best)
}

// editDistance is the Levenshtein distance, counting a swap of neighbours as
// one edit; long inputs are not compared.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30
	}
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
