// Command bulwark is the Bulwark server and its operator's command line.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"bulwark/internal/apperr"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err := run(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode prints err as one line on stderr and returns the documented exit
// status: 0 success, 1 failure, 2 usage error.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var u *usageError
	if errors.As(err, &u) {
		fmt.Fprintf(stderr, "bulwark: %s\n", u.msg)
		if u.hint != "" {
			fmt.Fprintf(stderr, "usage: %s\n", u.hint)
		}
		return 2
	}
	msg := err.Error()
	var parts []string
	for _, f := range apperr.FieldsOf(err) {
		p := f.Field + ": " + f.Code
		if f.Message != "" {
			p += " (" + f.Message + ")"
		}
		parts = append(parts, p)
	}
	if len(parts) > 0 {
		msg += ": " + strings.Join(parts, "; ")
	}
	fmt.Fprintf(stderr, "bulwark: %s\n", oneLine(msg))
	return 1
}
