package authz

import (
	"os"
	"strings"
	"testing"
)

// The table in docs/permissions.md is the code's, cell by cell: every
// permission and role of the code is a row and a column there, and every
// cell says what Allowed says.
func TestPermissionTableMatchesTheDocumentation(t *testing.T) {
	doc, err := os.ReadFile("../../docs/permissions.md")
	if err != nil {
		t.Fatal(err)
	}
	var header []string
	rows := map[Perm][]string{}
	for _, line := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(line, "|") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		switch {
		case cells[0] == "permission":
			header = cells
		case strings.HasPrefix(cells[0], "---"):
		default:
			if _, dup := rows[Perm(cells[0])]; dup {
				t.Fatalf("permission %s listed twice", cells[0])
			}
			rows[Perm(cells[0])] = cells
		}
	}
	if len(header) != len(Roles)+2 {
		t.Fatalf("header %q: want permission, %d roles and a description", header, len(Roles))
	}
	for i, r := range Roles {
		if header[i+1] != string(r) {
			t.Fatalf("column %d is %q, want role %q", i+1, header[i+1], r)
		}
	}
	if len(rows) != len(Perms) {
		t.Fatalf("the documentation has %d permissions, the code %d", len(rows), len(Perms))
	}
	cells := 0
	for _, p := range Perms {
		row, ok := rows[p]
		if !ok {
			t.Fatalf("permission %s is not documented", p)
		}
		if len(row) != len(header) {
			t.Fatalf("row %s has %d cells, want %d", p, len(row), len(header))
		}
		for i, r := range Roles {
			want := map[bool]string{true: "yes", false: "no"}[Allowed(r, p)]
			if row[i+1] != want {
				t.Errorf("%s for %s: documented %q, the code says %q", p, r, row[i+1], want)
			}
			cells++
		}
	}
	if cells != len(Perms)*len(Roles) {
		t.Fatalf("checked %d cells", cells)
	}
}

// The code's table and its list of permissions agree; unknown roles and
// permissions are refused.
func TestAllowed_RefusesTheUnknown(t *testing.T) {
	if len(table) != len(Perms) {
		t.Fatalf("table has %d permissions, Perms %d", len(table), len(Perms))
	}
	for _, p := range Perms {
		if !Known(p) {
			t.Fatalf("%s not in the table", p)
		}
		if Allowed("", p) || Allowed("superuser", p) {
			t.Fatalf("an unknown role has %s", p)
		}
	}
	if Allowed(Owner, "records.everything") || Known("records.everything") {
		t.Fatal("an unknown permission is allowed")
	}
	// Owners have everything; viewers write nothing.
	for _, p := range Perms {
		if !Allowed(Owner, p) {
			t.Fatalf("owner lacks %s", p)
		}
	}
	for _, p := range []Perm{OrgUpdate, OrgDelete, PolicySet, MembersManage, APIKeysManage, CollectionsManage, RecordsWrite, SupportDecide} {
		if Allowed(Viewer, p) || Allowed(SupportRead, p) && p != RecordsRead {
			t.Fatalf("viewer or support_read has %s", p)
		}
	}
}
