package edge

import (
	"net"
	"net/http"
	"net/netip"
)

// Allowlist lets a request through only when its client address (taken from
// r.RemoteAddr, never from a header a client can set) lies in one of the
// allowed prefixes; other requests go to deny (a bare 403 when deny is nil).
// IPv4-mapped IPv6 addresses are matched as IPv4. An empty list allows
// nothing.
func Allowlist(allowed []netip.Prefix, deny http.Handler) func(http.Handler) http.Handler {
	prefixes := make([]netip.Prefix, 0, len(allowed))
	for _, p := range allowed {
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		prefixes = append(prefixes, p.Masked())
	}
	if deny == nil {
		deny = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "forbidden", http.StatusForbidden)
		})
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if addr, ok := ClientAddr(r); ok {
				for _, p := range prefixes {
					if p.Contains(addr) {
						next.ServeHTTP(w, r)
						return
					}
				}
			}
			deny.ServeHTTP(w, r)
		})
	}
}

// ClientAddr returns the address of the peer that sent r, from r.RemoteAddr,
// without its zone and with IPv4-mapped IPv6 turned into IPv4.
func ClientAddr(r *http.Request) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	host := r.RemoteAddr
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}
