package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"time"

	"bulwark/internal/audit"
	"bulwark/internal/org"
)

type auditCommand struct{ env *env }

func (c *auditCommand) Usage() string {
	return `Verify, export and checkpoint the audit logs.

Usage:
  bulwark audit verify [--org SLUG | --all] [--json]
  bulwark audit export --org SLUG [--format jsonl|csv] [--action A] [--actor ID] [--since T] [--until T]
  bulwark audit checkpoint [--org SLUG | --all]

Every subcommand also takes --config FILE and --data DIR.

Each org has its own log in its own database; operator, org and key events
are in the control-plane log (verify and checkpoint without --org or
--all). verify walks a log's hash chain and its signed checkpoints and
names the first bad seq; it exits 1 when a log does not verify. export
writes an org's events, oldest first, to stdout (the export is itself
recorded in the org's log). checkpoint signs the logs' heads now (a server
does so every minute for the logs it wrote).

--action takes an action or a prefix such as auth.*; --since and --until
take RFC 3339 times.

Examples:
  bulwark audit verify --all
  bulwark audit export --org acme --format csv > acme-audit.csv
  bulwark audit export --org acme --action 'auth.*' --since 2026-11-01T00:00:00Z`
}

func (c *auditCommand) Run(ctx context.Context, args []string) error {
	const hint = "bulwark audit verify|export|checkpoint ..."
	if len(args) == 0 {
		return usagef(hint, "audit: missing subcommand")
	}
	sub, args := args[0], args[1:]
	if sub == "-h" || sub == "--help" || sub == "help" {
		fmt.Fprintln(c.env.stdout, c.Usage())
		return nil
	}
	fs := flag.NewFlagSet("audit "+sub, flag.ContinueOnError)
	cf := addConfigFlags(fs, false)
	var slug, format, action, actor, since, until string
	var all, asJSON bool
	fs.StringVar(&slug, "org", "", "the organization's slug or id")
	switch sub {
	case "verify":
		fs.BoolVar(&all, "all", false, "every log: the control-plane log and every org's")
		fs.BoolVar(&asJSON, "json", false, "print JSON for machines")
	case "checkpoint":
		fs.BoolVar(&all, "all", false, "every log: the control-plane log and every org's")
	case "export":
		fs.StringVar(&format, "format", audit.JSONL, "jsonl or csv")
		fs.StringVar(&action, "action", "", "only this action, or a prefix such as auth.*")
		fs.StringVar(&actor, "actor", "", "only this actor id (or TYPE:ID)")
		fs.StringVar(&since, "since", "", "only events at or after this RFC 3339 time")
		fs.StringVar(&until, "until", "", "only events before this RFC 3339 time")
	default:
		return usagef(hint, "audit: unknown subcommand %q", sub)
	}
	if help, err := parseFlags(fs, c, args, c.env.stdout); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef(hint, "audit %s: unexpected argument %q", sub, fs.Arg(0))
	}
	if all && slug != "" {
		return usagef("bulwark audit "+sub+" --org acme", "audit %s: give --org or --all, not both", sub)
	}
	f := audit.Filter{Action: action, Actor: actor}
	if sub == "export" {
		if slug == "" {
			return usagef("bulwark audit export --org acme", "audit export: --org is required")
		}
		if format != audit.JSONL && format != audit.CSV {
			return usagef("bulwark audit export --org acme --format csv", "audit export: --format is jsonl or csv, not %q", format)
		}
		for _, t := range []struct {
			flag, v string
			into    *time.Time
		}{{"since", since, &f.Since}, {"until", until, &f.Until}} {
			if t.v == "" {
				continue
			}
			v, err := time.Parse(time.RFC3339, t.v)
			if err != nil {
				return usagef("bulwark audit export --org acme --since 2026-11-01T00:00:00Z", "audit export: --%s %q is not an RFC 3339 time", t.flag, t.v)
			}
			*t.into = v
		}
	}
	a, err := cf.open(ctx, fs, c.env, c.env.stderr)
	if err != nil {
		return err
	}
	defer a.Close()

	type target struct{ id, name string }
	var targets []target
	switch {
	case slug != "":
		o, err := a.orgs.Get(ctx, slug)
		if err != nil {
			return fmt.Errorf("audit %s: %w", sub, err)
		}
		targets = []target{{o.ID, "org " + o.Slug}}
	default:
		targets = []target{{audit.ControlLog, "control-plane log"}}
		if all {
			orgs, err := a.orgs.List(ctx)
			if err != nil {
				return fmt.Errorf("audit %s: %w", sub, err)
			}
			for _, o := range orgs {
				if o.Status != org.Deleted {
					targets = append(targets, target{o.ID, "org " + o.Slug})
				}
			}
		}
	}
	out := c.env.stdout

	switch sub {
	case "export":
		src := audit.SourceFrom(ctx)
		t := targets[0]
		// The read is recorded first, so that no export goes unrecorded.
		if err := a.audit.Record(ctx, t.id, src.Event("audit.exported", audit.Resource{Type: "audit_log", ID: t.id}, audit.Success,
			map[string]string{"format": format, "action": action, "actor": actor, "since": since, "until": until})); err != nil {
			return fmt.Errorf("audit export: %w", err)
		}
		n, err := a.audit.Export(ctx, t.id, f, format, out)
		if err != nil {
			return fmt.Errorf("audit export: %w", err)
		}
		fmt.Fprintf(c.env.stderr, "exported %d events of %s\n", n, t.name)
		return nil

	case "checkpoint":
		for _, t := range targets {
			cp, err := a.audit.Checkpoint(ctx, t.id, audit.OnDemand)
			if err != nil {
				return fmt.Errorf("audit checkpoint: %s: %w", t.name, err)
			}
			if cp == nil {
				fmt.Fprintf(out, "%s: empty, nothing to sign\n", t.name)
				continue
			}
			fmt.Fprintf(out, "%s: signed head seq %d (key %s)\n", t.name, cp.Seq, cp.KID)
		}
		return nil
	}

	// verify
	type result struct {
		Log string `json:"log"`
		ID  string `json:"log_id"`
		audit.Report
	}
	var results []result
	bad := 0
	for _, t := range targets {
		rep, err := a.audit.Verify(ctx, t.id)
		if err != nil {
			return fmt.Errorf("audit verify: %s: %w", t.name, err)
		}
		results = append(results, result{t.name, t.id, rep})
		if !rep.OK {
			bad++
		}
		if asJSON {
			continue
		}
		cp := "no checkpoint yet"
		if rep.Checkpoint != nil {
			cp = fmt.Sprintf("checkpoint at seq %d signed %s", rep.Checkpoint.Seq, rep.Checkpoint.CreatedAt.Format(time.RFC3339))
		}
		if rep.OK {
			fmt.Fprintf(out, "%s: ok, %d events checked, head seq %d, %s\n", t.name, rep.EventsChecked, rep.Head.Seq, cp)
		} else {
			fmt.Fprintf(out, "%s: DOES NOT VERIFY at seq %d: %s\n", t.name, *rep.FirstBadSeq, rep.Problem)
		}
	}
	if asJSON {
		if err := json.NewEncoder(out).Encode(map[string]any{"items": results}); err != nil {
			return err
		}
	}
	if bad > 0 {
		return errors.New(plural(bad, "audit log does", "audit logs do") + " not verify")
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
