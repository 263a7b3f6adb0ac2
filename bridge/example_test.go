package bridge_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"time"

	bus "github.com/whalesong/bus"
	"github.com/whalesong/bus/bridge"
)

type Message struct {
	User string `json:"user"`
	Text string `json:"text"`
}

// A chat server: browsers load the client from /whalesong.js and connect to
// /ws; goroutines of the server use the same bus. Here a Go client speaking
// PROTOCOL.md plays the browser.
func Example() {
	b := bus.New[Message](bus.WithHistory(1024))
	br := bridge.New(b, bridge.WithAuthorize(func(_ any, a bridge.Action, subject string) error {
		if bridge.PatternWithin(subject, "chat.>") {
			return nil // subscribe to and publish in chat rooms only
		}
		return errors.New("chat rooms only")
	}))
	mux := http.NewServeMux()
	mux.Handle("/ws", br)
	mux.Handle("/whalesong.js", bridge.ClientJS())
	ln, err := net.Listen("tcp", "127.0.0.1:0") // a real server listens on ":8080" or so
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	ws := connect("ws://"+ln.Addr().String()+"/ws", nil)
	defer ws.Close()
	send(ws, `{"op":"pub","id":"p1","topic":"chat.lobby","data":{"user":"ann","text":"hi"}}`)
	fmt.Println(receive(ws))
	send(ws, `{"op":"pub","id":"p2","topic":"admin.keys","data":{"user":"ann","text":"rm -rf"}}`)
	fmt.Println(receive(ws))

	// On shutdown: stop accepting, close the WebSockets, then the bus.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	fmt.Println(<-served)
	_ = br.Close()
	_ = b.Close()
	fmt.Println(receive(ws))
	// Output:
	// {"op":"published","id":"p1","seq":1}
	// {"op":"error","id":"p2","code":"forbidden","message":"publish to \"admin.keys\" denied: chat rooms only"}
	// http: Server closed
	// websocket: close 1001 (going away): going away
}

// Authenticate before the upgrade and authorize per user: each user may
// read its own inbox (and nothing wider), and post only to chat rooms.
func ExampleWithAuthorize() {
	type user struct{ name string }
	b := bus.New[Message]()
	defer b.Close()
	br := bridge.New(b,
		bridge.WithAuthenticate(func(r *http.Request) (any, error) {
			name, _, ok := r.BasicAuth() // a real app checks a session cookie or token
			if !ok {
				return nil, errors.New("no credentials")
			}
			return &user{name}, nil
		}),
		bridge.WithAuthorize(func(id any, a bridge.Action, subject string) error {
			u := id.(*user)
			switch {
			case a == bridge.Subscribe && bridge.PatternWithin(subject, "inbox."+u.name+".>"):
				return nil
			case a == bridge.Subscribe && bridge.PatternWithin(subject, "chat.>"):
				return nil
			case a == bridge.Publish && bridge.PatternWithin(subject, "chat.*"):
				return nil
			}
			return errors.New("not allowed")
		}),
	)
	url, stop := serve(br)
	defer stop()
	defer br.Close()
	alice := http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("alice:pw"))}}
	ws := connect(url, alice)
	defer ws.Close()

	send(ws, `{"op":"sub","id":"r1","sub":"mine","pattern":"inbox.alice.>"}`)
	fmt.Println(receive(ws))
	send(ws, `{"op":"sub","id":"r2","sub":"all","pattern":"inbox.>"}`)
	fmt.Println(receive(ws))
	send(ws, `{"op":"pub","id":"p1","topic":"inbox.bob.1","data":{"text":"hi bob"}}`)
	fmt.Println(receive(ws))
	// Output:
	// {"op":"subscribed","id":"r1","sub":"mine","recovered":true,"from":0,"replayed":0,"until":0}
	// {"op":"error","id":"r2","sub":"all","code":"forbidden","message":"subscribe to \"inbox.>\" denied: not allowed"}
	// {"op":"error","id":"p1","code":"forbidden","message":"publish to \"inbox.bob.1\" denied: not allowed"}
}

// The limits a public endpoint may want to tighten. A client that
// oversteps one is told which.
func ExampleNew_limits() {
	b := bus.New[Message]()
	defer b.Close()
	br := bridge.New(b,
		bridge.WithAllowedOrigins("https://app.example.com"),
		bridge.WithMaxMessageSize(16<<10),
		bridge.WithMaxSubscriptions(32),
		bridge.WithPublishRate(5, 20),
		bridge.WithMaxBacklog(1024),
		bridge.WithBadFrameBudget(10, time.Minute),
		bridge.WithDedupWindow(4096, 2*time.Minute),
	)
	url, stop := serve(br)
	defer stop()
	defer br.Close()
	ws := connect(url, http.Header{"Origin": {"https://app.example.com"}})
	defer ws.Close()

	send(ws, `{"op":"pub","id":"p1","topic":"chat.lobby","data":{"text":"`+strings.Repeat("spam ", 4000)+`"}}`)
	fmt.Println(receive(ws))
	// Output:
	// {"op":"error","id":"p1","code":"too_large","message":"frame of 20062 bytes exceeds 16384"}
}

// Stats for a metrics endpoint.
func ExampleBridge_Stats() {
	b := bus.New[Message]()
	defer b.Close()
	br := bridge.New(b) // clients may not publish: no WithAuthorize
	url, stop := serve(br)
	defer stop()
	defer br.Close()
	ws := connect(url, nil)
	defer ws.Close()
	send(ws, `{"op":"sub","id":"r1","sub":"s1","pattern":"chat.>"}`)
	receive(ws) // subscribed
	send(ws, `{"op":"pub","id":"p1","topic":"chat.lobby","data":{"text":"hi"}}`)
	receive(ws) // forbidden
	b.Publish(context.Background(), "chat.lobby", Message{User: "server", Text: "welcome"})
	receive(ws) // the event
	send(ws, `{"op":"ping","id":"r2"}`)
	receive(ws) // pong: it leaves after the event's frame, which is counted once written

	st := br.Stats()
	fmt.Printf("clients=%d subs=%d events_out=%d slow_disconnects=%d forbidden=%d\n",
		st.Clients, st.Subscriptions, st.EventsOut, st.SlowDisconnects, st.Rejected["forbidden"])
	// Output:
	// clients=1 subs=1 events_out=1 slow_disconnects=0 forbidden=1
}

// PatternWithin is the check an authorizer needs for a subscribe: a
// client may ask for a wildcard pattern, and only one whose every topic
// the allowed pattern matches too may pass.
func ExamplePatternWithin() {
	fmt.Println(bridge.PatternWithin("chat.*", "chat.>")) // every topic chat.* matches, chat.> does
	fmt.Println(bridge.PatternWithin(">", "chat.>"))      // ">" also matches admin.keys
	fmt.Println(bridge.PatternWithin("chat.lobby", "chat.*"))
	// Output:
	// true
	// false
	// true
}
