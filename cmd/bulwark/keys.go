package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"bulwark/internal/config"
	"bulwark/internal/keys"
)

type keysCommand struct{ env *env }

func (c *keysCommand) Usage() string {
	return `Inspect and rotate the keys that encrypt organizations' data.

Usage:
  bulwark keys status [--json]
  bulwark keys rotate --org SLUG [--json]
  bulwark keys rotate-kek [--dry-run] [--json]

Every subcommand also takes --config FILE and --data DIR.

status lists each org's key versions and its key use (seals, opens,
unwraps, blind indexes, last use) as every process has saved it: a server
saves its counts every 30 s and when it stops.

rotate gives the org a new data key version: new values are sealed with it,
values sealed with older versions still open. rotate-kek re-wraps every
stored key under a new key-encryption key (no data is rewritten): with the
local provider it writes a new DATA/keys/kek.json, with a KMS it re-wraps
under the KMS key's newest version (rotate that key in the KMS first).

Examples:
  bulwark keys status
  bulwark keys rotate --org acme
  bulwark keys rotate-kek`
}

func (c *keysCommand) Run(ctx context.Context, args []string) error {
	const hint = "bulwark keys status|rotate --org SLUG|rotate-kek"
	if len(args) == 0 {
		return usagef(hint, "keys: missing subcommand")
	}
	sub, args := args[0], args[1:]
	if sub == "-h" || sub == "--help" || sub == "help" {
		fmt.Fprintln(c.env.stdout, c.Usage())
		return nil
	}
	fs := flag.NewFlagSet("keys "+sub, flag.ContinueOnError)
	cf := addConfigFlags(fs, false)
	asJSON := fs.Bool("json", false, "print JSON for machines")
	var slug string
	var dryRun bool
	switch sub {
	case "status":
	case "rotate":
		fs.StringVar(&slug, "org", "", "the organization's slug or id")
	case "rotate-kek":
		fs.BoolVar(&dryRun, "dry-run", false, "say what would be re-wrapped and change nothing")
	default:
		return usagef(hint, "keys: unknown subcommand %q", sub)
	}
	if help, err := parseFlags(fs, c, args, c.env.stdout); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef(hint, "keys %s: unexpected argument %q", sub, fs.Arg(0))
	}
	if sub == "rotate" && slug == "" {
		return usagef("bulwark keys rotate --org acme", "keys rotate: --org is required")
	}
	a, err := cf.open(ctx, fs, c.env, c.env.stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	cfg, out := a.cfg, c.env.stdout

	switch sub {
	case "rotate":
		o, err := a.orgs.Get(ctx, slug)
		if err != nil {
			return fmt.Errorf("keys rotate: %w", err)
		}
		v, err := a.ring.RotateOrg(ctx, o.ID)
		if err != nil {
			return fmt.Errorf("keys rotate: %w", err)
		}
		if *asJSON {
			return json.NewEncoder(out).Encode(map[string]any{"org": o.Slug, "org_id": o.ID, "data_key_version": v})
		}
		_, err = fmt.Fprintf(out, "rotated org %s: new values are sealed with data key version %d; older versions still open\n", o.Slug, v)
		return err

	case "rotate-kek":
		st, err := a.ring.Status(ctx)
		if err != nil {
			return fmt.Errorf("keys rotate-kek: %w", err)
		}
		stored := 0
		for _, s := range st {
			stored += len(s.Data) + len(s.Index)
		}
		if dryRun {
			_, err := fmt.Fprintf(out, "would re-wrap %d keys of %d orgs under a new KEK (now %s)\n", stored, len(st), a.ring.KEKID())
			return err
		}
		before := a.ring.KEKID()
		var n int
		if cfg.Keys.Provider == config.KEKLocal {
			n, err = keys.RotateLocalKEK(ctx, a.ring, cfg.DataDir)
		} else {
			var next keys.KEK
			if next, err = openKEK(ctx, cfg); err == nil {
				n, err = a.ring.RotateKEK(ctx, next)
			}
		}
		if err != nil {
			return fmt.Errorf("keys rotate-kek: %w", err)
		}
		if *asJSON {
			return json.NewEncoder(out).Encode(map[string]any{"rewrapped": n, "old_kek": before, "kek": a.ring.KEKID()})
		}
		_, err = fmt.Fprintf(out, "re-wrapped %d keys: KEK %s replaced by %s\n", n, before, a.ring.KEKID())
		return err
	}

	// status
	st, err := a.ring.Status(ctx)
	if err != nil {
		return fmt.Errorf("keys status: %w", err)
	}
	orgs, err := a.orgs.List(ctx)
	if err != nil {
		return fmt.Errorf("keys status: %w", err)
	}
	slugs := map[string]string{}
	for _, o := range orgs {
		slugs[o.ID] = o.Slug
	}
	now := time.Now().UTC()
	type version struct {
		Version   int       `json:"version"`
		KEK       string    `json:"kek"`
		CreatedAt time.Time `json:"created_at"`
	}
	type orgKeys struct {
		Org       string     `json:"org"`
		OrgID     string     `json:"org_id"`
		Primary   int        `json:"primary_data_key_version"`
		Data      []version  `json:"data_keys"`
		Index     []version  `json:"index_keys"`
		Seals     uint64     `json:"seals"`
		Opens     uint64     `json:"opens"`
		Unwraps   uint64     `json:"unwraps"`
		Blind     uint64     `json:"blind_indexes"`
		LastUsed  *time.Time `json:"last_used_at"` // null if never used
		PrimaryAt time.Time  `json:"-"`
	}
	var items []orgKeys
	for _, s := range st {
		k := orgKeys{Org: slugs[s.OrgID], OrgID: s.OrgID, Primary: s.Primary,
			Seals: s.Seals, Opens: s.Opens, Unwraps: s.Unwraps, Blind: s.BlindIndexes}
		if !s.LastUsed.IsZero() {
			t := s.LastUsed
			k.LastUsed = &t
		}
		for _, v := range s.Data {
			k.Data = append(k.Data, version{v.Version, v.KEKID, v.CreatedAt})
			if v.Version == s.Primary {
				k.PrimaryAt = v.CreatedAt
			}
		}
		for _, v := range s.Index {
			k.Index = append(k.Index, version{v.Version, v.KEKID, v.CreatedAt})
		}
		items = append(items, k)
	}
	if *asJSON {
		return json.NewEncoder(out).Encode(map[string]any{"provider": cfg.Keys.Provider, "kek": a.ring.KEKID(), "items": items})
	}
	fmt.Fprintf(out, "KEK: %s (provider %s)\n", a.ring.KEKID(), cfg.Keys.Provider)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ORG\tPRIMARY\tDATA VERSIONS\tPRIMARY AGE\tSEALS\tOPENS\tUNWRAPS\tLAST USED\tORG ID")
	for _, k := range items {
		name := k.Org
		if name == "" {
			name = "(no live org)"
		}
		lastUsed := "never"
		if k.LastUsed != nil {
			lastUsed = k.LastUsed.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t%d\t%d\t%s\t%s\n", name, k.Primary, len(k.Data),
			now.Sub(k.PrimaryAt).Round(time.Second), k.Seals, k.Opens, k.Unwraps, lastUsed, k.OrgID)
	}
	return tw.Flush()
}
