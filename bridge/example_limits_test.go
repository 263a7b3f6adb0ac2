package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	bus "github.com/whalesong/bus"
	"github.com/whalesong/bus/bridge"
)

// Only requests with the right token get a WebSocket: the others are
// answered 401 before the upgrade, and no socket is opened.
func ExampleWithAuthenticate() {
	b := bus.New[Message]()
	defer b.Close()
	br := bridge.New(b, bridge.WithAuthenticate(func(r *http.Request) (any, error) {
		if r.Header.Get("Authorization") != "Bearer s3cret" { // a real app verifies a token or a session
			return nil, errors.New("bad token")
		}
		return "alice", nil
	}))
	url, stop := serve(br)
	defer stop()
	defer br.Close()

	_, resp, err := websocket.DefaultDialer.Dial(url, nil)
	fmt.Println("no token:", err, resp.StatusCode)
	ws, _, err := websocket.DefaultDialer.Dial(url, http.Header{"Authorization": {"Bearer s3cret"}})
	if err != nil {
		panic(err)
	}
	defer ws.Close()
	_, hello, _ := ws.ReadMessage()
	fmt.Println("token:", strings.HasPrefix(string(hello), `{"op":"hello"`))
	// Output:
	// no token: websocket: bad handshake 401
	// token: true
}

// A frame larger than WithMaxMessageSize is refused with too_large (the
// connection goes on); one above 4 times the limit closes it with 1009.
func ExampleWithMaxMessageSize() {
	b := bus.New[Message]()
	defer b.Close()
	br := bridge.New(b, bridge.WithMaxMessageSize(1024),
		bridge.WithAuthorize(func(any, bridge.Action, string) error { return nil }))
	url, stop := serve(br)
	defer stop()
	defer br.Close()
	ws := connect(url, nil)
	defer ws.Close()

	long := strings.Repeat("x", 2000)
	send(ws, `{"op":"pub","id":"p1","topic":"chat.lobby","data":{"text":"`+long+`"}}`)
	fmt.Println(receive(ws))
	send(ws, `{"op":"ping","id":"r1"}`)
	fmt.Println(receive(ws))
	send(ws, `{"op":"pub","id":"p2","topic":"chat.lobby","data":{"text":"`+long+long+long+`"}}`)
	fmt.Println(receive(ws))
	// Output:
	// {"op":"error","id":"p1","code":"too_large","message":"frame of 2062 bytes exceeds 1024"}
	// {"op":"pong","id":"r1"}
	// websocket: close 1009 (message too big)
}

// A connection may publish 2 events at once, then one every 100 seconds:
// the third publish in a row is refused with rate_limited, and nothing is
// published.
func ExampleWithPublishRate() {
	b := bus.New[Message]()
	defer b.Close()
	br := bridge.New(b, bridge.WithPublishRate(0.01, 2),
		bridge.WithAuthorize(func(any, bridge.Action, string) error { return nil }))
	url, stop := serve(br)
	defer stop()
	defer br.Close()
	ws := connect(url, nil)
	defer ws.Close()

	for _, id := range []string{"p1", "p2", "p3"} {
		send(ws, `{"op":"pub","id":"`+id+`","topic":"chat.lobby","data":{"text":"hi"}}`)
		fmt.Println(receive(ws))
	}
	fmt.Println("bus seq:", b.Seq())
	// Output:
	// {"op":"published","id":"p1","seq":1}
	// {"op":"published","id":"p2","seq":2}
	// {"op":"error","id":"p3","code":"rate_limited","message":"at most 0.01 publishes per second (burst 2)"}
	// bus seq: 2
}

// A connection may hold 2 subscriptions; a third is refused until one ends.
func ExampleWithMaxSubscriptions() {
	b := bus.New[Message]()
	defer b.Close()
	br := bridge.New(b, bridge.WithMaxSubscriptions(2))
	url, stop := serve(br)
	defer stop()
	defer br.Close()
	ws := connect(url, nil)
	defer ws.Close()

	for _, room := range []string{"lobby", "dev", "ops"} {
		send(ws, `{"op":"sub","id":"r-`+room+`","sub":"`+room+`","pattern":"chat.`+room+`"}`)
		fmt.Println(receive(ws))
	}
	send(ws, `{"op":"unsub","id":"u1","sub":"dev"}`)
	fmt.Println(receive(ws))
	send(ws, `{"op":"sub","id":"r-ops2","sub":"ops","pattern":"chat.ops"}`)
	fmt.Println(receive(ws))
	// Output:
	// {"op":"subscribed","id":"r-lobby","sub":"lobby","recovered":true,"from":0,"replayed":0,"until":0}
	// {"op":"subscribed","id":"r-dev","sub":"dev","recovered":true,"from":0,"replayed":0,"until":0}
	// {"op":"error","id":"r-ops","sub":"ops","code":"too_many_subscriptions","message":"at most 2 subscriptions per connection"}
	// {"op":"unsubscribed","id":"u1","sub":"dev"}
	// {"op":"subscribed","id":"r-ops2","sub":"ops","recovered":true,"from":0,"replayed":0,"until":0}
}

