package config

import (
	"io"
	"net/url"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// WriteEffective writes c as a YAML configuration file holding every key,
// in the order of Keys, with secrets masked: the password in database.url
// becomes "****" (and any secret key without its own rule is masked whole).
// The output loads back into the same configuration, apart from masked
// secrets.
func (c Config) WriteEffective(w io.Writer) error {
	root := &yaml.Node{Kind: yaml.MappingNode}
	sections := make(map[string]*yaml.Node)
	for i := range table {
		s := &table[i]
		parent, name := root, s.key
		if sec, leaf, ok := strings.Cut(s.key, "."); ok {
			parent = sections[sec]
			if parent == nil {
				parent = &yaml.Node{Kind: yaml.MappingNode}
				sections[sec] = parent
				root.Content = append(root.Content, scalar("!!str", sec), parent)
			}
			name = leaf
		}
		parent.Content = append(parent.Content, scalar("!!str", name), valueNode(s.printed(&c)))
	}
	doc := &yaml.Node{
		Kind:        yaml.DocumentNode,
		HeadComment: "Effective Bulwark configuration. Secrets are masked.",
		Content:     []*yaml.Node{root},
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return err
	}
	return enc.Close()
}

func scalar(tag, v string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: v}
}

// valueNode turns a setting's printed value into YAML.
func valueNode(v any) *yaml.Node {
	switch v := v.(type) {
	case bool:
		return scalar("!!bool", strconv.FormatBool(v))
	case int:
		return scalar("!!int", strconv.Itoa(v))
	case []string:
		n := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for _, item := range v {
			n.Content = append(n.Content, scalar("!!str", item))
		}
		return n
	case string:
		return scalar("!!str", v)
	default:
		panic("config: setting printed an unsupported type") // a bug in the table
	}
}

// maskDatabaseURL replaces the password of a PostgreSQL URL, in the
// user-info part or in a password query parameter, by "****". Anything it
// cannot parse is masked whole, since it might hold a password anywhere.
func maskDatabaseURL(v string) string {
	u, err := url.Parse(v)
	if err != nil || u.Opaque != "" {
		return "****"
	}
	if _, err := url.ParseQuery(u.RawQuery); err != nil {
		return "****"
	}
	masked := false
	if _, has := u.User.Password(); has {
		u.User = url.User(u.User.Username())
		masked = true
	}
	params := strings.Split(u.RawQuery, "&")
	for i, p := range params {
		k, _, _ := strings.Cut(p, "=")
		if name, err := url.QueryUnescape(k); err == nil && strings.Contains(strings.ToLower(name), "password") {
			params[i] = k + "=****"
			masked = true
		}
	}
	if !masked {
		return v
	}
	u.RawQuery = strings.Join(params, "&")
	out := u.String()
	if u.User != nil {
		// "scheme://user@..." becomes "scheme://user:****@...", written by
		// hand because url.URL would escape the asterisks.
		// The first '@' ends the user-info: it cannot hold an unescaped one.
		at := strings.Index(out, "@")
		out = out[:at] + ":****" + out[at:]
	}
	return out
}
