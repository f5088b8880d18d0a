package main

import (
	"context"
	"flag"
	"fmt"
	"runtime"
)

type versionCommand struct{ env *env }

func (c *versionCommand) Usage() string {
	return `Print the version of this binary.

Usage:
  bulwark version`
}

func (c *versionCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if help, err := parseFlags(fs, c, args, c.env.stdout); help || err != nil {
		return err
	}
	_, err := fmt.Fprintf(c.env.stdout, "bulwark %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return err
}
