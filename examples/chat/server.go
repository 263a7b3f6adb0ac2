package main

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/whalesong/bus"
	"github.com/whalesong/bus/bridge"
)

// Message is one chat line: the T of the chat's bus. The room is not in it:
// the topic chat.<room> names the room.
type Message struct {
	Nick string `json:"nick"`
	Text string `json:"text"`
}

// Limits of the chat's small grammar. The page enforces the same ones.
const (
	maxNick    = 24
	maxRoom    = 32
	maxText    = 1000 // characters of one message
	roomPrefix = "chat."
	roomScope  = roomPrefix + "*" // every room's topic, and nothing else
	// maxFrame bounds a client frame: a message of 1,000 characters fits
	// with room to spare, a novel does not.
	maxFrame = 16 << 10
)

var (
	// errBadNick answers a connection attempt whose nick query parameter
	// breaks the nick grammar; the bridge turns it into a 401.
	errBadNick = errors.New("chat: bad nick")
	// errNotChat refuses a subscribe pattern or a publish topic outside
	// chat.<room>; the client sees error code forbidden.
	errNotChat = errors.New("chat: only chat.<room> is allowed")
	// errBadText refuses a message that is empty or too long; the client
	// sees error code forbidden with this text.
	errBadText = errors.New("chat: a message is 1 to 1000 characters of text")
)

//go:embed static
var staticFiles embed.FS

// server is the chat's HTTP side: the page, the client module, the
// WebSocket bridge to one bus and its metrics. Tests build it without
// listening on a port.
type server struct {
	mux    *http.ServeMux
	bridge *bridge.Bridge[Message]
}

// newServer routes / to the page, /whalesong.js to the browser client, /ws
// to a bridge on b that lets a client publish only to chat.<room>, signed
// with its own nick, and /metrics to the bus's and the bridge's metrics
// for Prometheus.
// Extra bridge options (tests use them) come after the chat's own.
func newServer(b *bus.Bus[Message], opts ...bridge.Option) *server {
	static, err := fs.Sub(staticFiles, "static")
	if err != nil { // the embed directive guarantees the directory
		panic(err)
	}
	base := []bridge.Option{
		bridge.WithAuthenticate(authenticate),
		bridge.WithAuthorize(authorize),
		bridge.WithPublishHook(stampNick),
		bridge.WithMaxMessageSize(maxFrame),
	}
	s := &server{
		mux:    http.NewServeMux(),
		bridge: bridge.New(b, append(base, opts...)...),
	}
	s.mux.Handle("GET /whalesong.js", bridge.ClientJS())
	s.mux.Handle("GET /ws", s.bridge)
	s.mux.Handle("GET /metrics", metricsHandler(b, s.bridge))
	s.mux.Handle("GET /", pageHeaders(http.FileServerFS(static)))
	return s
}

// ServeHTTP serves the page, the client module, the WebSocket endpoint and
// the metrics.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// Close sends going-away to every connected page; it leaves the bus open.
func (s *server) Close() error {
	return s.bridge.Close()
}

// pageHeaders adds the headers a small public page should have: the page
// loads nothing from elsewhere and cannot be framed.
func pageHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

// authenticate takes the nick from the WebSocket URL (/ws?nick=ada) as the
// connection's identity. It is a demo: anyone may claim any nick.
func authenticate(r *http.Request) (any, error) {
	nick := r.URL.Query().Get("nick")
	if err := checkNick(nick); err != nil {
		return nil, err
	}
	return nick, nil
}

// checkNick accepts 1 to maxNick letters, digits, spaces, '-', '_' and '.',
// not starting or ending with a space.
func checkNick(nick string) error {
	n := utf8.RuneCountInString(nick)
	switch {
	case !utf8.ValidString(nick):
		return fmt.Errorf("%w: not UTF-8", errBadNick)
	case n == 0 || n > maxNick:
		return fmt.Errorf("%w: %d characters, want 1 to %d", errBadNick, n, maxNick)
	case strings.TrimSpace(nick) != nick:
		return fmt.Errorf("%w: %q has leading or trailing space", errBadNick, nick)
	}
	for _, r := range nick {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune(" -_.", r) {
			return fmt.Errorf("%w: %q has %q", errBadNick, nick, r)
		}
	}
	return nil
}

// authorize lets a client publish to chat.<room> only, and subscribe only to
// patterns that match nothing outside it. bridge.PatternWithin compares
// patterns safely: ">" or "*.lobby" match chat rooms too, but also other
// topics, so they are refused; "chat.*" and "chat.lobby" are fine.
func authorize(_ any, a bridge.Action, topicOrPattern string) error {
	switch a {
	case bridge.Publish:
		room, ok := strings.CutPrefix(topicOrPattern, roomPrefix)
		if ok && validRoom(room) {
			return nil
		}
	case bridge.Subscribe:
		if bridge.PatternWithin(topicOrPattern, roomScope) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s %q", errNotChat, a, topicOrPattern)
}

// stampNick is the publish hook: the server, not the page, says who wrote
// a message. Whatever nick a client puts in its data, the message goes out
// with the nick of its connection (the identity authenticate gave it), so
// that nobody can post as someone else. The text is trimmed and must be 1
// to maxText characters of valid UTF-8.
func stampNick(identity any, _ string, m Message) (Message, error) {
	m.Nick = identity.(string)
	m.Text = strings.TrimSpace(m.Text)
	if n := utf8.RuneCountInString(m.Text); n == 0 || n > maxText || !utf8.ValidString(m.Text) {
		return m, errBadText
	}
	return m, nil
}

// validRoom accepts 1 to maxRoom lower-case ASCII letters, digits, '-' and
// '_', starting with a letter or digit: a name that reads well after '#'.
func validRoom(room string) bool {
	if len(room) == 0 || len(room) > maxRoom {
		return false
	}
	for i, c := range []byte(room) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '-' || c == '_') && i > 0:
		default:
			return false
		}
	}
	return true
}
