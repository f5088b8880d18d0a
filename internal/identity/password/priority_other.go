//go:build !linux

package password

// yieldToRequests does nothing where the pool does not know how to ask
// the kernel to run other threads first.
func yieldToRequests() {}
