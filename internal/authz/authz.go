// Package authz is who may do what in an org: the roles, the permissions
// that routes ask for, and the one table between them (Allowed). The
// table is documented in docs/permissions.md, and a test checks that file
// against it cell by cell, so that the documentation cannot drift.
package authz

import "slices"

// Role is what a member, an API key or an operator with a support grant
// is in an org.
type Role string

// The roles of members and API keys, strongest first, and the two roles
// of an operator while a support grant of the org is live.
const (
	Owner  Role = "owner"
	Admin  Role = "admin"
	Member Role = "member"
	Viewer Role = "viewer"

	SupportRead  Role = "support_read"  // an approved grant without write
	SupportWrite Role = "support_write" // an approved grant that allows writes
)

// MemberRoles are the roles a member or an API key can have.
var MemberRoles = []Role{Owner, Admin, Member, Viewer}

// Roles are every role of the table, in its column order.
var Roles = []Role{Owner, Admin, Member, Viewer, SupportRead, SupportWrite}

// ValidMemberRole reports whether r is a member role.
func ValidMemberRole(r string) bool { return slices.Contains(MemberRoles, Role(r)) }

// Rank orders member roles (owner 4 to viewer 1, anything else 0): a
// caller cannot give a role stronger than its own.
func Rank(r Role) int {
	switch r {
	case Owner:
		return 4
	case Admin:
		return 3
	case Member:
		return 2
	case Viewer:
		return 1
	}
	return 0
}

// Perm is what a route asks for.
type Perm string

// The permissions.
const (
	OrgRead    Perm = "org.read"    // the org's name, slug and status
	OrgUpdate  Perm = "org.update"  // rename
	OrgDelete  Perm = "org.delete"  // delete with its data, files and keys
	OrgExport  Perm = "org.export"  // the org's whole data
	PolicyRead Perm = "policy.read" // the org's security policy
	PolicySet  Perm = "policy.set"  // change it

	MembersRead   Perm = "members.read"   // list members and pending invites
	MembersManage Perm = "members.manage" // invite, change roles, remove

	APIKeysManage Perm = "api_keys.manage" // list, create and revoke API keys

	CollectionsRead   Perm = "collections.read"   // collections and their fields
	CollectionsManage Perm = "collections.manage" // create, change and delete collections
	RecordsRead       Perm = "records.read"       // read records, sensitive fields masked
	RecordsSensitive  Perm = "records.sensitive"  // read sensitive fields in clear (each read audited)
	RecordsWrite      Perm = "records.write"      // create, change and delete records

	AuditRead Perm = "audit.read" // query, export and verify the audit log

	SupportView   Perm = "support.read"   // see operators' access requests and grants
	SupportDecide Perm = "support.decide" // approve, deny and revoke them
)

// table is the permission table: for each permission, the roles that
// have it. Anything not listed is refused.
var table = map[Perm][]Role{
	OrgRead:    {Owner, Admin, Member, Viewer, SupportRead, SupportWrite},
	OrgUpdate:  {Owner, Admin},
	OrgDelete:  {Owner},
	OrgExport:  {Owner, Admin},
	PolicyRead: {Owner, Admin},
	PolicySet:  {Owner, Admin},

	MembersRead:   {Owner, Admin, Member, Viewer},
	MembersManage: {Owner, Admin},

	APIKeysManage: {Owner, Admin},

	CollectionsRead:   {Owner, Admin, Member, Viewer, SupportRead, SupportWrite},
	CollectionsManage: {Owner, Admin},
	RecordsRead:       {Owner, Admin, Member, Viewer, SupportRead, SupportWrite},
	RecordsSensitive:  {Owner, Admin, Member, SupportRead, SupportWrite},
	RecordsWrite:      {Owner, Admin, Member, SupportWrite},

	AuditRead: {Owner, Admin},

	SupportView:   {Owner, Admin},
	SupportDecide: {Owner, Admin},
}

// Perms are every permission, in the table's order.
var Perms = []Perm{OrgRead, OrgUpdate, OrgDelete, OrgExport, PolicyRead, PolicySet, MembersRead, MembersManage,
	APIKeysManage, CollectionsRead, CollectionsManage, RecordsRead, RecordsSensitive, RecordsWrite, AuditRead,
	SupportView, SupportDecide}

// Allowed is the one decision: whether role may use perm. An unknown role
// or permission is refused.
func Allowed(role Role, perm Perm) bool {
	return slices.Contains(table[perm], role)
}

// Known reports whether perm is in the table.
func Known(perm Perm) bool {
	_, ok := table[perm]
	return ok
}
