package bridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	bus "github.com/whalesong/bus"
	"github.com/whalesong/bus/bridge"
)

// The server stamps who sent a message: the client's own user field is
// overwritten with the identity WithAuthenticate gave its connection, so
// that nobody can post as someone else. Empty messages are refused.
func ExampleWithPublishHook() {
	b := bus.New[Message]()
	defer b.Close()
	br := bridge.New(b,
		bridge.WithAuthenticate(func(r *http.Request) (any, error) {
			return r.URL.Query().Get("user"), nil // a real app checks a session
		}),
		bridge.WithAuthorize(func(any, bridge.Action, string) error { return nil }),
		bridge.WithPublishHook(func(identity any, topic string, m Message) (Message, error) {
			m.Text = strings.TrimSpace(m.Text)
			if m.Text == "" {
				return m, errors.New("empty message")
			}
			m.User = identity.(string)
			return m, nil
		}),
	)
	srv := httptest.NewServer(br)
	defer srv.Close()
	defer br.Close()
	sub, _ := b.Subscribe("chat.>")
	defer sub.Close()

	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/?user=alice", nil)
	if err != nil {
		panic(err)
	}
	defer ws.Close()
	ws.ReadMessage() // hello
	ws.WriteMessage(websocket.TextMessage, []byte(`{"op":"pub","id":"p1","topic":"chat.lobby","data":{"user":"bob","text":" hi "}}`))
	ws.WriteMessage(websocket.TextMessage, []byte(`{"op":"pub","id":"p2","topic":"chat.lobby","data":{"user":"bob","text":""}}`))
	for range 2 {
		_, answer, _ := ws.ReadMessage()
		fmt.Println(string(answer))
	}
	ev, _ := sub.Next(context.Background())
	fmt.Printf("%s: %s\n", ev.Data.User, ev.Data.Text)
	// Output:
	// {"op":"published","id":"p1","seq":1}
	// {"op":"error","id":"p2","code":"forbidden","message":"empty message"}
	// alice: hi
}

// Tokens that end: each connection is closed with 4002 when its token
// expires, and the JS client reconnects at once with a fresh one (give
// connect a url function that fetches it) and resumes with nothing missed.
func ExampleWithExpiry() {
	type token struct {
		user    string
		expires time.Time
	}
	b := bus.New[Message]()
	defer b.Close()
	br := bridge.New(b,
		bridge.WithAuthenticate(func(r *http.Request) (any, error) {
			// A real app verifies a signed token; this one lives 100 ms.
			return token{user: r.URL.Query().Get("user"), expires: time.Now().Add(100 * time.Millisecond)}, nil
		}),
		bridge.WithExpiry(func(identity any) time.Time { return identity.(token).expires }),
	)
	srv := httptest.NewServer(br)
	defer srv.Close()
	defer br.Close()

	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/?user=alice", nil)
	if err != nil {
		panic(err)
	}
	defer ws.Close()
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			fmt.Println(err)
			break
		}
	}
	fmt.Println("expired:", br.Stats().Expired)
	// Output:
	// websocket: close 4002: credentials expired
	// expired: 1
}

// Logging the life of connections: here as text on stdout, without the
// attributes that differ on every run (time, session id, addresses,
// durations).
func ExampleWithLogger() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			switch a.Key {
			case slog.TimeKey, "session", "remote", "duration":
				return slog.Attr{}
			}
			return a
		},
	}))
	b := bus.New[Message]()
	defer b.Close()
	br := bridge.New(b, bridge.WithLogger(logger), bridge.WithAllowedOrigins("https://app.example.com"))
	srv := httptest.NewServer(br)
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")

	_, _, err := websocket.DefaultDialer.Dial(url, http.Header{"Origin": {"https://evil.example"}})
	fmt.Println("foreign page:", err)
	ws, _, err := websocket.DefaultDialer.Dial(url, http.Header{"Origin": {"https://app.example.com"}})
	if err != nil {
		panic(err)
	}
	defer ws.Close()
	ws.ReadMessage() // hello
	br.Close()       // logs the disconnect before it returns
	// Output:
	// level=WARN msg="whalesong: connection refused" reason=origin status=403 origin=https://evil.example
	// foreign page: websocket: bad handshake
	// level=INFO msg="whalesong: connected"
	// level=INFO msg="whalesong: disconnected" code=1001 by=server reason="going away"
}

// Kick closes the connections of a user with 4003: the JS client emits
// "error" with code kicked and the reason, goes to state "closed" and does
// not reconnect by itself. To keep the user out, make WithAuthenticate
// refuse them first.
func ExampleBridge_Kick() {
	b := bus.New[Message]()
	defer b.Close()
	banned := map[string]bool{}
	br := bridge.New(b, bridge.WithAuthenticate(func(r *http.Request) (any, error) {
		user := r.URL.Query().Get("user")
		if banned[user] { // a real app keeps this where every node sees it
			return nil, errors.New("banned")
		}
		return user, nil
	}))
	srv := httptest.NewServer(br)
	defer srv.Close()
	defer br.Close()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/?user=mallory", nil)
	if err != nil {
		panic(err)
	}
	defer ws.Close()
	ws.ReadMessage() // hello

	banned["mallory"] = true
	n := br.Kick(func(identity any) bool { return identity == "mallory" }, "banned for spam")
	fmt.Println("kicked:", n)
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			fmt.Println(err)
			break
		}
	}
	// Output:
	// kicked: 1
	// websocket: close 4003: banned for spam
}

