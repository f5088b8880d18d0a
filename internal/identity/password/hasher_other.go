//go:build !linux

package password

import (
	"errors"
	"os"
	"os/exec"
)

// startHasherProcess is only written for Linux, where a thread's priority
// passes to the process it forks; elsewhere a Pool hashes in its own
// process.
func startHasherProcess(*exec.Cmd) error { return errors.ErrUnsupported }

func pollable(f *os.File) *os.File { return f }

func ignoreStopSignals() {}

func selfExe(name string) string { return name }
