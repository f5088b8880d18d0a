package mailtest

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"time"
)

// Limits of RFC 5321 section 4.5.3.1 and RFC 4954 section 4.
const (
	maxCommandLine = 512   // a command line, CRLF included
	maxAuthLine    = 12288 // an AUTH command or response line
	maxTextLine    = 1000  // a line of message data, CRLF included
	maxRecipients  = 100
	maxErrors      = 10 // refused commands before the server hangs up
)

var (
	errLineTooLong = errors.New("line too long")
	errBareLF      = errors.New("line not ended by CRLF")
)

// session is one SMTP connection. It runs on one goroutine.
type session struct {
	srv  *Server
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer

	tls      bool
	helo     string // the EHLO or HELO argument; "" until the client greeted
	authUser string
	// The mail transaction: inTx is set by MAIL FROM; from may be "" (the
	// null reverse-path of bounces).
	inTx  bool
	from  string
	rcpts []string

	errors int
}

func newSession(srv *Server, c net.Conn) *session {
	_, isTLS := c.(*tls.Conn)
	return &session{srv: srv, conn: c, r: bufio.NewReader(c), w: bufio.NewWriter(c), tls: isTLS}
}

func (s *session) run() {
	// Covers the handshake of an implicit-TLS connection, which happens
	// inside the first write.
	_ = s.conn.SetDeadline(time.Now().Add(s.srv.opts.Timeout))
	if s.reply(220, "127.0.0.1 ESMTP mailtest") != nil {
		return
	}
	for {
		line, err := s.readLine(maxAuthLine)
		switch {
		case errors.Is(err, errLineTooLong):
			_ = s.reply(500, "5.5.2 Line too long")
			return
		case errors.Is(err, errBareLF):
			_ = s.reply(500, "5.5.2 Lines must end with CRLF")
			return
		case isTimeout(err):
			_ = s.reply(421, "4.4.2 Idle too long, closing connection")
			return
		case err != nil:
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		arg = strings.TrimSpace(arg)
		if verb != "AUTH" && len(line)+2 > maxCommandLine {
			_ = s.reply(500, "5.5.2 Line too long")
			return
		}
		code, done := s.handle(verb, arg)
		if done {
			return
		}
		if code >= 500 {
			s.errors++
			if s.errors >= maxErrors {
				_ = s.reply(421, "4.7.0 Too many errors, closing connection")
				return
			}
		}
	}
}

// handle runs one command and returns the reply code it sent, and whether
// the session is over.
func (s *session) handle(verb, arg string) (code int, done bool) {
	send := func(code int, text ...string) (int, bool) {
		return code, s.reply(code, text...) != nil
	}
	switch verb {
	case "EHLO", "HELO":
		if arg == "" {
			return send(501, "5.5.4 Syntax: "+verb+" domain")
		}
		s.helo = arg
		s.reset()
		if verb == "HELO" {
			return send(250, "127.0.0.1")
		}
		lines := []string{"127.0.0.1 greets " + arg, "8BITMIME", "SIZE " + strconv.Itoa(s.srv.opts.MaxMessageBytes), "ENHANCEDSTATUSCODES"}
		if s.startTLSOffered() {
			lines = append(lines, "STARTTLS")
		}
		if s.authOffered() {
			lines = append(lines, "AUTH PLAIN")
		}
		return send(250, lines...)
	case "STARTTLS":
		return s.startTLS(arg)
	case "AUTH":
		return s.auth(arg)
	case "MAIL":
		return s.mail(arg)
	case "RCPT":
		return s.rcpt(arg)
	case "DATA":
		return s.data(arg)
	case "RSET":
		s.reset()
		return send(250, "2.0.0 OK")
	case "NOOP":
		return send(250, "2.0.0 OK")
	case "VRFY":
		return send(252, "2.5.0 Cannot VRFY user")
	case "QUIT":
		_ = s.reply(221, "2.0.0 Bye")
		return 221, true
	default:
		return send(500, "5.5.2 Command unrecognized")
	}
}

func (s *session) startTLSOffered() bool {
	return !s.tls && !s.srv.opts.DisableSTARTTLS
}

func (s *session) authOffered() bool {
	return s.srv.opts.Username != "" && (s.tls || s.srv.opts.AuthWithoutTLS)
}

// reset ends the mail transaction (RFC 5321 section 4.1.1.5).
func (s *session) reset() {
	s.inTx, s.from, s.rcpts = false, "", nil
}

func (s *session) startTLS(arg string) (int, bool) {
	switch {
	case !s.startTLSOffered():
		return 502, s.reply(502, "5.5.1 STARTTLS not available") != nil
	case arg != "":
		return 501, s.reply(501, "5.5.4 Syntax: STARTTLS") != nil
	case s.r.Buffered() > 0:
		// Commands sent before the handshake would be taken as sent over
		// TLS (CVE-2011-0411): refuse them all.
		_ = s.reply(503, "5.5.1 Commands pipelined after STARTTLS")
		return 503, true
	}
	if s.reply(220, "2.0.0 Ready to start TLS") != nil {
		return 220, true
	}
	tc := tls.Server(s.conn, s.srv.tlsConf)
	_ = tc.SetDeadline(time.Now().Add(s.srv.opts.Timeout))
	if err := tc.Handshake(); err != nil {
		return 220, true
	}
	s.conn, s.tls = tc, true
	s.r.Reset(tc)
	s.w.Reset(tc)
	// RFC 3207 section 4.2: forget everything learnt before TLS.
	s.helo, s.authUser = "", ""
	s.reset()
	return 220, false
}

func (s *session) auth(arg string) (int, bool) {
	send := func(code int, text string) (int, bool) { return code, s.reply(code, text) != nil }
	s.srv.countAuth()
	switch {
	case s.srv.opts.Username == "":
		return send(502, "5.5.1 AUTH not available")
	case !s.authOffered():
		return send(538, "5.7.11 Encryption required for requested authentication mechanism")
	case s.helo == "":
		return send(503, "5.5.1 Send EHLO first")
	case s.authUser != "":
		return send(503, "5.5.1 Already authenticated")
	case s.inTx:
		return send(503, "5.5.1 AUTH not allowed during a mail transaction")
	}
	mech, initial, hasInitial := strings.Cut(arg, " ")
	if !strings.EqualFold(mech, "PLAIN") {
		return send(504, "5.5.4 Unrecognized authentication type")
	}
	if !hasInitial {
		if err := s.reply(334, ""); err != nil {
			return 334, true
		}
		line, err := s.readLine(maxAuthLine)
		if err != nil {
			return 334, true
		}
		initial = line
	}
	initial = strings.TrimSpace(initial)
	if initial == "*" {
		return send(501, "5.0.0 Authentication cancelled")
	}
	if initial == "=" {
		initial = ""
	}
	raw, err := base64.StdEncoding.DecodeString(initial)
	if err != nil {
		return send(501, "5.5.2 Cannot decode response")
	}
	parts := bytes.Split(raw, []byte{0})
	if len(parts) != 3 {
		s.srv.countAuthFailure()
		return send(535, "5.7.8 Authentication credentials invalid")
	}
	authz, user, pass := parts[0], parts[1], parts[2]
	userOK := subtle.ConstantTimeCompare(user, []byte(s.srv.opts.Username))
	passOK := subtle.ConstantTimeCompare(pass, []byte(s.srv.opts.Password))
	if userOK&passOK != 1 || len(authz) > 0 && !bytes.Equal(authz, user) {
		s.srv.countAuthFailure()
		return send(535, "5.7.8 Authentication credentials invalid")
	}
	s.authUser = string(user)
	return send(235, "2.7.0 Authentication successful")
}

func (s *session) mail(arg string) (int, bool) {
	send := func(code int, text string) (int, bool) { return code, s.reply(code, text) != nil }
	switch {
	case s.helo == "":
		return send(503, "5.5.1 Send EHLO first")
	case s.inTx:
		return send(503, "5.5.1 Nested MAIL command")
	case s.srv.opts.RequireAuth && s.authUser == "":
		return send(530, "5.7.0 Authentication required")
	}
	path, params, ok := parsePath(arg, "FROM:")
	if !ok {
		return send(501, "5.5.4 Syntax: MAIL FROM:<address>")
	}
	for _, p := range params {
		k, v, _ := strings.Cut(p, "=")
		switch strings.ToUpper(k) {
		case "SIZE":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return send(501, "5.5.4 Bad SIZE parameter")
			}
			if n > s.srv.opts.MaxMessageBytes {
				return send(552, "5.3.4 Message size exceeds fixed limit")
			}
		case "BODY":
			if u := strings.ToUpper(v); u != "7BIT" && u != "8BITMIME" {
				return send(501, "5.5.4 Bad BODY parameter")
			}
		default:
			return send(555, "5.5.4 Unsupported parameter")
		}
	}
	s.inTx, s.from, s.rcpts = true, path, nil
	return send(250, "2.1.0 OK")
}