// Reauthorize after a change of rights: the subscriptions the authorizer
// now refuses end with an error frame (their sub, no id, code forbidden),
// the rest of the connection goes on.
func ExampleBridge_Reauthorize() {
	b := bus.New[Message]()
	defer b.Close()
	members := map[string]bool{"alice": true} // of team red; a real app locks or asks a store
	br := bridge.New(b,
		bridge.WithAuthenticate(func(r *http.Request) (any, error) { return r.URL.Query().Get("user"), nil }),
		bridge.WithAuthorize(func(identity any, a bridge.Action, subject string) error {
			if a == bridge.Subscribe && bridge.PatternWithin(subject, "team.red.>") && !members[identity.(string)] {
				return errors.New("not a member of team red")
			}
			return nil
		}),
	)
	srv := httptest.NewServer(br)
	defer srv.Close()
	defer br.Close()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/?user=alice", nil)
	if err != nil {
		panic(err)
	}
	defer ws.Close()
	ws.ReadMessage() // hello
	ws.WriteMessage(websocket.TextMessage, []byte(`{"op":"sub","id":"r1","sub":"red","pattern":"team.red.>"}`))
	ws.ReadMessage() // subscribed

	delete(members, "alice")
	n := br.Reauthorize(func(identity any) bool { return identity == "alice" })
	fmt.Println("ended:", n)
	_, frame, _ := ws.ReadMessage()
	fmt.Println(string(frame))
	// Output:
	// ended: 1
	// {"op":"error","sub":"red","code":"forbidden","message":"subscribe to \"team.red.>\" denied: not a member of team red"}
}

// strictJSON is a Codec that refuses client data with fields the event
// type does not have, instead of dropping them silently.
type strictJSON struct{}

func (strictJSON) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

func (strictJSON) Unmarshal(data []byte, v any) error {
	d := json.NewDecoder(strings.NewReader(string(data)))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

// A Codec decides how client data becomes T (and T becomes the JSON
// clients get): this one refuses unknown fields, which the client sees as
// bad_frame.
func ExampleWithCodec() {
	b := bus.New[Message]()
	defer b.Close()
	br := bridge.New(b, bridge.WithCodec(strictJSON{}),
		bridge.WithAuthorize(func(any, bridge.Action, string) error { return nil }))
	srv := httptest.NewServer(br)
	defer srv.Close()
	defer br.Close()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		panic(err)
	}
	defer ws.Close()
	ws.ReadMessage() // hello
	ws.WriteMessage(websocket.TextMessage, []byte(`{"op":"pub","id":"p1","topic":"chat","data":{"text":"hi","admin":true}}`))
	_, answer, _ := ws.ReadMessage()
	fmt.Println(string(answer))
	// Output:
	// {"op":"error","id":"p1","code":"bad_frame","message":"pub: data: json: unknown field \"admin\""}
}

// A page served from another origin (a dev server on another port, an app
// domain) may connect only if WithAllowedOrigins lists it. The refusal
// probe shows what each page is told: a foreign one 403, before
// authentication runs; a listed one the handshake's own verdict.
func ExampleWithAllowedOrigins() {
	b := bus.New[Message]()
	defer b.Close()
	br := bridge.New(b,
		bridge.WithAllowedOrigins("https://app.example.com", "http://localhost:5173"),
		bridge.WithAuthenticate(func(r *http.Request) (any, error) {
			if _, err := r.Cookie("session"); err != nil {
				return nil, errors.New("no session")
			}
			return "someone", nil
		}),
	)
	defer br.Close()
	for _, origin := range []string{"https://evil.example", "http://localhost:5173", "https://app.example.com"} {
		r := httptest.NewRequest(http.MethodGet, "https://app.example.com/ws", nil)
		r.Header.Set("Origin", origin)
		if origin == "https://app.example.com" {
			r.AddCookie(&http.Cookie{Name: "session", Value: "s3cret"})
		}
		w := httptest.NewRecorder()
		br.ServeHTTP(w, r)
		fmt.Print(origin, ": ", w.Code, " ", w.Body.String())
	}
	// Output:
	// https://evil.example: 403 {"code":"forbidden","message":"origin not allowed"}
	// http://localhost:5173: 401 {"code":"unauthorized","message":"authentication refused"}
	// https://app.example.com: 426 {"code":"upgrade_required","message":"a WebSocket endpoint: connect with a WebSocket"}
}
