// Package org manages organizations: the tenants of Bulwark, each with its
// own database. It owns the control table orgs and the org-scope table
// org_meta.
//
// Lifecycle: an org is created active; it may be suspended (its database
// can no longer be opened: Open returns forbidden) and resumed; deleting it
// runs the OnDelete hooks first (keys are shredded there), then leaves a
// tombstone row (status deleted, so that its id is never reused and the
// deletion stays on record), evicts its handle and drops its database. A
// deleted org's slug may be taken again.
//
// Invariants: Service installs the store's gate (only active orgs are
// opened) and its open check (a database whose org_meta names another org,
// e.g. a file copied over another org's, is refused). Slugs are unique
// among orgs that are not deleted, enforced by a partial unique index, and
// can never be mistaken for an org id. A process learns of suspensions and
// deletions made by another process (the CLI) through Watch.
//
// This package never opens an org database except through the store, so
// the gate and the open check always run.
package org
