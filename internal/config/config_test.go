package config

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// env returns a getenv that reads m.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// writeConfig writes content as bulwark.yaml in a fresh directory and
// returns its path.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bulwark.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// assertOneLine fails unless err is a single non-empty "config: " line.
func assertOneLine(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("got no error, want one")
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "config: ") || strings.ContainsAny(msg, "\r\n") {
		t.Fatalf("error is not one line starting with \"config: \": %q", msg)
	}
}

func TestDefault_IsValidAndSecure(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	loopback := func(addr string) bool {
		ap, err := netip.ParseAddrPort(addr)
		return err == nil && ap.Addr().IsLoopback()
	}
	checks := []struct {
		what string
		ok   bool
	}{
		{"public listener on loopback only", loopback(c.Listen)},
		{"ops listener on loopback only", loopback(c.OpsListen)},
		{"TLS on", c.TLS.Mode != TLSOff},
		{"HSTS at least one year", c.TLS.HSTSMaxAge >= 365*24*time.Hour},
		{"ops allowlist not empty", len(c.OpsAllowlist) > 0},
		{"no allow_insecure_* set", !c.AllowInsecureHTTP && !c.AllowInsecureOpsAllowlist && !c.AllowInsecureDatabaseTLS},
		{"SQLite without a URL", c.Database.Driver == DriverSQLite && c.Database.URL == ""},
	}
	for _, p := range c.OpsAllowlist {
		checks = append(checks, struct {
			what string
			ok   bool
		}{"ops allowlist entry " + p.String() + " is loopback", p.Addr().IsLoopback()})
	}
	for _, ch := range checks {
		if !ch.ok {
			t.Errorf("default is not secure: want %s", ch.what)
		}
	}
}

func TestDefault_ReturnsIndependentCopies(t *testing.T) {
	a := Default()
	a.OpsAllowlist[0] = netip.MustParsePrefix("0.0.0.0/0")
	if b := Default(); b.OpsAllowlist[0].Bits() == 0 {
		t.Fatal("changing one Default() changed the next")
	}
}

func TestLoad_NoFileGivesDefaults(t *testing.T) {
	t.Chdir(t.TempDir())
	c, err := Load("", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Fatalf("Load with no file, env or flags = %+v, want the defaults", c)
	}
}

func TestLoad_FlagsOverrideEnvOverrideFile(t *testing.T) {
	const file = "listen: 127.0.0.2:8443\nhttp:\n  read_timeout: 40s\n"
	tests := []struct {
		name       string
		file       string
		env        map[string]string
		flags      map[string]string
		wantListen string
		wantRead   time.Duration
	}{
		{"defaults", "", nil, nil, "127.0.0.1:8443", 30 * time.Second},
		{"file over defaults", file, nil, nil, "127.0.0.2:8443", 40 * time.Second},
		{"env over file", file, map[string]string{"BULWARK_LISTEN": "127.0.0.3:8443"}, nil, "127.0.0.3:8443", 40 * time.Second},
		{"flag over env and file", file,
			map[string]string{"BULWARK_LISTEN": "127.0.0.3:8443", "BULWARK_HTTP_READ_TIMEOUT": "50s"},
			map[string]string{"listen": "127.0.0.4:8443"}, "127.0.0.4:8443", 50 * time.Second},
		{"flag over file", file, nil, map[string]string{"http.read_timeout": "1m"}, "127.0.0.2:8443", time.Minute},
		{"empty env var leaves the file value", file, map[string]string{"BULWARK_LISTEN": ""}, nil, "127.0.0.2:8443", 40 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.file)
			c, err := Load(path, env(tt.env), tt.flags)
			if err != nil {
				t.Fatal(err)
			}
			if c.Listen != tt.wantListen || c.HTTP.ReadTimeout != tt.wantRead {
				t.Fatalf("listen=%s read_timeout=%s, want %s and %s", c.Listen, c.HTTP.ReadTimeout, tt.wantListen, tt.wantRead)
			}
		})
	}
}

func TestLoad_ListsAreCommaSeparatedInEnvAndFlags(t *testing.T) {
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	for _, tc := range []struct {
		name  string
		env   map[string]string
		flags map[string]string
	}{
		{"env", map[string]string{"BULWARK_OPS_ALLOWLIST": "10.0.0.0/8, fd00::/8"}, nil},
		{"flag", nil, map[string]string{"ops_allowlist": "10.0.0.0/8,fd00::/8,"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(writeConfig(t, ""), env(tc.env), tc.flags)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.OpsAllowlist, want) {
				t.Fatalf("ops_allowlist = %v, want %v", c.OpsAllowlist, want)
			}
		})
	}
}

