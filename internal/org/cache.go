package org

import (
	"sync"
	"time"

	"bulwark/internal/authz"
)

// readTTL is how long an org and a member's access, once read, answer
// requests without a query. A change made by this process clears the
// cache at once; a change made by another (the CLI, another node) is
// seen within readTTL, as revocations are.
const readTTL = time.Second

// ReadTTL is readTTL, for tests of other packages.
const ReadTTL = readTTL

// maxCached bounds the cache; past it, it starts over.
const maxCached = 10000

// readCache holds recent reads of Get, Access and Policy.
type readCache struct {
	mu     sync.Mutex
	orgs   map[string]cachedOrg // by id and by slug
	access map[[2]string]cachedAccess
	policy map[string]cachedAccess // by org id; role unused
}

type cachedOrg struct {
	o  Org
	at time.Time
}

type cachedAccess struct {
	role authz.Role
	pol  Policy
	at   time.Time
}

func (c *readCache) org(key string) (Org, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.orgs[key]
	if !ok || time.Since(e.at) >= readTTL {
		return Org{}, false
	}
	return e.o, true
}

func (c *readCache) putOrg(o Org, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.orgs == nil || len(c.orgs) >= maxCached {
		c.orgs = map[string]cachedOrg{}
	}
	c.orgs[o.ID] = cachedOrg{o, at}
	c.orgs[o.Slug] = cachedOrg{o, at}
}

func (c *readCache) accessOf(orgID, userID string) (authz.Role, Policy, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.access[[2]string{orgID, userID}]
	if !ok || time.Since(e.at) >= readTTL {
		return "", Policy{}, false
	}
	return e.role, e.pol.clone(), true
}

func (c *readCache) putAccess(orgID, userID string, role authz.Role, p Policy, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.access == nil || len(c.access) >= maxCached {
		c.access = map[[2]string]cachedAccess{}
	}
	c.access[[2]string{orgID, userID}] = cachedAccess{role, p, at}
}

func (c *readCache) policyOf(orgID string) (Policy, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.policy[orgID]
	if !ok || time.Since(e.at) >= readTTL {
		return Policy{}, false
	}
	return e.pol.clone(), true
}

func (c *readCache) putPolicy(orgID string, p Policy, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.policy == nil || len(c.policy) >= maxCached {
		c.policy = map[string]cachedAccess{}
	}
	c.policy[orgID] = cachedAccess{pol: p, at: at}
}

// clear forgets every read: after any change this process makes.
func (c *readCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.orgs, c.access, c.policy = nil, nil, nil
}

// clone copies p's slices, so that a caller changing what it got cannot
// change the cache.
func (p Policy) clone() Policy {
	p.IPAllowlist = append([]string{}, p.IPAllowlist...)
	p.Password.RequireClasses = append([]string{}, p.Password.RequireClasses...)
	return p
}
