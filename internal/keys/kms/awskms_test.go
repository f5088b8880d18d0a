package kms

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/google/uuid"

	"bulwark/internal/apperr"
	"bulwark/internal/keys"
	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

// The emulator's account and region, and the credentials the tests use.
// local-kms does not check credentials; the secret is there to prove that
// no error shows it.
const (
	localKMSRegion  = "eu-west-2"
	localKMSAccount = "111122223333"
	testAccessKeyID = "AKIABULWARKTEST00001"
	testSecretKey   = "bulwark-test-secret-5b1e8f0c"
)

// localKMS is a local-kms emulator of AWS KMS that a test started on a
// free port, with its database in a temporary directory. local-kms binds
// every interface (it has no setting for the address); the tests reach it
// on loopback.
type localKMS struct {
	Endpoint string // http://127.0.0.1:PORT
	cmd      *exec.Cmd
	log      *startLog
	exited   chan struct{}
	admin    *awskms.Client
}

// localKMSBinary finds the local-kms binary: BULWARK_TEST_LOCALKMS, or
// local-kms on PATH. BULWARK_TEST_LOCALKMS=skip skips the test; without a
// binary the test fails, so a missing install is never mistaken for a pass.
func localKMSBinary(t *testing.T) string {
	t.Helper()
	switch env := os.Getenv("BULWARK_TEST_LOCALKMS"); env {
	case "skip":
		t.Skip("BULWARK_TEST_LOCALKMS=skip: not testing the AWS KMS provider against the local-kms emulator")
	case "":
	default:
		return env
	}
	if p, err := exec.LookPath("local-kms"); err == nil {
		return p
	}
	t.Fatal("no local-kms binary: install it with `GOBIN=$HOME/.cache/bulwark/bin go install " +
		"github.com/nsmithuk/local-kms@v0.0.0-20260228092603-2a5e92d09ab6` (scripts/test.sh does), put it on PATH " +
		"as local-kms or set BULWARK_TEST_LOCALKMS=/path/to/it; BULWARK_TEST_LOCALKMS=skip skips these tests")
	return ""
}

// startLog collects the emulator's log and reports the port it logs when
// it has bound its listener.
type startLog struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	port chan string
	sent bool
}

var localKMSStarted = regexp.MustCompile(`Local KMS started on 0\.0\.0\.0:([0-9]+)`)

func (l *startLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if !l.sent {
		if m := localKMSStarted.FindSubmatch(l.buf.Bytes()); m != nil {
			l.port <- string(m[1])
			l.sent = true
		}
	}
	return len(p), nil
}