func TestLoad_ReadsEverySectionOfAFile(t *testing.T) {
	path := writeConfig(t, `# a production-like file
data_dir: /srv/bulwark
listen: "[::1]:443"
ops_listen: 127.0.0.1:9000
ops_allowlist: [10.0.0.0/8, 192.168.0.0/16]
tls:
  mode: acme
  acme_domains:
    - bulwark.example.com
  acme_email: ops@example.com
  hsts_max_age: 8760h
database:
  driver: postgres
  url: postgres://bulwark:pw@db.example.com/bulwark?sslmode=verify-full
  max_open_orgs: 50
  org_idle_timeout: 90s
http:
  max_header_bytes: 65536
log:
  level: debug
`)
	c, err := Load(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.DataDir = "/srv/bulwark"
	want.Listen = "[::1]:443"
	want.OpsListen = "127.0.0.1:9000"
	want.OpsAllowlist = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.0.0/16")}
	want.TLS.Mode = TLSACME
	want.TLS.ACMEDomains = []string{"bulwark.example.com"}
	want.TLS.ACMEEmail = "ops@example.com"
	want.TLS.HSTSMaxAge = 365 * 24 * time.Hour
	want.Database.Driver = DriverPostgres
	want.Database.URL = "postgres://bulwark:pw@db.example.com/bulwark?sslmode=verify-full"
	want.Database.MaxOpenOrgs = 50
	want.Database.OrgIdleTimeout = 90 * time.Second
	want.HTTP.MaxHeaderBytes = 65536
	want.Log.Level = "debug"
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
}

func TestLoad_RefusesBadConfigWithOneLineNamingTheKey(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		env   map[string]string
		flags map[string]string
		key   string   // the key the error must name ("" when the problem is not one key's)
		want  []string // further fragments the error must hold
	}{
		{name: "unknown key in a section", file: "tls:\n  mdoe: off\n",
			key: `"tls.mdoe"`, want: []string{"bulwark.yaml:2", "known keys under tls: mode, cert_file", `did you mean "tls.mode"`}},
		{name: "unknown top-level key", file: "lisen: 127.0.0.1:1\n",
			key: `"lisen"`, want: []string{"bulwark.yaml:1", `did you mean "listen"`}},
		{name: "unknown flag", flags: map[string]string{"data": "x"},
			key: `"data"`, want: []string{"flag", `did you mean "data_dir"`}},
		{name: "dotted key at top level", file: "tls.mode: files\n",
			key: `"tls.mode"`, want: []string{"must be nested"}},
		{name: "tls.mode not allowed", env: map[string]string{"BULWARK_TLS_MODE": "plain"},
			key: "tls.mode", want: []string{"(from BULWARK_TLS_MODE)", `"plain" is not one of local, files, acme, off`}},
		{name: "plain HTTP on all interfaces", env: map[string]string{"BULWARK_TLS_MODE": "off"}, flags: map[string]string{"listen": "0.0.0.0:8443"},
			key: "listen", want: []string{"(from flag --listen)", "0.0.0.0:8443 is insecure", "allow_insecure_http: true"}},
		{name: "plain HTTP ops listener on all interfaces", file: "tls:\n  mode: \"off\"\nops_listen: \":9443\"\n",
			key: "ops_listen", want: []string{"bulwark.yaml:3", "allow_insecure_http"}},
		{name: "ops listener on the public address", flags: map[string]string{"ops_listen": "127.0.0.1:8443"},
			key: "ops_listen", want: []string{"own port"}},
		{name: "empty ops allowlist", file: "ops_allowlist: []\n",
			key: "ops_allowlist", want: []string{"empty", "allow_insecure_ops_allowlist"}},
		{name: "ops allowlist of every IPv4 address", env: map[string]string{"BULWARK_OPS_ALLOWLIST": "10.0.0.0/8,0.0.0.0/0"},
			key: "ops_allowlist", want: []string{"0.0.0.0/0 matches every address", "allow_insecure_ops_allowlist"}},
		{name: "ops allowlist of every IPv6 address", file: "ops_allowlist:\n  - ::/0\n",
			key: "ops_allowlist", want: []string{"::/0 matches every address"}},
		{name: "ops allowlist with a public network", file: "ops_allowlist: [203.0.113.0/24]\n",
			key: "ops_allowlist", want: []string{"203.0.113.0/24 is not a private", "allow_insecure_ops_allowlist"}},
		{name: "ops allowlist with a too-wide private network", file: "ops_allowlist: [10.0.0.0/7]\n",
			key: "ops_allowlist", want: []string{"10.0.0.0/7 is not a private"}},
		{name: "malformed CIDR", env: map[string]string{"BULWARK_OPS_ALLOWLIST": "10.0.0.0/33"},
			key: "ops_allowlist", want: []string{"BULWARK_OPS_ALLOWLIST", `"10.0.0.0/33" is not a CIDR prefix`}},
		{name: "CIDR with host bits", file: "ops_allowlist: [10.1.2.3/8]\n",
			key: "ops_allowlist", want: []string{"did you mean 10.0.0.0/8"}},
		{name: "ops allowlist given as one value", file: "ops_allowlist: 10.0.0.0/8\n",
			key: "ops_allowlist", want: []string{"bulwark.yaml:1", "expected a list"}},
		{name: "database without TLS to another host",
			env: map[string]string{"BULWARK_DATABASE_DRIVER": "postgres", "BULWARK_DATABASE_URL": "postgres://b@db.example.com/b?sslmode=disable"},
			key: "database.url", want: []string{"BULWARK_DATABASE_URL", "sslmode=disable", "allow_insecure_database_tls: true"}},
		{name: "database with no sslmode to another host", file: "database:\n  driver: postgres\n  url: postgres://b@10.1.1.1:5432/b\n",
			key: "database.url", want: []string{"bulwark.yaml:3", "no sslmode", "allow_insecure_database_tls"}},
		{name: "database sslmode unknown", file: "database:\n  driver: postgres\n  url: postgres://b@db/b?sslmode=on\n",
			key: "database.url", want: []string{`sslmode "on" is not one of`}},
		{name: "unknown database driver", env: map[string]string{"BULWARK_DATABASE_DRIVER": "mysql"},
			key: "database.driver", want: []string{`"mysql" is not one of sqlite, postgres`}},
		{name: "postgres without url", file: "database:\n  driver: postgres\n",
			key: "database.url", want: []string{"required with database.driver postgres"}},
		{name: "sqlite with url", env: map[string]string{"BULWARK_DATABASE_URL": "postgres://localhost/b"},
			key: "database.url", want: []string{"database.driver is sqlite"}},
		{name: "duration that does not parse", file: "http:\n  read_timeout: soon\n",
			key: "http.read_timeout", want: []string{"bulwark.yaml:2", `"soon" is not a duration`, "30s"}},
		{name: "duration without unit", env: map[string]string{"BULWARK_DATABASE_BUSY_TIMEOUT": "5"},
			key: "database.busy_timeout", want: []string{"not a duration"}},
		{name: "zero timeout", env: map[string]string{"BULWARK_HTTP_IDLE_TIMEOUT": "0s"},
			key: "http.idle_timeout", want: []string{"(from BULWARK_HTTP_IDLE_TIMEOUT)", "greater than 0"}},
		{name: "negative timeout", flags: map[string]string{"database.org_idle_timeout": "-5m"},
			key: "database.org_idle_timeout", want: []string{"flag database.org_idle_timeout", "greater than 0"}},
		{name: "header timeout beyond read timeout", file: "http:\n  read_header_timeout: 1m\n",
			key: "http.read_header_timeout", want: []string{"longer than http.read_timeout"}},
		{name: "HSTS off with TLS on", env: map[string]string{"BULWARK_TLS_HSTS_MAX_AGE": "0s"},
			key: "tls.hsts_max_age", want: []string{"only with tls.mode off"}},
		{name: "port out of range", flags: map[string]string{"listen": "127.0.0.1:70000"},
			key: "listen", want: []string{`port "70000"`, "0..65535"}},
		{name: "address without port", file: "listen: localhost\n",
			key: "listen", want: []string{`"localhost" is not host:port`}},
		{name: "address with a bad host", file: "ops_listen: \"bad_host!:9443\"\n",
			key: "ops_listen", want: []string{"not an IP address or host name"}},
		{name: "files mode without certificate", env: map[string]string{"BULWARK_TLS_MODE": "files"},
			key: "tls.cert_file", want: []string{"required with tls.mode files"}},
		{name: "certificate without files mode", file: "tls:\n  cert_file: /etc/cert.pem\n",
			key: "tls.cert_file", want: []string{`tls.mode is "local"`}},
		{name: "acme mode without domains", env: map[string]string{"BULWARK_TLS_MODE": "acme"},
			key: "tls.acme_domains", want: []string{"required with tls.mode acme"}},
		{name: "acme wildcard domain", file: "tls:\n  mode: acme\n  acme_domains: [\"*.example.com\"]\n",
			key: "tls.acme_domains", want: []string{`"*.example.com" is not a public DNS name`}},
		{name: "acme directory over http", env: map[string]string{"BULWARK_TLS_ACME_DIRECTORY_URL": "http://acme.example.com/dir"},
			key: "tls.acme_directory_url", want: []string{"must use https"}},
		{name: "integer that is not a number", file: "database:\n  max_open_orgs: many\n",
			key: "database.max_open_orgs", want: []string{"bulwark.yaml:2", `"many" is not a whole number`, "1..100000"}},
		{name: "integer out of range", env: map[string]string{"BULWARK_DATABASE_MAX_OPEN_ORGS": "0"},
			key: "database.max_open_orgs", want: []string{"0 is out of range; allowed 1..100000"}},
		{name: "bool that is not a bool", file: "allow_insecure_http: maybe\n",
			key: "allow_insecure_http", want: []string{`"maybe" is not true or false`}},
		{name: "log level", flags: map[string]string{"log.level": "verbose"},
			key: "log.level", want: []string{"debug, info, warn, error"}},
		{name: "section given as a value", file: "tls: on\n",
			key: "tls", want: []string{"bulwark.yaml:1", "expected a mapping"}},
		{name: "value given as a mapping", file: "listen:\n  host: x\n",
			key: "listen", want: []string{"expected a single value, found a mapping"}},
		{name: "key given twice", file: "listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n",
			key: `"listen"`, want: []string{"bulwark.yaml:2", "twice", "line 1"}},
		{name: "empty data dir", env: map[string]string{"BULWARK_DATA_DIR": " "},
			key: "data_dir", want: []string{"must not be empty"}},
		{name: "YAML that does not parse", file: "listen: 127.0.0.1:1\ntls:\n  mode: [local\n",
			want: []string{"bulwark.yaml:3: invalid YAML"}},
		{name: "YAML list item among keys", file: "listen: 127.0.0.1:1\ndata_dir: x\n- y\n",
			want: []string{"bulwark.yaml:3: invalid YAML"}},
		{name: "YAML string that does not end", file: "listen: 127.0.0.1:1\ndata_dir: \"x\n",
			want: []string{"bulwark.yaml:2: invalid YAML"}},
		{name: "YAML alias to an unknown anchor", file: "listen: 127.0.0.1:1\ndata_dir: *dir\n",
			want: []string{"bulwark.yaml:2: invalid YAML", "dir"}},
		{name: "YAML with invalid UTF-8", file: "listen: 127.0.0.1:1\ndata_dir: \xff\n",
			want: []string{"bulwark.yaml:2: invalid YAML"}},
		{name: "YAML error on the first line", file: "a: b: c\n",
			want: []string{"bulwark.yaml:1: invalid YAML"}},
		{name: "two YAML documents", file: "listen: 127.0.0.1:1\n---\nlisten: 127.0.0.1:2\n",
			want: []string{"bulwark.yaml:2", "one"}},
		{name: "top level is a list", file: "- listen\n",
			want: []string{"bulwark.yaml:1", "expected a mapping"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeConfig(t, tt.file), env(tt.env), tt.flags)
			assertOneLine(t, err)
			t.Log(err)
			for _, w := range append([]string{tt.key}, tt.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoad_AllowInsecureLetsOnlyItsSettingThrough(t *testing.T) {
	allows := []string{"allow_insecure_http", "allow_insecure_ops_allowlist", "allow_insecure_database_tls"}
	tests := []struct {
		name  string
		env   map[string]string
		allow string
		took  func(Config) bool // the insecure setting is in effect
	}{
		{"plain HTTP on all interfaces", map[string]string{"BULWARK_TLS_MODE": "off", "BULWARK_TLS_HSTS_MAX_AGE": "0s", "BULWARK_LISTEN": "0.0.0.0:8080"},
			"allow_insecure_http", func(c Config) bool { return c.TLS.Mode == TLSOff && c.Listen == "0.0.0.0:8080" }},
		{"plain HTTP ops listener", map[string]string{"BULWARK_TLS_MODE": "off", "BULWARK_OPS_LISTEN": "[::]:9090"},
			"allow_insecure_http", func(c Config) bool { return c.OpsListen == "[::]:9090" }},
		{"ops allowlist open to all", map[string]string{"BULWARK_OPS_ALLOWLIST": "0.0.0.0/0,::/0"},
			"allow_insecure_ops_allowlist", func(c Config) bool { return len(c.OpsAllowlist) == 2 && c.OpsAllowlist[0].Bits() == 0 }},
		{"ops allowlist with a public network", map[string]string{"BULWARK_OPS_ALLOWLIST": "198.51.100.7/32"},
			"allow_insecure_ops_allowlist", func(c Config) bool { return c.OpsAllowlist[0].String() == "198.51.100.7/32" }},
		{"database without TLS", map[string]string{"BULWARK_DATABASE_DRIVER": "postgres", "BULWARK_DATABASE_URL": "postgres://b:pw@db.example.com/b?sslmode=disable"},
			"allow_insecure_database_tls", func(c Config) bool { return strings.Contains(c.Database.URL, "sslmode=disable") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeConfig(t, ""), env(tt.env), nil)
			assertOneLine(t, err)
			if !strings.Contains(err.Error(), tt.allow) {
				t.Fatalf("refusal %q does not name %s", err, tt.allow)
			}
			for _, other := range allows {
				if other == tt.allow {
					continue
				}
				_, err := Load(writeConfig(t, ""), env(tt.env), map[string]string{other: "true"})
				if err == nil {
					t.Errorf("%s let an insecure setting through that needs %s", other, tt.allow)
				}
			}
			c, err := Load(writeConfig(t, tt.allow+": true\n"), env(tt.env), nil)
			if err != nil {
				t.Fatalf("with %s: true: %v", tt.allow, err)
			}
			if !tt.took(c) {
				t.Fatalf("with %s: true the setting is not in effect: %+v", tt.allow, c)
			}
		})
	}
}

func TestLoad_LoopbackNeedsNoAllowInsecure(t *testing.T) {
	tests := []map[string]string{
		{"BULWARK_TLS_MODE": "off", "BULWARK_TLS_HSTS_MAX_AGE": "0s", "BULWARK_LISTEN": "localhost:8080", "BULWARK_OPS_LISTEN": "[::1]:9090"},
		{"BULWARK_DATABASE_DRIVER": "postgres", "BULWARK_DATABASE_URL": "postgres://b@127.0.0.1:5432/b?sslmode=disable"},
		{"BULWARK_DATABASE_DRIVER": "postgres", "BULWARK_DATABASE_URL": "postgres:///b?host=/run/postgresql"},
		{"BULWARK_OPS_ALLOWLIST": "172.16.0.0/12,fd12:3456::/32,192.168.1.10/32"},
	}
	for _, e := range tests {
		if _, err := Load(writeConfig(t, ""), env(e), nil); err != nil {
			t.Errorf("%v: %v", e, err)
		}
	}
}

func TestLoad_ConfigFileFromBULWARK_CONFIG(t *testing.T) {
	fromEnv := writeConfig(t, "listen: 127.0.0.5:8443\n")
	fromFlag := writeConfig(t, "listen: 127.0.0.6:8443\n")

	c, err := Load("", env(map[string]string{"BULWARK_CONFIG": fromEnv}), nil)
	if err != nil || c.Listen != "127.0.0.5:8443" {
		t.Fatalf("BULWARK_CONFIG: listen=%q err=%v, want the file's 127.0.0.5:8443", c.Listen, err)
	}
	c, err = Load(fromFlag, env(map[string]string{"BULWARK_CONFIG": fromEnv}), nil)
	if err != nil || c.Listen != "127.0.0.6:8443" {
		t.Fatalf("--config over BULWARK_CONFIG: listen=%q err=%v, want 127.0.0.6:8443", c.Listen, err)
	}
}

func TestLoad_GivenConfigFileMustExist(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	tests := []struct {
		name string
		path string
		env  map[string]string
		want string
	}{
		{"--config", missing, nil, "(from --config) does not exist"},
		{"BULWARK_CONFIG", "", map[string]string{"BULWARK_CONFIG": missing}, "(from BULWARK_CONFIG) does not exist"},
		{"a directory", t.TempDir(), nil, "cannot be read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.path, env(tt.env), nil)
			assertOneLine(t, err)
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.path+tt.env["BULWARK_CONFIG"]) {
				t.Fatalf("error %q does not name the file and say %q", err, tt.want)
			}
		})
	}
}

func TestLoad_ReadsBulwarkYAMLInWorkingDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bulwark.yaml"), []byte("tls:\n  mdoe: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	_, err := Load("", nil, nil)
	assertOneLine(t, err)
	if !strings.Contains(err.Error(), "bulwark.yaml:2") {
		t.Fatalf("./bulwark.yaml was not read: %v", err)
	}
}

