package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"bulwark/internal/audit"
	"bulwark/internal/config"
	"bulwark/internal/identity"
)

type userCommand struct{ env *env }

func (c *userCommand) Usage() string {
	return `Import and unlock user accounts.

Usage:
  bulwark user import --file FILE.jsonl [--dry-run] [--json]
  bulwark user unlock --email EMAIL

Every subcommand also takes --config FILE and --data DIR.

import reads one JSON object per line:
  {"email": "...", "name": "...", "password_hash": "...", "email_verified": true}
where password_hash is an argon2id PHC string, a bcrypt hash ($2a$, $2b$,
$2y$) or sha512$SALT$HEX with HEX = SHA-512(SALT || password). Every line
is checked first: one bad line and nothing is imported. Addresses that
have an account already are skipped. Imported passwords are verified at
the next login and then rehashed with argon2id.

unlock lifts the lock that failed logins put on an account.

Examples:
  bulwark user import --file users.jsonl --dry-run
  bulwark user unlock --email alice@example.com`
}

func (c *userCommand) Run(ctx context.Context, args []string) error {
	const hint = "bulwark user import --file FILE.jsonl | unlock --email EMAIL"
	if len(args) == 0 {
		return usagef(hint, "user: missing subcommand")
	}
	sub, args := args[0], args[1:]
	if sub == "-h" || sub == "--help" || sub == "help" {
		fmt.Fprintln(c.env.stdout, c.Usage())
		return nil
	}
	fs := flag.NewFlagSet("user "+sub, flag.ContinueOnError)
	cf := addConfigFlags(fs, false)
	var file, email string
	var dryRun, asJSON bool
	switch sub {
	case "import":
		fs.StringVar(&file, "file", "", "JSON lines of accounts to import")
		fs.BoolVar(&dryRun, "dry-run", false, "check the file and import nothing")
		fs.BoolVar(&asJSON, "json", false, "print JSON for machines")
	case "unlock":
		fs.StringVar(&email, "email", "", "the account's e-mail address")
	default:
		return usagef(hint, "user: unknown subcommand %q", sub)
	}
	if help, err := parseFlags(fs, c, args, c.env.stdout); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef(hint, "user %s: unexpected argument %q", sub, fs.Arg(0))
	}
	if sub == "import" && file == "" {
		return usagef("bulwark user import --file users.jsonl", "user import: --file is required")
	}
	if sub == "unlock" && email == "" {
		return usagef("bulwark user unlock --email alice@example.com", "user unlock: --email is required")
	}
	var users []identity.ImportUser
	if sub == "import" {
		f, err := os.Open(file)
		if err != nil {
			return fmt.Errorf("user import: %w", err)
		}
		users, err = identity.ReadImport(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("user import: %w", err)
		}
		if dryRun {
			if asJSON {
				return json.NewEncoder(c.env.stdout).Encode(map[string]any{"valid": len(users), "imported": 0})
			}
			_, err := fmt.Fprintf(c.env.stdout, "%d accounts would be imported (addresses that exist already are skipped)\n", len(users))
			return err
		}
	}
	a, err := cf.open(ctx, fs, c.env, c.env.stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	src := audit.SourceFrom(ctx)
	if sub == "unlock" {
		if err := a.ids.Unlock(ctx, src, email); err != nil {
			return fmt.Errorf("user unlock: %w", err)
		}
		_, err := fmt.Fprintln(c.env.stdout, "unlocked")
		return err
	}
	n, skipped, err := a.ids.Import(ctx, src, users)
	if err != nil {
		return fmt.Errorf("user import: %w", err)
	}
	if asJSON {
		return json.NewEncoder(c.env.stdout).Encode(map[string]any{"imported": n, "skipped": skipped})
	}
	_, err = fmt.Fprintf(c.env.stdout, "imported %d accounts, skipped %d that exist already\n", n, skipped)
	return err
}

type operatorCommand struct{ env *env }

func (c *operatorCommand) Usage() string {
	return `Create operator (staff) accounts.

Usage:
  bulwark operator create --email EMAIL [--name NAME]

Also takes --config FILE and --data DIR.

create prints a one-time setup link (24 hours) on the ops listener, where
the operator sets a password and enrols TOTP: operators always log in with
a second factor, and only on the ops listener.

Example:
  bulwark operator create --email oncall@example.com --name "On-call"`
}

func (c *operatorCommand) Run(ctx context.Context, args []string) error {
	const hint = `bulwark operator create --email oncall@example.com`
	if len(args) == 0 || (args[0] != "create" && args[0] != "-h" && args[0] != "--help" && args[0] != "help") {
		return usagef(hint, "operator: the subcommand is create")
	}
	if args[0] != "create" {
		fmt.Fprintln(c.env.stdout, c.Usage())
		return nil
	}
	fs := flag.NewFlagSet("operator create", flag.ContinueOnError)
	cf := addConfigFlags(fs, false)
	var email, name string
	fs.StringVar(&email, "email", "", "the operator's e-mail address")
	fs.StringVar(&name, "name", "Operator", "the operator's name")
	if help, err := parseFlags(fs, c, args[1:], c.env.stdout); help || err != nil {
		return err
	}
	if email == "" || fs.NArg() > 0 {
		return usagef(hint, "operator create: --email is required")
	}
	a, err := cf.open(ctx, fs, c.env, c.env.stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	link, err := a.ids.CreateOperator(ctx, audit.SourceFrom(ctx), email, name, opsURL(a.cfg))
	if err != nil {
		return fmt.Errorf("operator create: %w", err)
	}
	_, err = fmt.Fprintf(c.env.stdout, "operator created; give them this one-time setup link (valid 24 hours, ops listener only):\n%s\n", link)
	return err
}

// opsURL is how operators reach the ops listener.
func opsURL(cfg config.Config) string {
	if cfg.TLS.Mode == config.TLSOff {
		return "http://" + cfg.OpsListen
	}
	return "https://" + cfg.OpsListen
}
