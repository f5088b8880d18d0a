package mailtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Options shape a Server. The zero value offers STARTTLS, offers no AUTH and
// accepts mail from anyone.
type Options struct {
	// DisableSTARTTLS makes the server neither advertise nor accept
	// STARTTLS, like a misconfigured or downgraded relay.
	DisableSTARTTLS bool
	// ImplicitTLS makes the listener speak TLS from the first byte, as on
	// port 465 (RFC 8314). STARTTLS is then not offered.
	ImplicitTLS bool
	// Username and Password are the credentials AUTH PLAIN accepts. When
	// Username is empty, AUTH is not offered.
	Username, Password string
	// RequireAuth refuses MAIL FROM with 530 until the client authenticated.
	RequireAuth bool
	// AuthWithoutTLS offers AUTH on a connection that is not encrypted.
	// Without it AUTH is offered only after TLS, as RFC 4954 section 4 asks.
	AuthWithoutTLS bool
	// MaxMessageBytes limits the size of one message; 0 means 10 MiB.
	MaxMessageBytes int
	// Timeout is how long the server waits for each command or data line
	// before it hangs up; 0 means 30 seconds.
	Timeout time.Duration
}

// Received is one message the server accepted.
type Received struct {
	// From is the envelope sender (MAIL FROM), without angle brackets.
	From string
	// To are the envelope recipients (RCPT TO), in order.
	To []string
	// Data is the message as transferred after DATA, dot-unstuffed, with
	// every line ending in CRLF and without the final ".".
	Data []byte
	// Header and Body are Data parsed by net/mail; Header is nil and Body
	// is empty when Data is not a well-formed message.
	Header mail.Header
	Body   []byte
	// TLS reports whether the message came over an encrypted connection.
	TLS bool
	// AuthUser is the user that authenticated the session, or "".
	AuthUser string
}

// Server is a running SMTP server on 127.0.0.1. Its methods are safe for
// concurrent use.
type Server struct {
	opts    Options
	ln      net.Listener
	tlsConf *tls.Config
	pool    *x509.CertPool

	mu       sync.Mutex
	msgs     []Received
	changed  chan struct{} // closed and replaced whenever msgs grows
	conns    map[net.Conn]struct{}
	closed   bool
	auths    int // AUTH commands received
	authFail int

	wg sync.WaitGroup
}

// Start starts a server on a free port of 127.0.0.1. Close stops it.
func Start(opts Options) (*Server, error) {
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = 10 << 20
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	cert, pool, err := selfSigned()
	if err != nil {
		return nil, fmt.Errorf("mailtest: %w", err)
	}
	s := &Server{
		opts:    opts,
		tlsConf: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		pool:    pool,
		changed: make(chan struct{}),
		conns:   make(map[net.Conn]struct{}),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("mailtest: listen: %w", err)
	}
	if opts.ImplicitTLS {
		ln = tls.NewListener(ln, s.tlsConf)
	}
	s.ln = ln
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// New starts a server for the test tb and stops it when the test ends.
func New(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s, err := Start(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// Addr returns the server's address, "127.0.0.1:PORT".
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Host returns the host the server listens on, "127.0.0.1".
func (s *Server) Host() string {
	host, _, _ := net.SplitHostPort(s.Addr())
	return host
}

// Port returns the port the server listens on.
func (s *Server) Port() int {
	_, port, _ := net.SplitHostPort(s.Addr())
	n, _ := strconv.Atoi(port)
	return n
}

// CertPool returns a pool holding the server's self-signed certificate,
// valid for 127.0.0.1, ::1 and localhost, for the client to trust.
func (s *Server) CertPool() *x509.CertPool { return s.pool }

// Messages returns a copy of the messages accepted so far, in the order
// their DATA completed.
func (s *Server) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Received, len(s.msgs))
	copy(out, s.msgs)
	return out
}

// AuthAttempts returns how many AUTH commands the server received, whether
// it offered AUTH then or not: a test can show that a client never sent
// credentials.
func (s *Server) AuthAttempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.auths
}

// AuthFailures returns how many AUTH attempts the server refused for wrong
// credentials.
func (s *Server) AuthFailures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authFail
}

// WaitFor waits until at least n messages were accepted and returns them,
// or returns ctx's error with the messages accepted so far.
func (s *Server) WaitFor(ctx context.Context, n int) ([]Received, error) {
	for {
		s.mu.Lock()
		if len(s.msgs) >= n {
			out := make([]Received, len(s.msgs))
			copy(out, s.msgs)
			s.mu.Unlock()
			return out, nil
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return s.Messages(), ctx.Err()
		}
	}
}

// Close stops the listener, hangs up on every open session and waits for
// them to end. Messages stay readable after Close.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	err := s.ln.Close()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		if !s.track(c) {
			_ = c.Close()
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(c)
			newSession(s, c).run()
		}()
	}
}

// track registers c so that Close can hang up on it; it reports false when
// the server is already closed.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	_ = c.Close()
}

func (s *Server) record(r Received) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, r)
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) countAuth() {
	s.mu.Lock()
	s.auths++
	s.mu.Unlock()
}

func (s *Server) countAuthFailure() {
	s.mu.Lock()
	s.authFail++
	s.mu.Unlock()
}