func TestLoad_RefusesOversizedFile(t *testing.T) {
	_, err := Load(writeConfig(t, "# "+strings.Repeat("x", maxFileSize)+"\n"), nil, nil)
	assertOneLine(t, err)
	if !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("error %q does not say the file is too large", err)
	}
}

func TestValidate_NamesTheKeyOfACodeBuiltConfig(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		key    string
	}{
		{"zero config", func(c *Config) { *c = Config{} }, "data_dir:"},
		{"zero prefix", func(c *Config) { c.OpsAllowlist = []netip.Prefix{{}} }, "ops_allowlist:"},
		{"zero max header bytes", func(c *Config) { c.HTTP.MaxHeaderBytes = 0 }, "http.max_header_bytes:"},
		{"ACME email", func(c *Config) { c.TLS.ACMEEmail = "Ops <ops@example.com>" }, "tls.acme_email:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.change(&c)
			err := c.Validate()
			assertOneLine(t, err)
			if !strings.HasPrefix(err.Error(), "config: "+tt.key) {
				t.Fatalf("error %q does not start with the key %s", err, tt.key)
			}
		})
	}
}

func TestWriteEffective_PrintsEveryKeyAndLoadsBack(t *testing.T) {
	c := Default()
	c.TLS.Mode = TLSFiles
	c.TLS.CertFile = "/etc/bulwark/cert.pem"
	c.TLS.KeyFile = "/etc/bulwark/key.pem"
	c.HTTP.ReadTimeout = 1500 * time.Millisecond
	c.HTTP.ReadHeaderTimeout = time.Second
	c.Log.Level = "warn"
	c.Database.Driver = DriverPostgres
	c.Database.URL = "postgres://bulwark@localhost/bulwark"

	var buf bytes.Buffer
	if err := c.WriteEffective(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, k := range Keys() {
		sec, leaf, nested := strings.Cut(k.Key, ".")
		if nested && (!strings.Contains(out, "\n"+sec+":\n") || !strings.Contains(out, "\n  "+leaf+":")) {
			t.Errorf("output lacks %s", k.Key)
		}
		if !nested && !strings.Contains(out, "\n"+k.Key+":") {
			t.Errorf("output lacks %s", k.Key)
		}
	}
	back, err := Load(writeConfig(t, out), nil, nil)
	if err != nil {
		t.Fatalf("loading the printed configuration: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(back, c) {
		t.Fatalf("printed configuration loads back as\n%+v\nwant\n%+v", back, c)
	}
}

func TestWriteEffective_MasksDatabasePassword(t *testing.T) {
	const secret = "s3cr3t-pw"
	tests := []struct {
		url  string
		want string
	}{
		{"postgres://bulwark:" + secret + "@db.internal:5432/bulwark?sslmode=verify-full",
			"url: postgres://bulwark:****@db.internal:5432/bulwark?sslmode=verify-full"},
		{"postgresql://db.internal/bulwark?sslmode=require&password=" + secret + "&user=bulwark",
			"url: postgresql://db.internal/bulwark?sslmode=require&password=****&user=bulwark"},
		{"postgres://:" + secret + "@db.internal/bulwark?sslpassword=" + secret,
			"url: postgres://:****@db.internal/bulwark?sslpassword=****"},
		{"postgres://bulwark:" + secret + "@db internal:bad/", "url: '****'"},
		{"postgres:bulwark:" + secret + "@db.internal", "url: '****'"},
		{"postgres://bulwark@db.internal/bulwark", "url: postgres://bulwark@db.internal/bulwark"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			c := Default()
			c.Database.Driver = DriverPostgres
			c.Database.URL = tt.url
			var buf bytes.Buffer
			if err := c.WriteEffective(&buf); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(buf.String(), secret) {
				t.Fatalf("password printed:\n%s", buf.String())
			}
			if !strings.Contains(buf.String(), tt.want) {
				t.Fatalf("output lacks %q:\n%s", tt.want, buf.String())
			}
		})
	}
}

func TestLoad_ErrorsNeverShowTheDatabasePassword(t *testing.T) {
	const secret = "s3cr3t-pw"
	urls := []string{
		"postgres://bulwark:" + secret + "@db.example.com/b?sslmode=disable",
		"postgres://bulwark:" + secret + "@db.example.com/b",
		"mysql://bulwark:" + secret + "@db.example.com/b",
		"postgres://bulwark:" + secret + "@[::1/b",
		"postgres://bulwark:" + secret + "@db/b?sslmode=" + secret,
		"bulwark:" + secret + "@db.example.com",
		"postgres://db/b?password=" + secret + "&x=%zz",
		"postgres://bulwark:" + secret + "\n@db/b",
	}
	for _, u := range urls {
		for _, driver := range []string{DriverPostgres, DriverSQLite} {
			_, err := Load(writeConfig(t, ""), env(map[string]string{"BULWARK_DATABASE_DRIVER": driver, "BULWARK_DATABASE_URL": u}), nil)
			if driver == DriverPostgres && strings.Contains(u, "sslmode="+secret) {
				// An sslmode value is not a password; it may be shown.
				continue
			}
			assertOneLine(t, err)
			if strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "database.url") {
				t.Errorf("driver %s, url %q: error %q shows the password or does not name database.url", driver, u, err)
			}
		}
	}
}

