package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"bulwark/internal/org"
)

type orgCommand struct{ env *env }

func (c *orgCommand) Usage() string {
	return `Manage organizations (the tenants). Each has its own database.

Usage:
  bulwark org create --name NAME --slug SLUG [--json]
  bulwark org list [--json]
  bulwark org suspend|resume SLUG [--json]
  bulwark org delete SLUG [--dry-run] [--json]

Every subcommand also takes --config FILE and --data DIR.

Examples:
  bulwark org create --name "Acme Corp" --slug acme
  bulwark org suspend acme
  bulwark org delete acme --dry-run

delete destroys the org's database; it cannot be undone.`
}

func (c *orgCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("bulwark org create|list|suspend|resume|delete ...", "org: missing subcommand")
	}
	sub, args := args[0], args[1:]
	if sub == "-h" || sub == "--help" || sub == "help" {
		fmt.Fprintln(c.env.stdout, c.Usage())
		return nil
	}
	fs := flag.NewFlagSet("org "+sub, flag.ContinueOnError)
	cf := addConfigFlags(fs, false)
	asJSON := fs.Bool("json", false, "print JSON for machines")
	var name, slug string
	var dryRun bool
	switch sub {
	case "create":
		fs.StringVar(&name, "name", "", "the organization's display name")
		fs.StringVar(&slug, "slug", "", "the organization's slug: lowercase, 3-40 characters")
	case "delete", "suspend":
		fs.BoolVar(&dryRun, "dry-run", false, "show what would change and change nothing")
	case "list", "resume":
	default:
		return usagef("bulwark org create|list|suspend|resume|delete ...", "org: unknown subcommand %q", sub)
	}
	// Flags may come before or after the SLUG argument.
	positional, err := parseInterspersed(fs, c, args, c.env.stdout)
	if err != nil || positional == nil {
		return err
	}
	target := ""
	switch sub {
	case "create":
		if name == "" || slug == "" || len(*positional) > 0 {
			return usagef(`bulwark org create --name "Acme Corp" --slug acme`, "org create: --name and --slug are required")
		}
	case "list":
		if len(*positional) > 0 {
			return usagef("bulwark org list [--json]", "org list: unexpected argument %q", (*positional)[0])
		}
	default:
		if len(*positional) != 1 {
			return usagef(fmt.Sprintf("bulwark org %s acme", sub), "org %s: give exactly one SLUG", sub)
		}
		target = (*positional)[0]
	}

	a, err := cf.open(ctx, fs, c.env, io.Discard)
	if err != nil {
		return err
	}
	defer a.Close()

	out := orgPrinter{w: c.env.stdout, json: *asJSON}
	switch sub {
	case "create":
		o, err := a.orgs.Create(ctx, name, slug)
		if err != nil {
			return fmt.Errorf("org create: %w", err)
		}
		return out.one("created", o)
	case "list":
		orgs, err := a.orgs.List(ctx)
		if err != nil {
			return fmt.Errorf("org list: %w", err)
		}
		return out.list(orgs)
	}
	if dryRun {
		o, err := a.orgs.Get(ctx, target)
		if err != nil {
			return fmt.Errorf("org %s: %w", sub, err)
		}
		return out.one("would "+sub, o)
	}
	var o org.Org
	switch sub {
	case "suspend":
		o, err = a.orgs.Suspend(ctx, target)
	case "resume":
		o, err = a.orgs.Resume(ctx, target)
	case "delete":
		o, err = a.orgs.Delete(ctx, target)
	}
	if err != nil {
		return fmt.Errorf("org %s: %w", sub, err)
	}
	return out.one(pastTense[sub], o)
}

var pastTense = map[string]string{"suspend": "suspended", "resume": "resumed", "delete": "deleted"}

// parseInterspersed parses flags that may appear before and after the
// positional arguments. It returns nil positional arguments after -h.
func parseInterspersed(fs *flag.FlagSet, c command, args []string, stdout io.Writer) (*[]string, error) {
	var positional []string
	for {
		help, err := parseFlags(fs, c, args, stdout)
		if help || err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return &positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

type orgPrinter struct {
	w    io.Writer
	json bool
}

type orgJSON struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Slug      string    `json:"slug"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func toJSON(o org.Org) orgJSON {
	return orgJSON{ID: o.ID, Name: o.Name, Slug: o.Slug, Status: string(o.Status), CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt}
}

func (p orgPrinter) one(verb string, o org.Org) error {
	if p.json {
		return json.NewEncoder(p.w).Encode(toJSON(o))
	}
	_, err := fmt.Fprintf(p.w, "%s org %s (%s), id %s, status %s\n", verb, o.Slug, o.Name, o.ID, o.Status)
	return err
}

func (p orgPrinter) list(orgs []org.Org) error {
	if p.json {
		items := make([]orgJSON, 0, len(orgs))
		for _, o := range orgs {
			items = append(items, toJSON(o))
		}
		return json.NewEncoder(p.w).Encode(map[string]any{"items": items})
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SLUG\tNAME\tSTATUS\tID\tCREATED")
	for _, o := range orgs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", o.Slug, o.Name, o.Status, o.ID, o.CreatedAt.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}
