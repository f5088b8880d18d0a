package kms

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// devServer is an OpenBao or Vault dev server (in memory, unsealed, with a
// known root token) that a test started on a free loopback port.
type devServer struct {
	Addr  string // http://127.0.0.1:PORT
	Token string
	cmd   *exec.Cmd
}

// serverBinary finds the OpenBao or Vault binary: BULWARK_TEST_OPENBAO, or
// openbao, bao or vault on PATH. BULWARK_TEST_OPENBAO=skip skips the test;
// without a binary the test fails, so a missing install is never mistaken
// for a pass.
func serverBinary(t *testing.T) string {
	t.Helper()
	switch env := os.Getenv("BULWARK_TEST_OPENBAO"); env {
	case "skip":
		t.Skip("BULWARK_TEST_OPENBAO=skip: not testing against a real OpenBao/Vault server")
	case "":
	default:
		return env
	}
	for _, name := range []string{"openbao", "bao", "vault"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no OpenBao or Vault binary: install one (scripts/openbao.sh), put it on PATH as openbao, bao or vault " +
		"or set BULWARK_TEST_OPENBAO=/path/to/it; BULWARK_TEST_OPENBAO=skip skips these tests")
	return ""
}

// startDevServer starts a dev server with transit enabled and an
// aes256-gcm96 key named "bulwark"; it is stopped when the test ends.
func startDevServer(t *testing.T) *devServer {
	t.Helper()
	bin := serverBinary(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &devServer{Addr: "http://127.0.0.1:" + strconv.Itoa(port), Token: "bulwark-test-root"}
	var log bytes.Buffer
	s.cmd = exec.Command(bin, "server", "-dev", "-dev-root-token-id="+s.Token,
		"-dev-listen-address=127.0.0.1:"+strconv.Itoa(port))
	// A private HOME keeps the dev token file out of the real one.
	s.cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	s.cmd.Stdout, s.cmd.Stderr = &log, &log
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(s.Stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.Addr + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s dev server not ready after 30 s:\n%s", bin, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.call(t, "/v1/sys/mounts/transit", `{"type":"transit"}`)
	s.call(t, "/v1/transit/keys/bulwark", `{"type":"aes256-gcm96"}`)
	return s
}

func (s *devServer) call(t *testing.T, path, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.Addr+path, strings.NewReader(body))
	req.Header.Set("X-Vault-Token", s.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("POST %s: %s", path, resp.Status)
	}
}

// Stop kills the server and waits for it to exit.
func (s *devServer) Stop() {
	if s.cmd.ProcessState == nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
}

func (s *devServer) vault(t *testing.T, token string) (*Vault, error) {
	t.Helper()
	return NewVault(context.Background(), VaultOptions{Address: s.Addr, Token: token, KeyPath: "transit/keys/bulwark", Timeout: 5 * time.Second})
}

func TestVault_DevServer(t *testing.T) {
	s := startDevServer(t)
	v, err := s.vault(t, s.Token)
	if err != nil {
		t.Fatalf("NewVault: %v", err)
	}
	t.Run("round trip and associated data binding", func(t *testing.T) { testVaultRoundTripAndBinding(t, v) })
	t.Run("bad token is a permission error", func(t *testing.T) {
		_, err := s.vault(t, "not-the-token")
		if !errors.Is(err, ErrPermission) || errors.Is(err, ErrUnavailable) {
			t.Fatalf("error = %v, want ErrPermission", err)
		}
	})
	t.Run("stopped server is unavailable", func(t *testing.T) {
		ct, err := v.Encrypt(context.Background(), []byte("key"), []byte("ad"))
		if err != nil {
			t.Fatal(err)
		}
		s.Stop()
		_, err = v.Decrypt(context.Background(), ct, []byte("ad"))
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrDecrypt) {
			t.Fatalf("error = %v, want ErrUnavailable", err)
		}
	})
}