func TestKeys_DescribeEveryKey(t *testing.T) {
	keys := Keys()
	seen := make(map[string]bool)
	for _, k := range keys {
		if seen[k.Key] {
			t.Errorf("%s listed twice", k.Key)
		}
		seen[k.Key] = true
		wantEnv := "BULWARK_" + strings.ToUpper(strings.ReplaceAll(k.Key, ".", "_"))
		if k.Env != wantEnv || k.Allowed == "" || k.Description == "" {
			t.Errorf("%+v: want env %s, allowed values and a description", k, wantEnv)
		}
		if k.Secret != (k.Key == "database.url" || k.Key == "keys.vault_token" || k.Key == "mail.smtp_password") {
			t.Errorf("%s: Secret = %v", k.Key, k.Secret)
		}
	}
	for _, want := range []string{"data_dir", "listen", "ops_listen", "ops_allowlist", "tls.mode", "tls.hsts_max_age",
		"database.driver", "database.url", "http.max_header_bytes", "log.level",
		"allow_insecure_http", "allow_insecure_ops_allowlist", "allow_insecure_database_tls"} {
		if !seen[want] {
			t.Errorf("Keys() lacks %s", want)
		}
	}
}

func TestKeys_VaultTokenNeverPrintedNorEchoed(t *testing.T) {
	const token = "hvs.s3cr3t-t0ken"
	env := map[string]string{
		"BULWARK_KEYS_PROVIDER":       "vault",
		"BULWARK_KEYS_VAULT_ADDRESS":  "https://vault.internal:8200",
		"BULWARK_KEYS_VAULT_TOKEN":    token,
		"BULWARK_KEYS_VAULT_KEY_PATH": "transit/keys/bulwark",
	}
	c, err := Load("", func(k string) string { return env[k] }, nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	if err := c.WriteEffective(&buf); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), token) || !strings.Contains(buf.String(), "vault_token: '****'") {
		t.Fatalf("effective config shows the token or does not mask it:\n%s", buf.String())
	}
	env["BULWARK_KEYS_VAULT_TOKEN"] = token + "\x00"
	_, err = Load("", func(k string) string { return env[k] }, nil)
	if err == nil || strings.Contains(err.Error(), token) || !strings.Contains(err.Error(), "keys.vault_token") {
		t.Fatalf("a bad token gave %v: want an error naming the key without its value", err)
	}
}

