// Package wspeer is the WebSocket comparison's peers for the separate load
// process (../../cmd/wsload): the whalesong bridge,
// github.com/centrifugal/centrifuge and raw github.com/olahol/melody, each
// as a server side (an http.Handler, a publish, a close) and a client side
// (how a raw gorilla/websocket connection subscribes and answers pings),
// and one frame reader that finds the events in any peer's frames with the
// same cheap byte scan.
package wspeer

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/centrifugal/centrifuge"
	"github.com/olahol/melody"
	"github.com/whalesong/bus"
	"github.com/whalesong/bus/bridge"
)

// Topic is the one topic (channel) every client subscribes to.
const Topic = "bench.topic"

// Event is the payload: about 100 bytes of JSON.
type Event struct {
	Sent int64  `json:"sent"` // publish time, Unix ns
	I    int    `json:"i"`    // index in the run, from 0
	Pad  string `json:"pad"`
}

// Pad fills an Event to about 100 bytes.
var Pad = strings.Repeat("x", 56)

// Names lists the peers, the bridge first.
var Names = []string{"whalesong", "centrifuge", "melody"}

// Options tune a server where a peer needs it.
type Options struct {
	// MelodyBuffer is raw melody's per-session message buffer: it drops
	// messages silently past it, so a run of E events needs E. 0 keeps
	// melody's default (256), as the idle runs do.
	MelodyBuffer int
}

// Server is the server side of a peer.
type Server struct {
	// Handler serves the WebSocket endpoint.
	Handler http.Handler
	// Publish publishes ev to Topic.
	Publish func(ev Event) error
	// Close releases what the server holds (not the http.Server that
	// mounts Handler); it may wait for the peer's goroutines.
	Close func()
	// Clients, where not nil, counts the connections that a Publish
	// reaches: a peer whose clients cannot tell when they are subscribed
	// (raw melody registers a connection after the handshake) is ready
	// once it counts them all.
	Clients func() int
}

// NewServer makes the server of peer name.
func NewServer(name string, o Options) (*Server, error) {
	switch name {
	case "whalesong":
		return newBridge(), nil
	case "centrifuge":
		return newCentrifuge()
	case "melody":
		return newMelody(o.MelodyBuffer), nil
	}
	return nil, fmt.Errorf("wspeer: no peer %q (want one of %s)", name, strings.Join(Names, ", "))
}

// newBridge is bridge.New with no option over a fresh bus.
func newBridge() *Server {
	bs := bus.New[Event]()
	br := bridge.New(bs)
	ctx := context.Background()
	return &Server{
		Handler: br,
		Publish: func(ev Event) error {
			_, err := bs.Publish(ctx, Topic, ev)
			return err
		},
		Close: func() {
			_ = br.Close()
			_ = bs.Close()
		},
	}
}

// newCentrifuge is centrifuge with its defaults: the in-memory broker, its
// WebsocketHandler, the JSON protocol; every connection is let in as user
// "bench" and may subscribe to Topic alone.
func newCentrifuge() (*Server, error) {
	node, err := centrifuge.New(centrifuge.Config{})
	if err != nil {
		return nil, err
	}
	broker, err := centrifuge.NewMemoryBroker(node, centrifuge.MemoryBrokerConfig{})
	if err != nil {
		return nil, err
	}
	node.SetBroker(broker)
	node.OnConnecting(func(context.Context, centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
		return centrifuge.ConnectReply{}, nil // the credentials come from the middleware
	})
	node.OnConnect(func(c *centrifuge.Client) {
		c.OnSubscribe(func(e centrifuge.SubscribeEvent, cb centrifuge.SubscribeCallback) {
			if e.Channel != Topic {
				cb(centrifuge.SubscribeReply{}, centrifuge.ErrorPermissionDenied)
				return
			}
			cb(centrifuge.SubscribeReply{}, nil)
		})
	})
	if err := node.Run(); err != nil {
		return nil, err
	}
	ws := centrifuge.NewWebsocketHandler(node, centrifuge.WebsocketConfig{})
	return &Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := centrifuge.SetCredentials(r.Context(), &centrifuge.Credentials{UserID: "bench"})
			ws.ServeHTTP(w, r.WithContext(ctx))
		}),
		Publish: func(ev Event) error {
			data, err := json.Marshal(ev)
			if err != nil {
				return err
			}
			_, err = node.Publish(Topic, data)
			return err
		},
		Close: func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = node.Shutdown(ctx)
		},
	}, nil
}

// newMelody is raw melody: Broadcast of each event, encoded once as the
// bridge's events frame would carry it, to every connection.
func newMelody(buffer int) *Server {
	m := melody.New()
	if buffer > 0 {
		m.Config.MessageBufferSize = buffer
	}
	m.Config.MaxMessageSize = bridge.DefaultMaxMessageSize
	seq := uint64(0)
	return &Server{
		Clients: m.Len,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _ = m.HandleRequest(w, r) }),
		Publish: func(ev Event) error {
			data, err := json.Marshal(ev)
			if err != nil {
				return err
			}
			seq++
			b := make([]byte, 0, len(data)+96)
			b = append(b, `{"op":"events","events":[{"subs":["s"],"topic":"`+Topic+`","seq":`...)
			b = strconv.AppendUint(b, seq, 10)
			b = append(b, `,"time":"`...)
			b = time.Now().UTC().AppendFormat(b, time.RFC3339Nano)
			b = append(b, `","data":`...)
			b = append(b, data...)
			b = append(b, "}]}"...)
			return m.Broadcast(b)
		},
		Close: func() {
			// melody's hub must outlive every session: a session that
			// unregisters after Close blocks forever.
			for deadline := time.Now().Add(time.Minute); m.Len() > 0 && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
			_ = m.Close()
		},
	}
}

// Valid reports whether name is a peer.
func Valid(name string) bool { return slices.Contains(Names, name) }