func (l *startLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// startLocalKMS starts the emulator; it is stopped when the test ends.
func startLocalKMS(t *testing.T) *localKMS {
	t.Helper()
	bin := localKMSBinary(t)
	dir := t.TempDir()
	s := &localKMS{log: &startLog{port: make(chan string, 1)}, exited: make(chan struct{})}
	s.cmd = exec.Command(bin)
	s.cmd.Env = []string{
		"PORT=0", // local-kms binds a free port and logs which
		"KMS_REGION=" + localKMSRegion,
		"KMS_ACCOUNT_ID=" + localKMSAccount,
		"KMS_DATA_PATH=" + filepath.Join(dir, "data"),
		"KMS_SEED_PATH=" + filepath.Join(dir, "no-seed.yaml"),
		"HOME=" + dir,
		"PATH=" + os.Getenv("PATH"),
	}
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() { s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(s.Stop)
	select {
	case port := <-s.log.port:
		s.Endpoint = "http://127.0.0.1:" + port
	case <-s.exited:
		t.Fatalf("%s exited at start:\n%s", bin, s.log)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s not started after 30 s:\n%s", bin, s.log)
	}
	s.admin = awskms.New(awskms.Options{
		Region:       localKMSRegion,
		BaseEndpoint: aws.String(s.Endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(testAccessKeyID, testSecretKey, ""),
		Retryer:      aws.NopRetryer{},
	})
	return s
}

// Stop kills the emulator and waits for it to exit.
func (s *localKMS) Stop() {
	select {
	case <-s.exited:
	default:
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// createKey creates a symmetric encryption key and returns its key URI.
func (s *localKMS) createKey(t *testing.T) string {
	t.Helper()
	out, err := s.admin.CreateKey(context.Background(), &awskms.CreateKeyInput{Description: aws.String("bulwark test KEK")})
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	return "aws-kms://" + aws.ToString(out.KeyMetadata.Arn)
}

// createAlias points alias/NAME at the key of keyURI and returns the
// alias's key URI.
func (s *localKMS) createAlias(t *testing.T, keyURI, name string) string {
	t.Helper()
	_, err := s.admin.CreateAlias(context.Background(), &awskms.CreateAliasInput{
		AliasName:   aws.String("alias/" + name),
		TargetKeyId: aws.String(strings.TrimPrefix(keyURI, "aws-kms://")),
	})
	if err != nil {
		t.Fatalf("CreateAlias: %v", err)
	}
	return "aws-kms://arn:aws:kms:" + localKMSRegion + ":" + localKMSAccount + ":alias/" + name
}

// credentialsFile writes a shared credentials file with the test's
// credentials in its [default] profile, or with body when it is not "".
func credentialsFile(t *testing.T, body string) string {
	t.Helper()
	if body == "" {
		body = "[default]\naws_access_key_id = " + testAccessKeyID + "\naws_secret_access_key = " + testSecretKey + "\n"
	}
	path := filepath.Join(t.TempDir(), "credentials")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func (s *localKMS) options(t *testing.T, keyURI string) AWSOptions {
	return AWSOptions{KeyURI: keyURI, CredentialsFile: credentialsFile(t, ""), Endpoint: s.Endpoint}
}

func (s *localKMS) aws(t *testing.T, keyURI string) *AWS {
	t.Helper()
	a, err := NewAWS(context.Background(), s.options(t, keyURI))
	if err != nil {
		t.Fatalf("NewAWS: %v", err)
	}
	return a
}

// checkErrorText fails the test if err shows a secret or spans lines.
func checkErrorText(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if strings.Contains(err.Error(), testSecretKey) {
		t.Errorf("error reveals the secret access key: %v", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err)
	}
}

func TestNewAWS_RejectsBadOptions(t *testing.T) {
	const keyARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	good := AWSOptions{KeyURI: "aws-kms://" + keyARN, CredentialsFile: credentialsFile(t, ""), Endpoint: "https://kms.example"}
	form := "aws-kms://arn:aws:kms:REGION:ACCOUNT:key/ID"
	tests := []struct {
		name string
		edit func(*AWSOptions)
		want string
	}{
		{"empty key URI", func(o *AWSOptions) { o.KeyURI = "" }, "key URI is empty"},
		{"ARN without prefix", func(o *AWSOptions) { o.KeyURI = keyARN }, "lacks the aws-kms:// prefix"},
		{"Google Cloud key", func(o *AWSOptions) { o.KeyURI = "gcp-kms://projects/p/locations/l/keyRings/r/cryptoKeys/k" }, form},
		{"another service", func(o *AWSOptions) { o.KeyURI = "aws-kms://arn:aws:s3:::bucket" }, form},
		{"no region", func(o *AWSOptions) {
			o.KeyURI = "aws-kms://arn:aws:kms::111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
		}, form},
		{"bare key id", func(o *AWSOptions) { o.KeyURI = "aws-kms://1234abcd-12ab-34cd-56ef-1234567890ab" }, form},
		{"short account", func(o *AWSOptions) {
			o.KeyURI = "aws-kms://arn:aws:kms:eu-west-1:1111:key/1234abcd-12ab-34cd-56ef-1234567890ab"
		}, form},
		{"key name, not id", func(o *AWSOptions) { o.KeyURI = "aws-kms://arn:aws:kms:eu-west-1:111122223333:key/bulwark" }, form},
		{"trailing newline", func(o *AWSOptions) { o.KeyURI += "\n" }, form},
		{"endpoint scheme", func(o *AWSOptions) { o.Endpoint = "ftp://kms.example" }, "must start with https://"},
		{"plain http off loopback", func(o *AWSOptions) { o.Endpoint = "http://kms.example" }, "not loopback"},
		{"endpoint user info", func(o *AWSOptions) { o.Endpoint = "https://user:" + testSecretKey + "@kms.example" }, "user information"},
		{"endpoint path", func(o *AWSOptions) { o.Endpoint = "https://kms.example/v1" }, "scheme://host[:port] only"},
		{"endpoint port", func(o *AWSOptions) { o.Endpoint = "https://kms.example:99999" }, "bad port"},
		{"missing credentials file", func(o *AWSOptions) { o.CredentialsFile = filepath.Join(t.TempDir(), "none") }, "no such file"},
		{"no default profile", func(o *AWSOptions) {
			o.CredentialsFile = credentialsFile(t, "[ops]\naws_access_key_id = "+testAccessKeyID+"\naws_secret_access_key = "+testSecretKey+"\n")
		}, "no [default] profile"},
		{"partial credentials", func(o *AWSOptions) {
			o.CredentialsFile = credentialsFile(t, "[default]\naws_secret_access_key = "+testSecretKey+"\n")
		}, "partial credentials"},
		{"role, not keys", func(o *AWSOptions) {
			o.CredentialsFile = credentialsFile(t, "[default]\nrole_arn = arn:aws:iam::111122223333:role/bulwark\nsource_profile = base\n"+
				"[base]\naws_access_key_id = "+testAccessKeyID+"\naws_secret_access_key = "+testSecretKey+"\n")
		}, "has no aws_access_key_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good
			tt.edit(&o)
			// None of these reach the network; the deadline guards a
			// mistake that would.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			a, err := NewAWS(ctx, o)
			if err == nil || a != nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewAWS error = %v, want one containing %q", err, tt.want)
			}
			if errors.Is(err, ErrUnavailable) {
				t.Fatalf("NewAWS error = %v, a configuration error, not ErrUnavailable", err)
			}
			checkErrorText(t, err)
		})
	}
}

func TestAWS_LocalKMS(t *testing.T) {
	s := startLocalKMS(t)
	keyA := s.createKey(t)
	a := s.aws(t, keyA)
	ctx := context.Background()

	t.Run("ID is the key URI", func(t *testing.T) {
		if a.ID() != keyA {
			t.Fatalf("ID() = %q, want %q", a.ID(), keyA)
		}
	})
	t.Run("round trip and associated data binding", func(t *testing.T) {
		dek := []byte("0123456789abcdef0123456789abcdef")
		ad := []byte("org:acme dek:v1")
		ct, err := a.Encrypt(ctx, dek, ad)
		if err != nil {
			t.Fatalf("Encrypt: %v", err)
		}
		if bytes.Contains(ct, dek) {
			t.Fatal("the ciphertext holds the plaintext")
		}
		pt, err := a.Decrypt(ctx, ct, ad)
		if err != nil || string(pt) != string(dek) {
			t.Fatalf("Decrypt = %q, %v; want the plaintext back", pt, err)
		}
		tampered := bytes.Clone(ct)
		tampered[len(tampered)-1] ^= 1
		for name, c := range map[string]struct{ ct, ad []byte }{
			"other org's associated data": {ct, []byte("org:other dek:v1")},
			"no associated data":          {ct, nil},
			"tampered ciphertext":         {tampered, ad},
			"truncated ciphertext":        {ct[:len(ct)-1], ad},
			"not a KMS ciphertext":        {[]byte("garbage"), ad},
			"empty ciphertext":            {nil, ad},
		} {
			pt, err := a.Decrypt(ctx, c.ct, c.ad)
			if pt != nil || !errors.Is(err, keys.ErrAuthentication) || !errors.Is(err, ErrDecrypt) || errors.Is(err, ErrUnavailable) {
				t.Errorf("%s: Decrypt = %q, %v; want an error wrapping keys.ErrAuthentication", name, pt, err)
			}
			checkErrorText(t, err)
		}
	})
	t.Run("empty associated data", func(t *testing.T) {
		ct, err := a.Encrypt(ctx, []byte("key"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := a.Decrypt(ctx, ct, []byte{}); err != nil || string(pt) != "key" {
			t.Fatalf("Decrypt with empty associated data = %q, %v; want nil and empty to be the same", pt, err)
		}
		if _, err := a.Decrypt(ctx, ct, []byte("org:acme")); !errors.Is(err, keys.ErrAuthentication) {
			t.Fatalf("Decrypt with associated data of a value sealed without: %v, want ErrAuthentication", err)
		}
	})
	t.Run("ciphertext of another key is refused", func(t *testing.T) {
		b := s.aws(t, s.createKey(t))
		ad := []byte("org:acme dek:v1")
		ct, err := b.Encrypt(ctx, []byte("key of B"), ad)
		if err != nil {
			t.Fatal(err)
		}
		pt, err := a.Decrypt(ctx, ct, ad)
		if pt != nil || !errors.Is(err, keys.ErrAuthentication) || errors.Is(err, ErrUnavailable) {
			t.Fatalf("key A decrypting key B's ciphertext = %q, %v; want ErrAuthentication", pt, err)
		}
	})
	t.Run("alias", func(t *testing.T) {
		aliasURI := s.createAlias(t, keyA, "bulwark-test")
		byAlias := s.aws(t, aliasURI)
		if byAlias.ID() != aliasURI {
			t.Fatalf("ID() = %q, want %q", byAlias.ID(), aliasURI)
		}
		ct, err := byAlias.Encrypt(ctx, []byte("key"), []byte("ad"))
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := a.Decrypt(ctx, ct, []byte("ad")); err != nil || string(pt) != "key" {
			t.Fatalf("the key decrypting what its alias encrypted = %q, %v", pt, err)
		}
	})
	t.Run("key that does not exist", func(t *testing.T) {
		for _, uri := range []string{
			"aws-kms://arn:aws:kms:" + localKMSRegion + ":" + localKMSAccount + ":key/" + uuid.NewString(),
			"aws-kms://arn:aws:kms:" + localKMSRegion + ":" + localKMSAccount + ":alias/no-such-alias",
		} {
			got, err := NewAWS(ctx, s.options(t, uri))
			if got != nil || err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), uri) {
				t.Fatalf("NewAWS(%s) error = %v, want one saying the key does not exist", uri, err)
			}
			if errors.Is(err, ErrUnavailable) || errors.Is(err, ErrPermission) || errors.Is(err, keys.ErrAuthentication) {
				t.Fatalf("NewAWS(%s) error = %v, want a plain error", uri, err)
			}
			checkErrorText(t, err)
		}
	})
	t.Run("disabled key", func(t *testing.T) {
		uri := s.createKey(t)
		c := s.aws(t, uri)
		ct, err := c.Encrypt(ctx, []byte("key"), []byte("ad"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.admin.DisableKey(ctx, &awskms.DisableKeyInput{KeyId: aws.String(strings.TrimPrefix(uri, "aws-kms://"))}); err != nil {
			t.Fatal(err)
		}
		// A disabled key is not a wrong key: the keyring must not take
		// the stored keys for damaged.
		if _, err := c.Decrypt(ctx, ct, []byte("ad")); err == nil || errors.Is(err, keys.ErrAuthentication) || !strings.Contains(err.Error(), "disabled") {
			t.Fatalf("Decrypt under a disabled key: %v, want an error saying disabled, not ErrAuthentication", err)
		}
		if _, err := NewAWS(ctx, s.options(t, uri)); err == nil || !strings.Contains(err.Error(), "disabled") {
			t.Fatalf("NewAWS with a disabled key: %v, want an error saying disabled", err)
		}
	})
	t.Run("default credential chain", func(t *testing.T) {
		for k, v := range map[string]string{
			"AWS_ACCESS_KEY_ID":                      testAccessKeyID,
			"AWS_SECRET_ACCESS_KEY":                  testSecretKey,
			"AWS_SESSION_TOKEN":                      "",
			"AWS_PROFILE":                            "",
			"AWS_CONFIG_FILE":                        filepath.Join(t.TempDir(), "none"),
			"AWS_SHARED_CREDENTIALS_FILE":            filepath.Join(t.TempDir(), "none"),
			"AWS_EC2_METADATA_DISABLED":              "true",
			"AWS_WEB_IDENTITY_TOKEN_FILE":            "",
			"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
			"AWS_CONTAINER_CREDENTIALS_FULL_URI":     "",
			"AWS_REGION":                             "us-east-1", // not the key's: ignored
		} {
			t.Setenv(k, v)
		}
		o := s.options(t, keyA)
		o.CredentialsFile = ""
		d, err := NewAWS(ctx, o)
		if err != nil {
			t.Fatalf("NewAWS with credentials from the environment: %v", err)
		}
		if _, err := d.Encrypt(ctx, []byte("key"), nil); err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_ACCESS_KEY_ID", "")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "")
		if _, err := NewAWS(ctx, o); err == nil || !strings.Contains(err.Error(), "no usable AWS credentials") {
			t.Fatalf("NewAWS without any credentials: %v, want an error saying so", err)
		} else {
			checkErrorText(t, err)
		}
	})
	t.Run("cancelled call", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := a.Encrypt(cctx, []byte("key"), nil)
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
			t.Fatalf("cancelled call: error = %v, want context.Canceled and not ErrUnavailable", err)
		}
	})
	t.Run("stopped emulator is unavailable", func(t *testing.T) {
		ct, err := a.Encrypt(ctx, []byte("key"), []byte("ad"))
		if err != nil {
			t.Fatal(err)
		}
		s.Stop()
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		start := time.Now()
		_, err = a.Decrypt(tctx, ct, []byte("ad"))
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, keys.ErrAuthentication) || time.Since(start) > 5*time.Second {
			t.Fatalf("Decrypt with the emulator stopped: %v after %v, want ErrUnavailable within 5 s", err, time.Since(start))
		}
		if _, err := a.Encrypt(tctx, []byte("key"), nil); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Encrypt with the emulator stopped: %v, want ErrUnavailable", err)
		}
		if _, err := NewAWS(tctx, s.options(t, keyA)); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("NewAWS with the emulator stopped: %v, want ErrUnavailable", err)
		}
	})
}

// kmsFaults is a proxy in front of the emulator that can be switched to
// answer as KMS does when it is in trouble, or to hang, or to drop the
// encryption context from requests as a careless KMS-compatible service
// might.
type kmsFaults struct {
	proxy *httputil.ReverseProxy
	mode  atomic.Value // "", "500", "502", "throttle", "denied", "hang", "drop-context"
}

func newKMSFaults(t *testing.T, s *localKMS) (*kmsFaults, *httptest.Server) {
	t.Helper()
	target, err := url.Parse(s.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	f := &kmsFaults{proxy: httputil.NewSingleHostReverseProxy(target)}
	f.mode.Store("")
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *kmsFaults) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, code, msg string) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": msg})
	}
	switch f.mode.Load().(string) {
	case "500":
		fail(500, "KMSInternalException", "internal error")
		return
	case "502":
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(502)
		io.WriteString(w, "<html><body>Bad Gateway</body></html>")
		return
	case "throttle":
		fail(400, "ThrottlingException", "Rate exceeded")
		return
	case "denied":
		fail(400, "AccessDeniedException", "User is not authorized to perform: kms:Decrypt")
		return
	case "hang":
		io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
		return
	case "drop-context":
		var req map[string]any
		json.NewDecoder(r.Body).Decode(&req)
		delete(req, "EncryptionContext")
		body, _ := json.Marshal(req)
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	}
	f.proxy.ServeHTTP(w, r)
}

