package bridge

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/whalesong/bus/bridge/internal/wstest"
)

func TestOriginCheck(t *testing.T) {
	tests := []struct {
		name    string
		allowed []string
		origin  string // "" sends none; "self" the server's own origin
		ok      bool
	}{
		{"no origin: not a browser", nil, "", true},
		{"same host", nil, "self", true},
		{"other host", nil, "http://evil.example", false},
		{"same host other port", nil, "http://127.0.0.1:1", false},
		{"garbage", nil, "::::", false},
		{"listed", []string{"https://app.example.com"}, "https://app.example.com", true},
		{"listed default port", []string{"https://app.example.com"}, "https://APP.example.com:443", true},
		{"listed other scheme", []string{"https://app.example.com"}, "http://app.example.com", false},
		{"list replaces same host", []string{"https://app.example.com"}, "self", false},
		{"any", []string{"*"}, "http://evil.example", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []Option
			if tt.allowed != nil {
				opts = append(opts, WithAllowedOrigins(tt.allowed...))
			}
			s := newServer(t, nil, opts...)
			h := http.Header{}
			switch tt.origin {
			case "":
			case "self":
				h.Set("Origin", s.ws.HTTP)
			default:
				h.Set("Origin", tt.origin)
			}
			c, err := s.tryDial(h)
			if tt.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				_ = c.Close()
				return
			}
			var se *wstest.StatusError
			if !errors.As(err, &se) || se.Status != http.StatusForbidden {
				t.Fatalf("got %v, want 403", err)
			}
		})
	}
}

func TestOriginDefaultPorts(t *testing.T) {
	c := newConfig(nil)
	r := httptest.NewRequest("GET", "https://app.example.com/ws", nil)
	r.Host = "app.example.com"
	for origin, want := range map[string]bool{
		"https://app.example.com":     true,
		"https://app.example.com:443": true,
		"http://app.example.com":      true, // :80 on both sides
		"https://app.example.com:444": false,
		"https://other.example.com":   false,
	} {
		r.Header.Set("Origin", origin)
		if got := c.originAllowed(r); got != want {
			t.Errorf("%s against Host %s: %v, want %v", origin, r.Host, got, want)
		}
	}
}

type user struct{ name string }

func TestAuthenticate(t *testing.T) {
	authn := func(r *http.Request) (any, error) {
		name := r.Header.Get("X-User")
		if name == "" {
			return nil, errors.New("who are you")
		}
		return &user{name}, nil
	}
	var seen []string
	authz := func(id any, a Action, subject string) error {
		u := id.(*user)
		seen = append(seen, u.name+" "+a.String()+" "+subject)
		if a == Subscribe && PatternWithin(subject, "user."+u.name+".>") {
			return nil
		}
		return errors.New("not yours")
	}
	s := newServer(t, nil, WithAuthenticate(authn), WithAuthorize(authz))

	_, err := s.tryDial(nil)
	var se *wstest.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusUnauthorized {
		t.Fatalf("no credentials: %v, want 401", err)
	}
	if s.br.Clients() != 0 {
		t.Fatal("a socket was opened")
	}

	conn, err := s.tryDial(http.Header{"X-User": {"ann"}})
	if err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, conn)
	cl.sub("mine", "user.ann.>", nil)
	cl.send(`{"op":"sub","id":"r2","sub":"theirs","pattern":"user.bob.inbox"}`)
	if f := cl.read(); f.Code != "forbidden" || f.Sub != "theirs" {
		t.Fatalf("got %+v", f)
	}
	if got := strings.Join(seen, "|"); got != "ann subscribe user.ann.>|ann subscribe user.bob.inbox" {
		t.Fatalf("authorizer saw %q", got)
	}
}