func TestKeys_ProviderSettingsAreChecked(t *testing.T) {
	cases := []struct {
		env map[string]string
		key string
	}{
		{map[string]string{"BULWARK_KEYS_PROVIDER": "hsm"}, "keys.provider"},
		{map[string]string{"BULWARK_KEYS_PROVIDER": "vault", "BULWARK_KEYS_VAULT_TOKEN": "t", "BULWARK_KEYS_VAULT_KEY_PATH": "transit/keys/b"}, "keys.vault_address"},
		{map[string]string{"BULWARK_KEYS_PROVIDER": "vault", "BULWARK_KEYS_VAULT_ADDRESS": "http://vault.example.com", "BULWARK_KEYS_VAULT_TOKEN": "t", "BULWARK_KEYS_VAULT_KEY_PATH": "transit/keys/b"}, "keys.vault_address"},
		{map[string]string{"BULWARK_KEYS_PROVIDER": "vault", "BULWARK_KEYS_VAULT_ADDRESS": "https://v", "BULWARK_KEYS_VAULT_KEY_PATH": "transit/keys/b"}, "keys.vault_token"},
		{map[string]string{"BULWARK_KEYS_PROVIDER": "vault", "BULWARK_KEYS_VAULT_ADDRESS": "https://v", "BULWARK_KEYS_VAULT_TOKEN": "t", "BULWARK_KEYS_VAULT_KEY_PATH": "transit/b"}, "keys.vault_key_path"},
		{map[string]string{"BULWARK_KEYS_PROVIDER": "awskms"}, "keys.kms_key_uri"},
		{map[string]string{"BULWARK_KEYS_PROVIDER": "gcpkms", "BULWARK_KEYS_KMS_KEY_URI": "aws-kms://arn:aws:kms:eu-west-1:1:key/x"}, "keys.kms_key_uri"},
		{map[string]string{"BULWARK_KEYS_PROVIDER": "awskms", "BULWARK_KEYS_KMS_KEY_URI": "aws-kms://arn:aws:kms:eu-west-1:1:key/x", "BULWARK_KEYS_KMS_ENDPOINT": "http://kms.example.com"}, "keys.kms_endpoint"},
		{map[string]string{"BULWARK_KEYS_KMS_ENDPOINT": "not a url"}, "keys.kms_endpoint"},
		{map[string]string{"BULWARK_KEYS_CACHE_TTL": "0s"}, "keys.cache_ttl"},
		{map[string]string{"BULWARK_KEYS_CACHE_SIZE": "0"}, "keys.cache_size"},
	}
	for _, c := range cases {
		_, err := Load("", func(k string) string { return c.env[k] }, nil)
		if err == nil {
			t.Errorf("%v: accepted", c.env)
			continue
		}
		assertOneLine(t, err)
		if !strings.Contains(err.Error(), c.key) {
			t.Errorf("%v: error %q does not name %s", c.env, err, c.key)
		}
	}
	ok := map[string]string{"BULWARK_KEYS_PROVIDER": "vault", "BULWARK_KEYS_VAULT_ADDRESS": "http://127.0.0.1:8200",
		"BULWARK_KEYS_VAULT_TOKEN": "t", "BULWARK_KEYS_VAULT_KEY_PATH": "transit/keys/bulwark"}
	if _, err := Load("", func(k string) string { return ok[k] }, nil); err != nil {
		t.Fatalf("a loopback dev Vault is refused: %v", err)
	}
}