func TestAWS_LocalKMS_ServiceFailures(t *testing.T) {
	s := startLocalKMS(t)
	f, srv := newKMSFaults(t, s)
	keyURI := s.createKey(t)
	o := s.options(t, keyURI)
	o.Endpoint = srv.URL
	a, err := NewAWS(context.Background(), o)
	if err != nil {
		t.Fatalf("NewAWS through the proxy: %v", err)
	}
	ctx := context.Background()
	ct, err := a.Encrypt(ctx, []byte("key"), []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		mode string
		want error
	}{
		{"500", ErrUnavailable},
		{"502", ErrUnavailable},
		{"throttle", ErrUnavailable},
		{"denied", ErrPermission},
	} {
		f.mode.Store(tt.mode)
		_, err := a.Decrypt(ctx, ct, []byte("ad"))
		if !errors.Is(err, tt.want) || errors.Is(err, keys.ErrAuthentication) {
			t.Errorf("%s: Decrypt error = %v, want %v and not ErrAuthentication", tt.mode, err, tt.want)
		}
		checkErrorText(t, err)
	}

	f.mode.Store("denied")
	if _, err := NewAWS(ctx, o); !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), keyURI) {
		t.Errorf("NewAWS with access denied: %v, want ErrPermission naming the key", err)
	} else {
		checkErrorText(t, err)
	}

	f.mode.Store("hang")
	start := time.Now()
	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = a.Decrypt(tctx, ct, []byte("ad"))
	cancel()
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Errorf("hanging service, 200 ms deadline: error = %v after %v, want ErrUnavailable within 1 s", err, time.Since(start))
	}

	f.mode.Store("drop-context")
	if _, err := NewAWS(ctx, o); err == nil || !strings.Contains(err.Error(), "ignores the encryption context") {
		t.Errorf("NewAWS against a service that drops the encryption context: %v, want a refusal", err)
	}
}

