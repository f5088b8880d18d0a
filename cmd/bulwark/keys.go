package main

import (
	"cmp"
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
  bulwark keys rotate --org SLUG [--no-wait] [--json]
  bulwark keys reencrypt [--org SLUG] [--json]
  bulwark keys rotate-kek [--dry-run] [--json]

Every subcommand also takes --config FILE and --data DIR.

status lists each org's key versions and its key use (seals, opens,
unwraps, blind indexes, last use) as every process has saved it: a server
saves its counts every 30 s and when it stops.

rotate gives the org a new data key version: new values are sealed with it
at once, and the values sealed with older versions are re-encrypted with
it, with a progress bar. Stopping it (Ctrl-C, a crash) loses nothing: the
work is saved batch by batch, and "keys reencrypt" or a running server
(which looks every 30 s) continues it. --no-wait leaves all of it to the
server. reencrypt runs the unfinished re-encryptions of one org or all.
rotate-kek re-wraps every
stored key under a new key-encryption key (no data is rewritten): with the
local provider it writes a new DATA/keys/kek.json, with a KMS it re-wraps
under the KMS key's newest version (rotate that key in the KMS first).

Examples:
  bulwark keys status
  bulwark keys rotate --org acme
  bulwark keys reencrypt
  bulwark keys rotate-kek`
}

func (c *keysCommand) Run(ctx context.Context, args []string) error {
	const hint = "bulwark keys status|rotate --org SLUG|reencrypt|rotate-kek"
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
	var dryRun, noWait bool
	switch sub {
	case "status":
	case "rotate":
		fs.StringVar(&slug, "org", "", "the organization's slug or id")
		fs.BoolVar(&noWait, "no-wait", false, "leave the re-encryption of old values to a running server")
	case "reencrypt":
		fs.StringVar(&slug, "org", "", "only this organization (slug or id); default: every unfinished one")
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
		if !*asJSON {
			fmt.Fprintf(out, "rotated org %s: new values are sealed with data key version %d\n", o.Slug, v)
		}
		res := map[string]any{"org": o.Slug, "org_id": o.ID, "data_key_version": v}
		if !noWait {
			p, err := c.reencrypt(ctx, a, o.ID, o.Slug, *asJSON)
			if err != nil {
				return fmt.Errorf("keys rotate: %w", err)
			}
			res["reencryption"] = p
		} else if !*asJSON {
			fmt.Fprintln(out, "old values are re-encrypted by a running server, or by: bulwark keys reencrypt --org "+o.Slug)
		}
		if *asJSON {
			return json.NewEncoder(out).Encode(res)
		}
		return nil

	case "reencrypt":
		var ids []string
		if slug != "" {
			o, err := a.orgs.Get(ctx, slug)
			if err != nil {
				return fmt.Errorf("keys reencrypt: %w", err)
			}
			ids = []string{o.ID}
		} else {
			jobs, err := a.reenc.Jobs(ctx)
			if err != nil {
				return fmt.Errorf("keys reencrypt: %w", err)
			}
			for _, j := range jobs {
				if j.Finished == nil {
					ids = append(ids, j.OrgID)
				}
			}
		}
		var all []reencryptResult
		for _, id := range ids {
			name := id
			if o, err := a.orgs.Get(ctx, id); err == nil {
				name = o.Slug
			}
			p, err := c.reencrypt(ctx, a, id, name, *asJSON)
			if err != nil {
				return fmt.Errorf("keys reencrypt: %w", err)
			}
			all = append(all, p)
		}
		if *asJSON {
			return json.NewEncoder(out).Encode(map[string]any{"items": all})
		}
		if len(ids) == 0 {
			fmt.Fprintln(out, "no re-encryption to do")
		}
		return nil

	case "rotate-kek":
		st, err := a.ring.Status(ctx)
		if err != nil {
			return fmt.Errorf("keys rotate-kek: %w", err)
		}
		stored := 0
		for _, s := range st {
			stored += len(s.Data) + len(s.Index) + len(s.Stream)
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
		Stream    []version  `json:"stream_keys"`
		Seals     uint64     `json:"seals"`
		Opens     uint64     `json:"opens"`
		Unwraps   uint64     `json:"unwraps"`
		Blind     uint64     `json:"blind_indexes"`
		LastUsed  *time.Time `json:"last_used_at"` // null if never used
		PrimaryAt time.Time  `json:"-"`
	}
	var items []orgKeys
	var platform *orgKeys // the keys of account data in the control database
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
		for _, v := range s.Stream {
			k.Stream = append(k.Stream, version{v.Version, v.KEKID, v.CreatedAt})
		}
		if s.OrgID == keys.PlatformID {
			k.Org = "(platform)"
			platform = &k
			continue
		}
		items = append(items, k)
	}
	jobs, err := a.reenc.Jobs(ctx)
	if err != nil {
		return fmt.Errorf("keys status: %w", err)
	}
	type reencryption struct {
		Org       string     `json:"org"`
		OrgID     string     `json:"org_id"`
		Version   int        `json:"data_key_version"`
		Started   time.Time  `json:"started_at"`
		Finished  *time.Time `json:"finished_at"` // null while running
		Rewritten int64      `json:"values_reencrypted"`
		Failed    int64      `json:"values_not_opened"`
	}
	var reenc []reencryption
	for _, j := range jobs {
		reenc = append(reenc, reencryption{slugs[j.OrgID], j.OrgID, j.Target, j.Created, j.Finished, j.Rewritten, j.FailedRows})
	}
	if *asJSON {
		return json.NewEncoder(out).Encode(map[string]any{"provider": cfg.Keys.Provider, "kek": a.ring.KEKID(), "items": items, "platform": platform, "reencryptions": reenc})
	}
	defer func() {
		if len(reenc) == 0 {
			return
		}
		fmt.Fprintln(out, "\nRe-encryptions after rotation:")
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ORG\tTO VERSION\tSTARTED\tSTATE\tRE-ENCRYPTED\tNOT OPENED")
		for _, r := range reenc {
			state := "running"
			if r.Finished != nil {
				state = "done " + r.Finished.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\n", cmp.Or(r.Org, r.OrgID), r.Version, r.Started.Format(time.RFC3339), state, r.Rewritten, r.Failed)
		}
		tw.Flush()
	}()
	fmt.Fprintf(out, "KEK: %s (provider %s)\n", a.ring.KEKID(), cfg.Keys.Provider)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ORG\tPRIMARY\tDATA VERSIONS\tPRIMARY AGE\tSEALS\tOPENS\tUNWRAPS\tLAST USED\tORG ID")
	rows := items
	if platform != nil {
		rows = append(rows, *platform)
	}
	for _, k := range rows {
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

// reencryptResult is what one org's re-encryption did, for --json.
type reencryptResult struct {
	Org       string `json:"org"`
	OrgID     string `json:"org_id"`
	Version   int    `json:"data_key_version"`
	Scanned   int64  `json:"rows_scanned"`
	Rewritten int64  `json:"values_reencrypted"`
	Failed    int64  `json:"values_not_opened"`
	Finished  bool   `json:"finished"`
}

// reencrypt runs the org's re-encryption with a progress bar on stderr
// (none with --json). Ctrl-C stops it between batches; what was done stays
// done and the rest is left to the next run or a server.
func (c *keysCommand) reencrypt(ctx context.Context, a *app, orgID, name string, quiet bool) (reencryptResult, error) {
	var bar *progress
	var last int64
	p, err := a.reenc.Run(ctx, orgID, func(p keys.Progress) {
		if quiet {
			return
		}
		if bar == nil {
			bar = newProgress(c.env.stderr, "re-encrypting "+name, int(p.Total))
		}
		bar.add(int(p.Scanned - last))
		last = p.Scanned
	})
	if bar != nil {
		bar.done()
	}
	res := reencryptResult{Org: name, OrgID: orgID, Version: p.Target, Scanned: p.Scanned,
		Rewritten: p.Rewrote, Failed: p.Failed, Finished: p.Finished}
	switch {
	case keys.IsLeased(err):
		if !quiet {
			fmt.Fprintf(c.env.stdout, "org %s: the re-encryption is running in another process (a server); it finishes there\n", name)
		}
		return res, nil
	case err != nil && ctx.Err() != nil:
		return res, fmt.Errorf("stopped after %d of %d rows; the rest continues with: bulwark keys reencrypt --org %s (or a running server)", p.Scanned, p.Total, name)
	case err != nil:
		return res, err
	}
	if !quiet {
		if p.Target == 0 {
			fmt.Fprintf(c.env.stdout, "org %s: no re-encryption to do\n", name)
		} else {
			fmt.Fprintf(c.env.stdout, "org %s: %d values re-encrypted with data key version %d (%d rows looked at)\n", name, p.Rewrote, p.Target, p.Scanned)
		}
		if p.Failed > 0 {
			fmt.Fprintf(c.env.stdout, "org %s: %d values did not open (damaged) and were left as they are\n", name, p.Failed)
		}
	}
	return res, nil
}
