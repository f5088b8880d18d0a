package main

import (
	"context"
	"flag"
	"fmt"
)

type configCommand struct{ env *env }

func (c *configCommand) Usage() string {
	return `Validate the configuration (file, BULWARK_* environment, flags) and print the
effective result with every secret masked.

Usage:
  bulwark config check [--config FILE] [--data DIR] [--listen HOST:PORT] [--ops-listen HOST:PORT]

Examples:
  bulwark config check
  BULWARK_DATABASE_DRIVER=postgres bulwark config check --config /etc/bulwark.yaml

An invalid or insecure setting is reported on one line naming the key; the
exit status is then 1.`
}

func (c *configCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "check" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(c.env.stdout, c.Usage())
			return nil
		}
		return usagef("bulwark config check [--config FILE]", "config: the only subcommand is check")
	}
	fs := flag.NewFlagSet("config check", flag.ContinueOnError)
	cf := addConfigFlags(fs, true)
	if help, err := parseFlags(fs, c, args[1:], c.env.stdout); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("bulwark config check", "config check: unexpected argument %q", fs.Arg(0))
	}
	cfg, err := cf.load(fs, c.env)
	if err != nil {
		return err
	}
	if err := cfg.WriteEffective(c.env.stdout); err != nil {
		return err
	}
	fmt.Fprintln(c.env.stderr, "config: ok")
	return nil
}
