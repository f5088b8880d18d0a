package edge

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/acme"
)

// startTLS serves a tiny handler with cfg on a real http.Server and returns
// its address.
func startTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, r.Proto)
		}),
		TLSConfig:         cfg,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          nil,
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func caPool(t *testing.T, path string) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("ca.pem holds no certificate")
	}
	return pool
}

func localServer(t *testing.T, dataDir string) (*TLSResult, string) {
	t.Helper()
	res, err := ServerTLS(context.Background(), TLSOptions{Mode: ModeLocal}, dataDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res, startTLS(t, res.Config)
}

func TestServerTLS_LocalModeRefusesWeakClients(t *testing.T) {
	res, addr := localServer(t, t.TempDir())
	roots := caPool(t, res.CAPath)
	cases := []struct {
		name        string
		client      *tls.Config
		wantVersion uint16 // 0: the handshake must fail
	}{
		{"TLS 1.1 at most is refused", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, 0},
		{"TLS 1.2 with only CBC suites is refused", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
			tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_128_CBC_SHA,
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}}, 0},
		{"TLS 1.2 with only RSA key exchange is refused", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{
			tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384}}, 0},
		{"TLS 1.2 with ECDHE-GCM is accepted", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}, tls.VersionTLS12},
		{"TLS 1.2 with ECDHE-ChaCha20 is accepted", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}}, tls.VersionTLS12},
		{"a default client gets TLS 1.3", &tls.Config{}, tls.VersionTLS13},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.client.RootCAs = roots
			c.client.ServerName = "localhost"
			conn, err := tls.Dial("tcp", addr, c.client)
			if c.wantVersion == 0 {
				if err == nil {
					conn.Close()
					t.Fatal("handshake succeeded")
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake failed: %v", err)
			}
			defer conn.Close()
			if got := conn.ConnectionState().Version; got != c.wantVersion {
				t.Fatalf("version %x, want %x", got, c.wantVersion)
			}
		})
	}
}

func TestServerTLS_LocalModeServesHTTP2(t *testing.T) {
	res, addr := localServer(t, t.TempDir())
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: caPool(t, res.CAPath)},
		ForceAttemptHTTP2: true,
	}}
	defer client.CloseIdleConnections()
	_, port, _ := net.SplitHostPort(addr)
	for _, host := range []string{"localhost", "127.0.0.1"} {
		resp, err := client.Get("https://" + host + ":" + port + "/")
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || string(body) != "HTTP/2.0" {
			t.Fatalf("%s: protocol %s, body %q; want HTTP/2", host, resp.Proto, body)
		}
	}
}

