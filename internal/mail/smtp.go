package mail

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"bulwark/internal/apperr"
)

// The values of SMTPOptions.TLS.
const (
	TLSStartTLS = "starttls" // plain connect, then STARTTLS, which the server must offer
	TLSImplicit = "tls"      // TLS from the first byte (RFC 8314), port 465
	TLSNone     = "none"     // no TLS at all: only to a loopback host
)

// DefaultTimeout bounds each step of a session (connect, each command)
// when SMTPOptions.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// SMTPOptions configure an SMTP sender.
type SMTPOptions struct {
	// Host is the relay's name or IP address, without a port.
	Host string
	// Port defaults to 587 for "starttls", 465 for "tls" and 25 for "none".
	Port int
	// Username and Password are sent with AUTH (PLAIN, else LOGIN) after
	// TLS is up. Both empty: no AUTH.
	Username, Password string
	// From is the sender address, "Bulwark <no-reply@example.com>" or a
	// bare address; it is also the envelope sender.
	From string
	// TLS is "starttls" (the default when empty), "tls" or "none". "none"
	// is refused unless Host is a loopback address or "localhost".
	TLS string
	// Timeout bounds each step of a session; 0 means DefaultTimeout. The
	// context given to Send bounds the whole of it.
	Timeout time.Duration
	// RootCAs are the authorities trusted for the relay's certificate; nil
	// means the system's.
	RootCAs *x509.CertPool
}

// SMTP sends each message over its own connection to an SMTP relay. It is
// safe for concurrent use.
type SMTP struct {
	host     string
	port     int
	addr     string // host:port, for errors
	mode     string
	user     string
	password string
	from     *mail.Address
	timeout  time.Duration
	tlsConf  *tls.Config
	secrets  []string // texts scrubbed from every error: the password and its encodings
}

var _ Sender = (*SMTP)(nil)

// NewSMTP checks opts and returns a sender. Nothing is dialled until Send.
// Returns invalid, naming the option, if opts are incomplete or insecure.
func NewSMTP(opts SMTPOptions) (*SMTP, error) {
	bad := func(format string, args ...any) error {
		return apperr.Errorf(apperr.Invalid, "smtp: "+format, args...)
	}
	host := opts.Host
	switch {
	case host == "":
		return nil, bad("host is required")
	case !cleanLine(host) || strings.ContainsAny(host, " \t/@[]"):
		return nil, bad("host must be a host name or an IP address")
	case strings.Contains(host, ":") && !isIPAddr(host):
		return nil, bad("host must not include a port: set the port on its own")
	}
	mode := strings.ToLower(opts.TLS)
	if mode == "" {
		mode = TLSStartTLS
	}
	port := opts.Port
	switch mode {
	case TLSStartTLS:
		port = cmp.Or(port, 587)
	case TLSImplicit:
		port = cmp.Or(port, 465)
	case TLSNone:
		if !isLoopbackHost(host) {
			return nil, bad(`tls "none" is allowed only for a loopback host (127.0.0.1, ::1 or localhost); use "starttls" or "tls"`)
		}
		port = cmp.Or(port, 25)
	default:
		return nil, bad(`tls must be "starttls", "tls" or "none"`)
	}
	if port < 1 || port > 65535 {
		return nil, bad("port must be between 1 and 65535")
	}
	from, err := parseAddress(opts.From)
	if err != nil {
		return nil, bad("from must be exactly one e-mail address")
	}
	switch {
	case opts.Username == "" && opts.Password != "":
		return nil, bad("a password needs a username")
	case opts.Username != "" && opts.Password == "":
		return nil, bad("a username needs a password")
	case !cleanLine(opts.Username) || strings.ContainsRune(opts.Password, 0):
		return nil, bad("username or password holds a character that AUTH cannot carry")
	}
	if opts.Timeout < 0 {
		return nil, bad("timeout must not be negative")
	}
	s := &SMTP{
		host:     host,
		port:     port,
		addr:     net.JoinHostPort(host, strconv.Itoa(port)),
		mode:     mode,
		user:     opts.Username,
		password: opts.Password,
		from:     from,
		timeout:  cmp.Or(opts.Timeout, DefaultTimeout),
		tlsConf:  &tls.Config{ServerName: host, RootCAs: opts.RootCAs, MinVersion: tls.VersionTLS12},
	}
	if p := opts.Password; p != "" {
		enc := base64.StdEncoding
		s.secrets = []string{
			p,
			enc.EncodeToString([]byte(p)), // AUTH LOGIN
			enc.EncodeToString([]byte("\x00" + opts.Username + "\x00" + p)), // AUTH PLAIN
		}
	}
	return s, nil
}