func TestAuthAndMailSettingsAreChecked(t *testing.T) {
	for env, key := range map[string]string{
		"BULWARK_PUBLIC_URL=http://api.example.com":     "public_url",
		"BULWARK_PUBLIC_URL=https://api.example.com/x?": "public_url",
		"BULWARK_AUTH_ACCESS_TOKEN_TTL=5s":              "auth.access_token_ttl",
		"BULWARK_AUTH_ARGON2_MEMORY_KIB=1024":           "auth.argon2_memory_kib",
		"BULWARK_MAIL_SMTP_TLS=maybe":                   "mail.smtp_tls",
		"BULWARK_MAIL_SMTP_PORT=0":                      "mail.smtp_port",
	} {
		k, v, _ := strings.Cut(env, "=")
		_, err := Load("", func(name string) string {
			if name == k {
				return v
			}
			return ""
		}, nil)
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: %v, want an error naming %s", env, err, key)
		}
	}
	c, err := Load("", func(name string) string {
		return map[string]string{"BULWARK_PUBLIC_URL": "https://api.example.com", "BULWARK_MAIL_SMTP_PASSWORD": "s3cret-relay"}[name]
	}, nil)
	if err != nil || c.PublicURL != "https://api.example.com" || c.Mail.SMTPPassword != "s3cret-relay" {
		t.Fatalf("good settings: %+v, %v", c, err)
	}
}
