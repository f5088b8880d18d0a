package kms

import (
	"testing"

	"bulwark/internal/storetest"
)

// TestMain lets the keyring tests of every provider run on a throwaway
// PostgreSQL cluster when BULWARK_TEST_POSTGRES is not set, and stops it.
func TestMain(m *testing.M) { storetest.Main(m) }