func (s *session) rcpt(arg string) (int, bool) {
	send := func(code int, text string) (int, bool) { return code, s.reply(code, text) != nil }
	if !s.inTx {
		return send(503, "5.5.1 Need MAIL before RCPT")
	}
	path, params, ok := parsePath(arg, "TO:")
	if !ok || path == "" {
		return send(501, "5.5.4 Syntax: RCPT TO:<address>")
	}
	if len(params) > 0 {
		return send(555, "5.5.4 Unsupported parameter")
	}
	if len(s.rcpts) >= maxRecipients {
		return send(452, "4.5.3 Too many recipients")
	}
	s.rcpts = append(s.rcpts, path)
	return send(250, "2.1.5 OK")
}

func (s *session) data(arg string) (int, bool) {
	send := func(code int, text string) (int, bool) { return code, s.reply(code, text) != nil }
	switch {
	case arg != "":
		return send(501, "5.5.4 Syntax: DATA")
	case !s.inTx || len(s.rcpts) == 0:
		return send(503, "5.5.1 Need RCPT before DATA")
	}
	if err := s.reply(354, "Start mail input; end with <CRLF>.<CRLF>"); err != nil {
		return 354, true
	}
	var buf bytes.Buffer
	tooBig := false
	for {
		line, err := s.readLine(maxTextLine)
		switch {
		case errors.Is(err, errLineTooLong):
			_ = s.reply(500, "5.5.2 Line too long")
			return 500, true
		case errors.Is(err, errBareLF) || err == nil && strings.ContainsRune(line, '\r'):
			// A bare CR or LF is how "SMTP smuggling" hides a second
			// message inside the first: refuse it outright.
			_ = s.reply(500, "5.5.2 Bare CR or LF in message data")
			return 500, true
		case isTimeout(err):
			_ = s.reply(421, "4.4.2 Timeout waiting for data, closing connection")
			return 421, true
		case err != nil:
			return 0, true
		}
		if line == "." {
			break
		}
		line = strings.TrimPrefix(line, ".") // RFC 5321 section 4.5.2
		if buf.Len()+len(line)+2 > s.srv.opts.MaxMessageBytes {
			tooBig = true
			continue
		}
		buf.WriteString(line)
		buf.WriteString("\r\n")
	}
	defer s.reset()
	if tooBig {
		return send(552, "5.3.4 Message size exceeds fixed limit")
	}
	rec := Received{
		From:     s.from,
		To:       append([]string(nil), s.rcpts...),
		Data:     buf.Bytes(),
		TLS:      s.tls,
		AuthUser: s.authUser,
	}
	if msg, err := mail.ReadMessage(bytes.NewReader(rec.Data)); err == nil {
		if body, err := io.ReadAll(msg.Body); err == nil {
			rec.Header, rec.Body = msg.Header, body
		}
	}
	s.srv.record(rec)
	return send(250, "2.0.0 OK: queued")
}