// Send submits m to the relay. It returns invalid if m is malformed (no
// connection is made then), and an internal error, one line without the
// password or the recipient's address, if the relay cannot be reached, does
// not offer the TLS that was asked for, refuses the credentials or refuses
// the message. When ctx ends first, the error wraps ctx.Err().
func (s *SMTP) Send(ctx context.Context, m Message) error {
	to, err := validate(m)
	if err != nil {
		return err
	}
	msg := compose(s.from, to, m, time.Now())

	// go-mail bounds only the dial by the context; closing the connection
	// when ctx ends bounds the rest of the session too.
	var stop func() bool
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	dial := func(dctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		conn, err := d.DialContext(dctx, network, addr)
		if err != nil {
			return nil, err
		}
		if s.mode == TLSNone && !isLoopbackConn(conn) {
			_ = conn.Close()
			return nil, fmt.Errorf(`tls "none": %s did not resolve to a loopback address`, s.host)
		}
		// Closing the TCP connection, not the TLS one, cannot block on
		// sending a close_notify alert.
		stop = context.AfterFunc(ctx, func() { _ = conn.Close() })
		if s.mode == TLSImplicit {
			tc := tls.Client(conn, s.tlsConf.Clone())
			if err := tc.HandshakeContext(dctx); err != nil {
				_ = conn.Close()
				return nil, err
			}
			return tc, nil
		}
		return conn, nil
	}

	client, err := gomail.NewClient(s.host, s.clientOptions(dial)...)
	if err != nil {
		return s.failed(ctx, err, to)
	}
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		return s.failed(ctx, err, to)
	}
	return nil
}

// clientOptions configure one go-mail client for one session.
func (s *SMTP) clientOptions(dial gomail.DialContextFunc) []gomail.Option {
	opts := []gomail.Option{
		gomail.WithPort(s.port),
		gomail.WithTimeout(s.timeout),
		gomail.WithTLSConfig(s.tlsConf.Clone()),
		gomail.WithDialContextFunc(dial),
	}
	switch s.mode {
	case TLSStartTLS:
		// Mandatory: no STARTTLS in the EHLO reply ends the session
		// before anything else is sent.
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case TLSImplicit:
		// The dialler has done the handshake; go-mail must not look for
		// STARTTLS on top of it.
		opts = append(opts, gomail.WithSSL())
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if s.user != "" {
		opts = append(opts, gomail.WithUsername(s.user), gomail.WithPassword(s.password))
		if s.mode == TLSNone {
			// Only reachable on loopback, which the dialler checked.
			opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthPlainNoEnc))
		} else {
			// PLAIN and LOGIN refuse by themselves to run without TLS.
			opts = append(opts, gomail.WithOpportunisticSMTPAuth(gomail.SMTPAuthPlain, gomail.SMTPAuthLogin))
		}
	}
	return opts
}

// failed turns a go-mail error into one line that holds neither the
// password nor the recipient's address.
func (s *SMTP) failed(ctx context.Context, err error, to *mail.Address) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("send mail via %s: %w", s.addr, ctxErr)
	}
	text := err.Error()
	for _, secret := range s.secrets {
		text = strings.ReplaceAll(text, secret, "[redacted]")
	}
	// Relays quote the recipient back, sometimes in another case.
	text = replaceFold(text, to.Address, "[recipient]")
	if len(to.Name) >= 3 {
		text = replaceFold(text, to.Name, "[recipient]")
	}
	return errors.New("send mail via " + s.addr + ": " + strings.Join(strings.Fields(text), " "))
}

// replaceFold replaces every occurrence of old in s, ignoring case.
func replaceFold(s, old, new string) string {
	re, err := regexp.Compile("(?i)" + regexp.QuoteMeta(old))
	if err != nil {
		return strings.ReplaceAll(s, old, new)
	}
	return re.ReplaceAllLiteralString(s, new)
}

// isLoopbackHost reports whether host names this machine without DNS:
// "localhost" or a loopback IP address.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// isLoopbackConn reports whether conn's peer is a loopback address, which
// is what "localhost" must have resolved to.
func isLoopbackConn(conn net.Conn) bool {
	ap, err := netip.ParseAddrPort(conn.RemoteAddr().String())
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

func isIPAddr(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}
