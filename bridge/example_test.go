package bridge_test

import (
	"context"
	"errors"
	"log"
	"net/http"
	"time"

	bus "github.com/whalesong/bus"
	"github.com/whalesong/bus/bridge"
)

type Message struct {
	User string `json:"user"`
	Text string `json:"text"`
}

// A chat server: browsers load the client from /whalesong.js and connect to
// /ws; goroutines of the server use the same bus.
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
	srv := &http.Server{Addr: ":8080", Handler: mux}
	go func() {
		if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
			log.Fatal(err)
		}
	}()

	// ... on shutdown: stop accepting, close the WebSockets, then the bus.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	_ = br.Close()
	_ = b.Close()
}

// Authenticate before the upgrade and authorize per user: each user may
// read its own inbox (and nothing wider), and post only to chat rooms.
func ExampleWithAuthorize() {
	type user struct{ name string }
	b := bus.New[Message]()
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
	http.Handle("/ws", br)
}

// The limits a public endpoint may want to tighten.
func ExampleNew_limits() {
	b := bus.New[Message]()
	br := bridge.New(b,
		bridge.WithAllowedOrigins("https://app.example.com"),
		bridge.WithMaxMessageSize(16<<10),
		bridge.WithMaxSubscriptions(32),
		bridge.WithPublishRate(5, 20),
		bridge.WithMaxBacklog(1024),
		bridge.WithBadFrameBudget(10, time.Minute),
		bridge.WithDedupWindow(4096, 2*time.Minute),
	)
	http.Handle("/ws", br)
}

// Stats for a metrics endpoint.
func ExampleBridge_Stats() {
	b := bus.New[Message]()
	br := bridge.New(b)
	defer br.Close()
	st := br.Stats()
	log.Printf("clients=%d subs=%d events_out=%d slow_disconnects=%d forbidden=%d",
		st.Clients, st.Subscriptions, st.EventsOut, st.SlowDisconnects, st.Rejected["forbidden"])
}

func ExamplePatternWithin() {
	_ = bridge.PatternWithin("chat.*", "chat.>") // true
	_ = bridge.PatternWithin(">", "chat.>")      // false: ">" also matches admin.keys
}