func TestServerTLS_LocalLeafVerifiesAgainstCA(t *testing.T) {
	dir := t.TempDir()
	res, err := ServerTLS(context.Background(), TLSOptions{Mode: ModeLocal}, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	leafPair, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls", "cert.pem"), filepath.Join(dir, "tls", "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	leaf := leafPair.Leaf
	for _, name := range []string{"localhost", "127.0.0.1", "::1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: caPool(t, res.CAPath)}); err != nil {
			t.Errorf("leaf does not verify for %s: %v", name, err)
		}
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life > 397*24*time.Hour {
		t.Errorf("leaf lifetime %v exceeds 397 days", life)
	}
	caPair, err := tls.LoadX509KeyPair(res.CAPath, filepath.Join(dir, "tls", "ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if caPair.Leaf.Subject.CommonName != "Bulwark local CA" || !caPair.Leaf.IsCA {
		t.Errorf("CA subject %q, IsCA %v", caPair.Leaf.Subject.CommonName, caPair.Leaf.IsCA)
	}
	if life := caPair.Leaf.NotAfter.Sub(time.Now()); life < 9*365*24*time.Hour {
		t.Errorf("CA valid for %v only, want about 10 years", life)
	}
	for _, f := range []struct {
		path string
		perm os.FileMode
	}{
		{filepath.Join(dir, "tls"), 0o700},
		{filepath.Join(dir, "tls", "ca-key.pem"), 0o600},
		{filepath.Join(dir, "tls", "key.pem"), 0o600},
	} {
		fi, err := os.Stat(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != f.perm {
			t.Errorf("%s mode %v, want %v", f.path, fi.Mode().Perm(), f.perm)
		}
	}
}

func TestServerTLS_LocalRestartReusesCAAndLeaf(t *testing.T) {
	dir := t.TempDir()
	if _, err := ServerTLS(context.Background(), TLSOptions{Mode: ModeLocal}, dir, nil); err != nil {
		t.Fatal(err)
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, "tls", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ca, cert := read("ca.pem"), read("cert.pem")
	res, err := ServerTLS(context.Background(), TLSOptions{Mode: ModeLocal}, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ca, read("ca.pem")) || !bytes.Equal(cert, read("cert.pem")) {
		t.Fatal("a restart replaced the CA or the leaf")
	}
	// A client that trusted the first CA still connects.
	addr := startTLS(t, res.Config)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("client trusting the first CA: %v", err)
	}
	conn.Close()
}

func TestServerTLS_LocalRegeneratesDamagedFiles(t *testing.T) {
	cases := []struct {
		name      string
		damage    func(dir string)
		wantNewCA bool
	}{
		{"missing leaf", func(dir string) { os.Remove(filepath.Join(dir, "cert.pem")) }, false},
		{"unparseable leaf", func(dir string) { os.WriteFile(filepath.Join(dir, "cert.pem"), []byte("junk"), 0o644) }, false},
		{"leaf key of another pair", func(dir string) {
			os.WriteFile(filepath.Join(dir, "key.pem"), mustRead(filepath.Join(dir, "ca-key.pem")), 0o600)
		}, false},
		{"missing CA", func(dir string) { os.Remove(filepath.Join(dir, "ca.pem")) }, true},
		{"unparseable CA key", func(dir string) { os.WriteFile(filepath.Join(dir, "ca-key.pem"), []byte("junk"), 0o600) }, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dataDir := t.TempDir()
			dir := filepath.Join(dataDir, "tls")
			if _, err := ServerTLS(context.Background(), TLSOptions{Mode: ModeLocal}, dataDir, nil); err != nil {
				t.Fatal(err)
			}
			oldCA := mustRead(filepath.Join(dir, "ca.pem"))
			c.damage(dir)
			res, err := ServerTLS(context.Background(), TLSOptions{Mode: ModeLocal}, dataDir, nil)
			if err != nil {
				t.Fatal(err)
			}
			if gotNew := !bytes.Equal(oldCA, mustRead(filepath.Join(dir, "ca.pem"))); gotNew != c.wantNewCA {
				t.Fatalf("new CA = %v, want %v", gotNew, c.wantNewCA)
			}
			addr := startTLS(t, res.Config)
			conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: caPool(t, res.CAPath), ServerName: "localhost"})
			if err != nil {
				t.Fatalf("handshake after repair: %v", err)
			}
			conn.Close()
		})
	}
}

func TestLocalCert_RenewsExpiringLeafAndExpiredCA(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	lc, err := loadOrCreateLocal(dir, discard(), func() time.Time { return start })
	if err != nil {
		t.Fatal(err)
	}
	first, _ := lc.getCertificate(nil)
	// 380 days later the leaf has less than 30 days left: a handshake renews it
	// under the same CA.
	lc.now = func() time.Time { return start.Add(380 * 24 * time.Hour) }
	renewed, _ := lc.getCertificate(nil)
	if renewed.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) == 0 {
		t.Fatal("leaf near expiry was not renewed")
	}
	if err := renewed.Leaf.CheckSignatureFrom(lc.ca); err != nil {
		t.Fatalf("renewed leaf not signed by the CA: %v", err)
	}
	oldCA := lc.ca
	// Past the CA's ten years, a start creates a new CA.
	later, err := loadOrCreateLocal(dir, discard(), func() time.Time { return start.Add(11 * 365 * 24 * time.Hour) })
	if err != nil {
		t.Fatal(err)
	}
	if later.ca.Equal(oldCA) {
		t.Fatal("expired CA was reused")
	}
}