// parsePath parses `FROM:<path> params` (or `TO:`): the address inside the
// angle brackets and the ESMTP parameters after them.
func parsePath(arg, prefix string) (path string, params []string, ok bool) {
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return "", nil, false
	}
	rest := strings.TrimLeft(arg[len(prefix):], " ")
	if !strings.HasPrefix(rest, "<") {
		return "", nil, false
	}
	end := strings.IndexByte(rest, '>')
	if end < 0 {
		return "", nil, false
	}
	path = rest[1:end]
	if path != "" && !validMailbox(path) {
		return "", nil, false
	}
	return path, strings.Fields(rest[end+1:]), true
}

// validMailbox is a coarse check of local@domain: enough to catch a client
// that sends a display name, a source route or stray characters.
func validMailbox(p string) bool {
	local, domain, ok := strings.Cut(p, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") {
		return false
	}
	for _, c := range p {
		if c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == ',' || c == ':' {
			return false
		}
	}
	return true
}

// readLine reads one line of at most max bytes including its CRLF and
// returns it without the CRLF, under the server's idle timeout.
func (s *session) readLine(max int) (string, error) {
	_ = s.conn.SetReadDeadline(time.Now().Add(s.srv.opts.Timeout))
	var line []byte
	for {
		chunk, err := s.r.ReadSlice('\n')
		if len(line)+len(chunk) > max {
			return "", errLineTooLong
		}
		line = append(line, chunk...)
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return "", err
		}
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return "", errBareLF
	}
	return string(line[:len(line)-2]), nil
}

// reply sends a reply of one or more lines.
func (s *session) reply(code int, lines ...string) error {
	if len(lines) == 0 {
		lines = []string{""}
	}
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		fmt.Fprintf(s.w, "%d%s%s\r\n", code, sep, l)
	}
	_ = s.conn.SetWriteDeadline(time.Now().Add(s.srv.opts.Timeout))
	return s.w.Flush()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
