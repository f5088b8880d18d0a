package observe

import "sync/atomic"

// Health is the process's readiness: false until the server has finished
// starting, and false again once it begins to shut down, so a load balancer
// stops sending traffic before connections are closed. Safe for concurrent use.
type Health struct {
	ready atomic.Bool
}

// NewHealth returns a Health that is not ready.
func NewHealth() *Health { return &Health{} }

// SetReady marks the process ready (or not) to take traffic.
func (h *Health) SetReady(ready bool) { h.ready.Store(ready) }

// Ready reports whether the process takes traffic.
func (h *Health) Ready() bool { return h.ready.Load() }
