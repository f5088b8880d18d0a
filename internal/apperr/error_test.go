package apperr

import (
	"errors"
	"fmt"
	"testing"
)

func TestCodeOf_WrappedErrorKeepsItsCode(t *testing.T) {
	err := fmt.Errorf("create org: %w", Errorf(Conflict, "slug %q is taken", "acme"))
	if got := CodeOf(err); got != Conflict {
		t.Fatalf("CodeOf = %q, want conflict", got)
	}
	if got := MessageOf(err); got != `slug "acme" is taken` {
		t.Fatalf("MessageOf = %q", got)
	}
}

func TestCodeOf_PlainErrorIsInternalAndHidden(t *testing.T) {
	err := errors.New("open /data/orgs/x.db: permission denied")
	if got := CodeOf(err); got != Internal {
		t.Fatalf("CodeOf = %q, want internal", got)
	}
	if got := MessageOf(err); got != "internal error" {
		t.Fatalf("MessageOf leaks the cause: %q", got)
	}
	if CodeOf(nil) != "" {
		t.Fatal("CodeOf(nil) must be empty")
	}
}

func TestWithFields_ListsEveryField(t *testing.T) {
	err := WithFields("invalid org", FieldError{Field: "slug", Code: "too_short"}, FieldError{Field: "name", Code: "required"})
	fs := FieldsOf(fmt.Errorf("x: %w", err))
	if len(fs) != 2 || fs[0].Field != "slug" || fs[1].Code != "required" || CodeOf(err) != Invalid {
		t.Fatalf("fields = %+v", fs)
	}
}