// TestRing_OnAWSKMS runs the keyring on top of the AWS KMS KEK: org keys
// are wrapped by the emulator, stored, and unwrapped by another process's
// ring; another key is the wrong KEK; KMS down is unavailable.
func TestRing_OnAWSKMS(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		s := startLocalKMS(t)
		keyURI := s.createKey(t)
		st, err := store.Open(ctx, opts, keys.ControlSchema())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		newRing := func(kek keys.KEK) (*keys.Ring, error) { return keys.NewRing(ctx, st, kek, keys.Options{}) }

		r, err := newRing(s.aws(t, keyURI))
		if err != nil {
			t.Fatalf("NewRing: %v", err)
		}
		org := uuid.NewString()
		if err := st.Control().InTx(ctx, func(tx *store.Tx) error { return r.CreateOrgKeys(ctx, tx, org) }); err != nil {
			t.Fatalf("CreateOrgKeys: %v", err)
		}
		var kekID string
		if err := st.Control().SQL().QueryRowContext(ctx, "SELECT kek_id FROM org_keys WHERE org_id = $1 AND purpose = 'data'", org).Scan(&kekID); err != nil {
			t.Fatal(err)
		}
		if kekID != keyURI {
			t.Fatalf("stored KEK id %q, want the key URI %q", kekID, keyURI)
		}
		ad := keys.AD{Table: "records", RowID: "r1", Field: "note"}
		ct, err := r.Seal(ctx, org, ad, []byte("a secret note"))
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		if pt, err := r.Open(ctx, org, ad, ct); err != nil || string(pt) != "a secret note" {
			t.Fatalf("Open = %q, %v", pt, err)
		}

		// Another process: its own KEK and ring unwrap the stored key
		// through KMS.
		fresh, err := newRing(s.aws(t, keyURI))
		if err != nil {
			t.Fatalf("NewRing, second process: %v", err)
		}
		if pt, err := fresh.Open(ctx, org, ad, ct); err != nil || string(pt) != "a secret note" {
			t.Fatalf("Open in a second process = %q, %v", pt, err)
		}
		if pt, err := fresh.Open(ctx, org, keys.AD{Table: "records", RowID: "r2", Field: "note"}, ct); err == nil {
			t.Fatalf("Open with another row's associated data = %q, want an error", pt)
		}

		// Another KMS key is the wrong KEK, not a KMS outage.
		if _, err := newRing(s.aws(t, s.createKey(t))); err == nil || !strings.Contains(err.Error(), "wrong KEK") {
			t.Fatalf("NewRing with another KMS key: %v, want a wrong KEK error", err)
		}

		// KMS down: a ring that holds the key goes on; one that must
		// unwrap it says unavailable.
		cold, err := newRing(s.aws(t, keyURI))
		if err != nil {
			t.Fatal(err)
		}
		s.Stop()
		if pt, err := r.Open(ctx, org, ad, ct); err != nil || string(pt) != "a secret note" {
			t.Fatalf("Open from the cache with KMS down = %q, %v", pt, err)
		}
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := cold.Open(tctx, org, ad, ct); apperr.CodeOf(err) != apperr.Unavailable {
			t.Fatalf("Open needing KMS with KMS down: %v, want unavailable", err)
		}
	})
}