func TestServerTLS_FilesModeReloadsChangedFiles(t *testing.T) {
	// Two certificate pairs from the local CA machinery.
	src1, src2 := t.TempDir(), t.TempDir()
	for _, d := range []string{src1, src2} {
		if _, err := ServerTLS(context.Background(), TLSOptions{Mode: ModeLocal}, d, nil); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	install := func(src string) {
		os.WriteFile(certPath, mustRead(filepath.Join(src, "tls", "cert.pem")), 0o644)
		os.WriteFile(keyPath, mustRead(filepath.Join(src, "tls", "key.pem")), 0o600)
	}
	install(src1)
	res, err := ServerTLS(context.Background(), TLSOptions{Mode: ModeFiles, CertFile: certPath, KeyFile: keyPath}, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c1, _ := res.Config.GetCertificate(&tls.ClientHelloInfo{})

	fc, err := newFileCert(certPath, keyPath, discard())
	if err != nil {
		t.Fatal(err)
	}
	fc.every = 0
	install(src2)
	// Give the files a modification time the stamp can tell apart.
	future := time.Now().Add(time.Minute)
	os.Chtimes(certPath, future, future)
	os.Chtimes(keyPath, future, future)
	c2, _ := fc.getCertificate(nil)
	if c1.Leaf.Equal(c2.Leaf) {
		t.Fatal("changed files were not reloaded")
	}
	// A broken rewrite keeps the last good pair.
	os.WriteFile(keyPath, []byte("junk"), 0o600)
	os.Chtimes(keyPath, future.Add(time.Minute), future.Add(time.Minute))
	c3, err := fc.getCertificate(nil)
	if err != nil || !c3.Leaf.Equal(c2.Leaf) {
		t.Fatalf("broken files replaced the certificate (err %v)", err)
	}
}

func TestServerTLS_ACMEModeOffersTLSALPN01AndHTTPHandler(t *testing.T) {
	dir := t.TempDir()
	res, err := ServerTLS(context.Background(), TLSOptions{Mode: ModeACME, ACMEDomains: []string{"bulwark.example"},
		ACMEDirectoryURL: "https://acme.invalid/directory"}, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(res.Config.NextProtos, acme.ALPNProto) || !slices.Contains(res.Config.NextProtos, "h2") {
		t.Errorf("NextProtos %v lack acme-tls/1 or h2", res.Config.NextProtos)
	}
	if res.Handler == nil || res.Config.GetCertificate == nil {
		t.Fatal("no challenge handler or certificate source")
	}
	if res.Config.MinVersion != tls.VersionTLS12 {
		t.Error("acme config lost the base settings")
	}
	// A name outside the list is refused without asking the CA.
	if _, err := res.Config.GetCertificate(&tls.ClientHelloInfo{ServerName: "evil.example"}); err == nil {
		t.Error("certificate requested for a name outside acme_domains")
	}
	fi, err := os.Stat(filepath.Join(dir, "tls", "acme"))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("acme cache dir: %v %v", fi, err)
	}
}

func TestServerTLS_ModeErrors(t *testing.T) {
	cases := []struct {
		name string
		opts TLSOptions
		want string
	}{
		{"unknown mode", TLSOptions{Mode: "plain"}, `unknown mode "plain"`},
		{"files without files", TLSOptions{Mode: ModeFiles}, "certificate file"},
		{"files that do not exist", TLSOptions{Mode: ModeFiles, CertFile: "/nonexistent/c", KeyFile: "/nonexistent/k"}, "certificate files"},
		{"acme without domains", TLSOptions{Mode: ModeACME}, "domain"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ServerTLS(context.Background(), c.opts, t.TempDir(), nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
		})
	}
	res, err := ServerTLS(context.Background(), TLSOptions{Mode: ModeOff}, t.TempDir(), nil)
	if err != nil || res.Config != nil {
		t.Fatalf("off mode: %+v, %v; want a nil Config", res, err)
	}
}

func TestBaseTLSConfig_OnlyAEADWithForwardSecrecy(t *testing.T) {
	cfg := BaseTLSConfig()
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion %x", cfg.MinVersion)
	}
	for _, id := range cfg.CipherSuites {
		name := tls.CipherSuiteName(id)
		if !strings.HasPrefix(name, "TLS_ECDHE_") || !(strings.Contains(name, "GCM") || strings.Contains(name, "CHACHA20")) {
			t.Errorf("suite %s is not ECDHE with an AEAD", name)
		}
	}
	if len(cfg.CurvePreferences) == 0 || cfg.CurvePreferences[0] != tls.X25519MLKEM768 {
		t.Errorf("curves %v, want X25519MLKEM768 first", cfg.CurvePreferences)
	}
}

func mustRead(path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	return b
}
