package main

import (
	"bulwark/internal/audit"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// env is what every subcommand is given instead of reaching for globals.
type env struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// command is one subcommand: its own flag set, usage text and Run.
type command interface {
	Run(ctx context.Context, args []string) error
	Usage() string
}

// usageError is a mistake in how the command was called: exit status 2.
type usageError struct {
	msg  string
	hint string
}

func (e *usageError) Error() string { return e.msg }

func usagef(hint, format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...), hint: hint}
}

const mainUsage = `bulwark: a secure multi-tenant SaaS backend in one binary.

Usage: bulwark COMMAND [flags]

Commands:
  serve            serve the public and ops listeners
  org              create, list, suspend, resume and delete organizations
  keys             inspect and rotate encryption keys (status, rotate, reencrypt, rotate-kek)
  audit            verify, export and checkpoint the audit logs
  user             import accounts (bcrypt, salted SHA-512, argon2id hashes), unlock
  operator         create operator (staff) accounts
  migrate          migrate the control database and every org database
  config check     validate the configuration and print it, secrets masked
  version          print the version

Run "bulwark COMMAND -h" for a command's flags and examples.
Exit status: 0 success, 1 failure, 2 usage error.`

// run is the whole program: main only calls it, and tests call it too.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	e := &env{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) < 2 {
		fmt.Fprintln(stderr, mainUsage)
		return &usageError{msg: "no command given", hint: "bulwark serve"}
	}
	commands := map[string]command{
		"serve":    &serveCommand{env: e},
		"org":      &orgCommand{env: e},
		"migrate":  &migrateCommand{env: e},
		"keys":     &keysCommand{env: e},
		"audit":    &auditCommand{env: e},
		"user":     &userCommand{env: e},
		"operator": &operatorCommand{env: e},
		"config":   &configCommand{env: e},
		"version":  &versionCommand{env: e},
	}
	name, rest := args[1], args[2:]
	switch name {
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, mainUsage)
		return nil
	}
	cmd, ok := commands[name]
	if !ok {
		names := make([]string, 0, len(commands))
		for n := range commands {
			names = append(names, n)
		}
		sort.Strings(names)
		return usagef("bulwark "+strings.Join(names, "|")+" ...", "unknown command %q", name)
	}
	if name != "serve" {
		// What a command changes is recorded in the audit log as done by
		// the command line (a server's own work is the system's).
		ctx = audit.WithSource(ctx, cliSource)
	}
	return cmd.Run(ctx, rest)
}

// cliSource is the audit source of the command line: whoever can run it
// on the server's machine, which makes them an operator.
var cliSource = audit.Source{Actor: audit.Actor{Type: audit.ActorOperator, ID: "cli"}}

// parseFlags parses args with fs, printing usage on -h and turning flag
// errors into usage errors.
func parseFlags(fs *flag.FlagSet, c command, args []string, stdout io.Writer) (help bool, err error) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, c.Usage())
			return true, nil
		}
		return false, &usageError{msg: err.Error(), hint: firstUsageLine(c.Usage())}
	}
	return false, nil
}

func firstUsageLine(u string) string {
	for _, l := range strings.Split(u, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "bulwark ") {
			return l
		}
	}
	return strings.SplitN(u, "\n", 2)[0]
}

// oneLine folds a multi-line message into one line for stderr.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}
