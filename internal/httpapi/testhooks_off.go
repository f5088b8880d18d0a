//go:build !bulwark_testhooks

package httpapi

import "net/http"

// addTestRoutes adds nothing in a normal build; see testhooks.go.
func addTestRoutes(*http.ServeMux) {}
