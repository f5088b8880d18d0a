package main

import (
	"testing"

	"bulwark/internal/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }
