package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
)

type migrateCommand struct{ env *env }

func (c *migrateCommand) Usage() string {
	return `Migrate the control database and every organization's database to the
schema this binary expects. Safe to run again: applied migrations are skipped.

Usage:
  bulwark migrate [--config FILE] [--data DIR] [--json]

Examples:
  bulwark migrate
  bulwark migrate --data /var/lib/bulwark`
}

func (c *migrateCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	cf := addConfigFlags(fs, false)
	asJSON := fs.Bool("json", false, "print JSON for machines")
	if help, err := parseFlags(fs, c, args, c.env.stdout); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("bulwark migrate", "migrate: unexpected argument %q", fs.Arg(0))
	}
	// Opening the store migrates the control database.
	a, err := cf.open(ctx, fs, c.env, io.Discard)
	if err != nil {
		return err
	}
	defer a.Close()
	orgs, err := a.orgs.List(ctx)
	if err != nil {
		return fmt.Errorf("migrate: list orgs: %w", err)
	}
	bar := newProgress(c.env.stderr, "migrating org databases", len(orgs))
	applied := 0
	for _, o := range orgs {
		n, err := a.store.MigrateOrg(ctx, o.ID)
		if err != nil {
			bar.done()
			return fmt.Errorf("migrate org %s: %w", o.Slug, err)
		}
		applied += n
		bar.add(1)
	}
	bar.done()
	if *asJSON {
		return json.NewEncoder(c.env.stdout).Encode(map[string]int{"orgs": len(orgs), "migrations_applied": applied})
	}
	_, err = fmt.Fprintf(c.env.stdout, "migrated: control database and %d org databases, %d migrations applied\n", len(orgs), applied)
	return err
}