// TestWildcardACL is the package doc's authorizer: a client asking for ">"
// or "*.lobby" must not slip past a rule meant for "chat.>", and publishing
// is limited to "chat.*".
func TestWildcardACL(t *testing.T) {
	authz := func(_ any, a Action, p string) error {
		if a == Subscribe && PatternWithin(p, "chat.>") {
			return nil
		}
		if a == Publish && PatternWithin(p, "chat.*") {
			return nil
		}
		return errors.New("not allowed")
	}
	s := newServer(t, nil, WithAuthorize(authz))
	cl := s.dial(t)
	for _, p := range []string{"chat.lobby", "chat.*", "chat.>", "chat.*.x"} {
		cl.sub("ok", p, nil)
		cl.send(`{"op":"unsub","id":"u","sub":"ok"}`)
		cl.expect("unsubscribed")
	}
	for _, p := range []string{">", "*.lobby", "*.>", "chat", "admin.>", "*"} {
		cl.send(`{"op":"sub","id":"r","sub":"no","pattern":"` + p + `"}`)
		if f := cl.read(); f.Code != "forbidden" {
			t.Fatalf("sub %s: %+v, want forbidden", p, f)
		}
	}
	cl.send(`{"op":"pub","id":"p1","topic":"chat.lobby","data":{}}`)
	cl.expect("published")
	cl.send(`{"op":"pub","id":"p2","topic":"admin.keys","data":{}}`)
	if f := cl.read(); f.Code != "forbidden" || f.ID != "p2" {
		t.Fatalf("pub admin.keys: %+v", f)
	}
}

func TestDefaultAuthorization(t *testing.T) {
	s := newServer(t, nil)
	cl := s.dial(t)
	cl.sub("any", ">", nil)
	cl.send(`{"op":"pub","id":"p1","topic":"chat.lobby","data":{}}`)
	if f := cl.read(); f.Code != "forbidden" {
		t.Fatalf("default publish: %+v, want forbidden", f)
	}
}

func TestPatternWithin(t *testing.T) {
	tests := []struct {
		pattern, allowed string
		want             bool
	}{
		{"chat.lobby", "chat.lobby", true},
		{"chat.lobby", "chat.*", true},
		{"chat.lobby", "chat.>", true},
		{"chat.*", "chat.>", true},
		{"chat.>", "chat.>", true},
		{"chat.a.b", "chat.>", true},
		{"chat.*.b", "chat.*.*", true},
		{"chat.*", "chat.*", true},
		{">", ">", true},
		{"a.>", ">", true},
		{"*", ">", true},
		{"*", "*", true},
		{">", "chat.>", false},
		{"*.lobby", "chat.*", false},
		{"chat.>", "chat.*", false},
		{"chat", "chat.>", false},
		{"chat.*", "chat.lobby", false},
		{"chat.lobby", "chat", false},
		{"chat", "chat.lobby", false},
		{">", "*", false},
		{"chatter.x", "chat.>", false},
		{"a..b", ">", false},
		{"a", "a.>.b", false},
		{"", ">", false},
	}
	for _, tt := range tests {
		if got := PatternWithin(tt.pattern, tt.allowed); got != tt.want {
			t.Errorf("PatternWithin(%q, %q) = %v, want %v", tt.pattern, tt.allowed, got, tt.want)
		}
	}
}

// TestPatternWithinByEnumeration checks PatternWithin against its
// definition on a small universe: every topic of up to 3 tokens over {a, b}
// that pattern matches must be matched by allowed (and topics of 4 tokens
// stand for "deeper").
func TestPatternWithinByEnumeration(t *testing.T) {
	var topics []string
	var grow func(prefix string, depth int)
	grow = func(prefix string, depth int) {
		for _, tok := range []string{"a", "b", "c"} {
			topic := tok
			if prefix != "" {
				topic = prefix + "." + tok
			}
			topics = append(topics, topic)
			if depth < 4 {
				grow(topic, depth+1)
			}
		}
	}
	grow("", 1)
	var patterns []string
	var growP func(prefix string, depth int)
	growP = func(prefix string, depth int) {
		for _, tok := range []string{"a", "b", "*", ">"} {
			p := tok
			if prefix != "" {
				p = prefix + "." + tok
			}
			patterns = append(patterns, p)
			if depth < 3 && tok != ">" {
				growP(p, depth+1)
			}
		}
	}
	growP("", 1)
	for _, p := range patterns {
		for _, a := range patterns {
			want := true
			for _, topic := range topics {
				if match(p, topic) && !match(a, topic) {
					want = false
					break
				}
			}
			if got := PatternWithin(p, a); got != want {
				t.Errorf("PatternWithin(%q, %q) = %v, want %v", p, a, got, want)
			}
		}
	}
}

// match is a plain NATS subject matcher for the enumeration test.
func match(pattern, topic string) bool {
	p, tk := strings.Split(pattern, "."), strings.Split(topic, ".")
	for i, pt := range p {
		if pt == ">" {
			return len(tk) > i
		}
		if i >= len(tk) || (pt != "*" && pt != tk[i]) {
			return false
		}
	}
	return len(p) == len(tk)
}