// A client that stops reading while events keep coming is cut off with
// 4000 once more than WithMaxBacklog events wait for it; publishers never
// wait for it. It reconnects and resumes after the last seq it saw.
func ExampleWithMaxBacklog() {
	b := bus.New[Message]()
	defer b.Close()
	br := bridge.New(b, bridge.WithMaxBacklog(16))
	url, stop := serve(br)
	defer stop()
	defer br.Close()
	ws := connectSlow(url)
	defer ws.Close()
	send(ws, `{"op":"sub","id":"r1","sub":"feed","pattern":"feed"}`)
	fmt.Println(receive(ws))

	// The client reads nothing more while the server publishes.
	ctx := context.Background()
	for br.Stats().SlowDisconnects == 0 {
		b.Publish(ctx, "feed", Message{Text: strings.Repeat("x", 1024)})
	}
	fmt.Println(closed(ws))
	// Output:
	// {"op":"subscribed","id":"r1","sub":"feed","recovered":true,"from":0,"replayed":0,"until":0}
	// websocket: close 4000: resume needed
}

// Three malformed frames are tolerated (each answered with an error), a
// fourth within the period closes the connection with 4001.
func ExampleWithBadFrameBudget() {
	b := bus.New[Message]()
	defer b.Close()
	br := bridge.New(b, bridge.WithBadFrameBudget(3, time.Hour))
	url, stop := serve(br)
	defer stop()
	defer br.Close()
	ws := connect(url, nil)
	defer ws.Close()

	for _, frame := range []string{
		`not json`,
		`{"op":"subscribe","id":"r1"}`,
		`{"op":"sub","id":"r2","sub":"s1","pattern":"chat.>","last":-1}`,
	} {
		send(ws, frame)
		fmt.Println(receive(ws))
	}
	send(ws, `{"op":"ping","id":""}`) // one more: its error frame may not even leave
	fmt.Println(closed(ws))
	fmt.Println("abuse disconnects:", br.Stats().AbuseDisconnects)
	// Output:
	// {"op":"error","code":"bad_frame","message":"not a valid frame: invalid character 'o' in literal null (expecting 'u')"}
	// {"op":"error","id":"r1","code":"unknown_op","message":"unknown op \"subscribe\""}
	// {"op":"error","id":"r2","sub":"s1","code":"bad_frame","message":"sub: last must be >= 0"}
	// websocket: close 4001: too many bad frames
	// abuse disconnects: 1
}

// A publish retried with the same id (after a reconnect, say) is answered
// with the first attempt's seq and not published again. The bridge
// remembers the last 2 ids here: p1's last retry comes after it forgot p1,
// so it goes on to the bus, whose own window (bus.WithDedupWindow) still
// knows it. Stats tells the two apart.
func ExampleWithDedupWindow() {
	b := bus.New[Message]()
	defer b.Close()
	br := bridge.New(b, bridge.WithDedupWindow(2, time.Minute),
		bridge.WithAuthorize(func(any, bridge.Action, string) error { return nil }))
	url, stop := serve(br)
	defer stop()
	defer br.Close()
	ws := connect(url, nil)
	defer ws.Close()

	for _, id := range []string{"p1", "p1", "p2", "p3", "p1"} {
		send(ws, `{"op":"pub","id":"`+id+`","topic":"chat.lobby","data":{"text":"hi"}}`)
		fmt.Println(receive(ws))
	}
	st := br.Stats()
	fmt.Println("published:", st.Published, "deduplicated:", st.Deduplicated)
	// Output:
	// {"op":"published","id":"p1","seq":1}
	// {"op":"published","id":"p1","seq":1}
	// {"op":"published","id":"p2","seq":2}
	// {"op":"published","id":"p3","seq":3}
	// {"op":"published","id":"p1","seq":1}
	// published: 4 deduplicated: 1
}

// A client publish waits for room on the bus for at most the publish
// timeout: here a server-side subscriber that does not read (Block, the
// default) has filled its buffer, and the client is told unavailable.
func ExampleWithPublishTimeout() {
	b := bus.New[Message]()
	defer b.Close()
	stuck, _ := b.Subscribe("chat.>", bus.WithBuffer(1)) // reads nothing
	defer stuck.Close()
	br := bridge.New(b, bridge.WithPublishTimeout(50*time.Millisecond),
		bridge.WithAuthorize(func(any, bridge.Action, string) error { return nil }))
	url, stop := serve(br)
	defer stop()
	defer br.Close()
	ws := connect(url, nil)
	defer ws.Close()

	for _, id := range []string{"p1", "p2"} {
		send(ws, `{"op":"pub","id":"`+id+`","topic":"chat.lobby","data":{"text":"hi"}}`)
		fmt.Println(receive(ws))
	}
	// Output:
	// {"op":"published","id":"p1","seq":1}
	// {"op":"error","id":"p2","code":"unavailable","message":"publish to \"chat.lobby\": context deadline exceeded"}
}

// A client that stops reading holds up the server's writes to it for at
// most the write timeout: then its socket is cut, and Bridge.Close never
// waits longer for it (the default would be 10 s).
func ExampleWithWriteTimeout() {
	ctx := context.Background()
	b := bus.New[Message]()
	defer b.Close()
	for range 64 {
		b.Publish(ctx, "feed", Message{Text: strings.Repeat("x", 32<<10)})
	}
	br := bridge.New(b, bridge.WithWriteTimeout(100*time.Millisecond))
	url, stop := serveSlow(br)
	defer stop()
	ws := connectSlow(url)
	defer ws.Close()

	// The client asks for 2 MiB of history and stops reading once the
	// page has begun to arrive.
	send(ws, `{"op":"history","id":"h1","pattern":"feed","limit":64}`)
	_, page, _ := ws.NextReader()

	start := time.Now()
	br.Close()
	fmt.Println("Close waited less than a second:", time.Since(start) < time.Second)
	_, err := io.Copy(io.Discard, page)
	fmt.Println("the rest of the page:", err)
	// Output:
	// Close waited less than a second: true
	// the rest of the page: websocket: close 1006 (abnormal closure): unexpected EOF
}
