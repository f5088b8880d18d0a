package org

import (
	"strings"

	"bulwark/internal/apperr"
	"bulwark/internal/store"
)

// Slug length limits.
const (
	MinSlugLen = 3
	MaxSlugLen = 40
)

// reservedSlugs are names that routes, consoles or people could confuse
// with Bulwark's own pages.
var reservedSlugs = map[string]bool{
	"about": true, "account": true, "admin": true, "api": true, "app": true, "assets": true,
	"audit": true, "auth": true, "billing": true, "blog": true, "bulwark": true, "console": true,
	"dashboard": true, "debug": true, "docs": true, "help": true, "healthz": true, "internal": true,
	"login": true, "logout": true, "mail": true, "me": true, "metrics": true, "new": true,
	"null": true, "oauth": true, "ops": true, "org": true, "orgs": true, "public": true,
	"readyz": true, "root": true, "security": true, "settings": true, "signin": true,
	"signout": true, "signup": true, "sso": true, "static": true, "status": true, "support": true,
	"system": true, "undefined": true, "v1": true, "v2": true, "well-known": true, "www": true,
}

// ValidateSlug checks an org slug: lower-case letters, digits and '-', 3
// to 40 characters, starting with a letter, no leading, trailing or
// doubled '-', not a reserved word and not shaped like an org id. Returns
// invalid with the field "slug".
func ValidateSlug(slug string) error {
	if code, msg := slugProblem(slug); code != "" {
		return apperr.WithFields("invalid slug", apperr.FieldError{Field: "slug", Code: code, Message: msg})
	}
	return nil
}

func slugProblem(slug string) (code, message string) {
	switch {
	case slug == "":
		return "required", "slug is required"
	case len(slug) < MinSlugLen:
		return "too_short", "slug must be at least 3 characters"
	case len(slug) > MaxSlugLen:
		return "too_long", "slug must be at most 40 characters"
	}
	for i := 0; i < len(slug); i++ {
		c := slug[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return "invalid_chars", "slug may hold only lower-case letters, digits and '-'"
		}
	}
	switch {
	case slug[0] < 'a' || slug[0] > 'z':
		return "invalid_start", "slug must start with a letter"
	case strings.HasSuffix(slug, "-"):
		return "invalid_end", "slug must not end with '-'"
	case strings.Contains(slug, "--"):
		return "double_dash", "slug must not contain '--'"
	case reservedSlugs[slug]:
		return "reserved", "slug is reserved"
	case store.ValidOrgID(slug):
		return "looks_like_id", "slug must not look like an org id"
	}
	return "", ""
}
