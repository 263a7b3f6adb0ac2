package bridge

import (
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	bus "github.com/whalesong/bus"
)

// Action is what a client asks the authorizer for.
type Action int

const (
	// Subscribe asks to receive the events matching a pattern (which may
	// hold wildcards).
	Subscribe Action = iota
	// Publish asks to publish to a topic (never a wildcard).
	Publish
)

// String returns "subscribe" or "publish".
func (a Action) String() string {
	if a == Publish {
		return "publish"
	}
	return "subscribe"
}

// ---- origin ----

// originAllowed applies the origin policy: no Origin header is a non-browser
// client and passes; otherwise the list of WithAllowedOrigins, or by default
// the request's own host:port.
func (c *config) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if c.anyOrigin {
		return true
	}
	n, ok := normalizeOrigin(origin)
	if !ok {
		return false
	}
	if c.origins != nil {
		return slices.Contains(c.origins, n)
	}
	scheme, hostport, _ := strings.Cut(n, "://")
	return strings.EqualFold(hostport, withDefaultPort(r.Host, scheme))
}

// normalizeOrigin lowers scheme and host and adds the scheme's default port:
// "HTTPS://App.example.com" becomes "https://app.example.com:443".
func normalizeOrigin(origin string) (string, bool) {
	u, err := url.Parse(origin)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	return scheme + "://" + strings.ToLower(withDefaultPort(u.Host, scheme)), true
}

func withDefaultPort(host, scheme string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	port := "80"
	if scheme == "https" || scheme == "wss" {
		port = "443"
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), port)
}

// PatternWithin reports whether every topic that pattern can match is also
// matched by allowed, both being valid patterns (or topics). It is the safe
// way to check a subscribe request against a rule that holds wildcards:
//
//	PatternWithin("chat.lobby", "chat.>")   // true
//	PatternWithin("chat.*", "chat.>")       // true
//	PatternWithin("chat.>", "chat.>")       // true
//	PatternWithin(">", "chat.>")            // false: ">" also matches "admin.x"
//	PatternWithin("*.lobby", "chat.*")      // false: "*.lobby" matches "admin.lobby"
//	PatternWithin("chat.>", "chat.*")       // false: "chat.>" matches "chat.a.b"
//
// An invalid pattern or allowed is never within anything.
func PatternWithin(pattern, allowed string) bool {
	if bus.CheckPattern(pattern) != nil || bus.CheckPattern(allowed) != nil {
		return false
	}
	p := strings.Split(pattern, ".")
	a := strings.Split(allowed, ".")
	for i, at := range a {
		if at == ">" {
			return i < len(p) // ">" needs at least one token, of any kind
		}
		if i >= len(p) {
			return false // pattern matches topics shorter than allowed needs
		}
		switch pt := p[i]; {
		case pt == ">":
			return false // pattern matches any depth, allowed a fixed one
		case at == "*":
			// any single token (literal or "*") is within "*"
		case pt != at:
			return false // a literal in allowed needs that very literal
		}
	}
	return len(p) == len(a)
}

// authorize asks the configured authorizer, turning a refusal into the
// forbidden error frame.
// A panicking authorizer refuses.
func (c *config) authorizeFrame(identity any, a Action, subject string, f *clientFrame) (pe *protoError) {
	defer func() {
		if v := recover(); v != nil {
			pe = newProtoError(codeInternal, f, "authorizer panicked: %v", v)
		}
	}()
	if err := c.authorize(identity, a, subject); err != nil {
		return newProtoError(codeForbidden, f, "%s to %q denied: %v", a, clip(subject), err)
	}
	return nil
}
