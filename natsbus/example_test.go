package natsbus_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/whalesong/bus"
	"github.com/whalesong/bus/natsbus"
)

// Two nodes share one stream on an embedded NATS server: an event published
// on one is delivered on the other with the same Seq, in the same Epoch,
// and a node started later replays it.
func Example() {
	dir, _ := os.MkdirTemp("", "natsbus-example")
	defer os.RemoveAll(dir)
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true})
	if err != nil {
		panic(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		panic("nats-server not ready")
	}
	defer srv.Shutdown()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	node := func() (*bus.Bus[string], *nats.Conn) {
		nc, err := nats.Connect(srv.ClientURL(), natsbus.ConnectOptions()...)
		if err != nil {
			panic(err)
		}
		b, err := natsbus.New[string](ctx, nc, natsbus.WithStream("CHAT"), natsbus.WithHistory(100))
		if err != nil {
			panic(err)
		}
		return b, nc
	}
	a, nca := node()
	defer nca.Close()
	defer a.Close()
	b, ncb := node()
	defer ncb.Close()
	defer b.Close()

	sub, _ := b.Subscribe("chat.>")
	seq, _ := a.Publish(ctx, "chat.lobby", "hello from a")
	ev, _ := sub.Next(ctx)
	fmt.Println("published", seq, "on a; b got", ev.Seq, ev.Topic, ev.Data)
	fmt.Println("same epoch:", a.Epoch() == b.Epoch())

	c, ncc := node() // a node started later has the history
	defer ncc.Close()
	defer c.Close()
	replay, _ := c.Subscribe("chat.>", bus.After(0))
	ev, _ = replay.Next(ctx)
	fmt.Println("c replays", ev.Seq, ev.Data, "recovered:", replay.Recovered())
	// Output:
	// published 1 on a; b got 1 chat.lobby hello from a
	// same epoch: true
	// c replays 1 hello from a recovered: true
}

// ConnectOptions are what New needs of a connection; New refuses one made
// with nats.go's defaults, naming the option.
func ExampleConnectOptions() {
	dir, _ := os.MkdirTemp("", "natsbus-example")
	defer os.RemoveAll(dir)
	srv, _ := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true})
	go srv.Start()
	srv.ReadyForConnections(10 * time.Second)
	defer srv.Shutdown()

	plain, _ := nats.Connect(srv.ClientURL())
	defer plain.Close()
	_, err := natsbus.New[string](context.Background(), plain)
	fmt.Println(err != nil, errors.Is(err, natsbus.ErrConnOption))

	nc, _ := nats.Connect(srv.ClientURL(), natsbus.ConnectOptions()...)
	defer nc.Close()
	b, err := natsbus.New[string](context.Background(), nc)
	fmt.Println(err)
	b.Close()
	// Output:
	// true true
	// <nil>
}

// embedded starts a nats-server with JetStream on a temporary store and a
// random 127.0.0.1 port, and a connection to it made with ConnectOptions.
func embedded() (nc *nats.Conn, stop func()) {
	dir, _ := os.MkdirTemp("", "natsbus-example")
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true})
	if err != nil {
		panic(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		panic("nats-server not ready")
	}
	nc, err = nats.Connect(srv.ClientURL(), natsbus.ConnectOptions()...)
	if err != nil {
		panic(err)
	}
	return nc, func() {
		nc.Close()
		srv.Shutdown()
		srv.WaitForShutdown()
		os.RemoveAll(dir)
	}
}

// WithHistory is the stream's per-topic retention: a replay that asks for
// an evicted event says so.
func ExampleWithHistory() {
	nc, stop := embedded()
	defer stop()
	ctx := context.Background()
	b, err := natsbus.New[int](ctx, nc, natsbus.WithHistory(2))
	if err != nil {
		panic(err)
	}
	defer b.Close()
	for i := range 3 {
		b.Publish(ctx, "sensor.1", i)
	}
	sub, _ := b.Subscribe("sensor.1", bus.After(0))
	defer sub.Close()
	for range 2 {
		ev, _ := sub.Next(ctx)
		fmt.Println(ev.Seq, ev.Data)
	}
	fmt.Println("recovered:", sub.Recovered())
	// Output:
	// 2 1
	// 3 2
	// recovered: false
}

// upper stores strings upper-cased: a Codec decides the bytes in the stream.
type upper struct{}

func (upper) Marshal(v any) ([]byte, error) { return []byte(strings.ToUpper(v.(string))), nil }
func (upper) Unmarshal(data []byte, v any) error {
	*v.(*string) = string(data)
	return nil
}

// WithCodec sets how events are stored; every node on the stream must use
// the same one.
func ExampleWithCodec() {
	nc, stop := embedded()
	defer stop()
	ctx := context.Background()
	b, err := natsbus.New[string](ctx, nc, natsbus.WithCodec(upper{}))
	if err != nil {
		panic(err)
	}
	defer b.Close()
	b.Publish(ctx, "greetings", "hello")
	h, _ := b.History(">", 0, 0)
	fmt.Println(h[0].Data)
	// Output:
	// HELLO
}

// WithStream names the stream, and so the sequence space: buses on
// different streams of one NATS server share nothing, each numbering its
// events from 1 in an epoch of its own.
func ExampleWithStream() {
	nc, stop := embedded()
	defer stop()
	ctx := context.Background()
	orders, err := natsbus.New[string](ctx, nc, natsbus.WithStream("ORDERS"))
	if err != nil {
		panic(err)
	}
	defer orders.Close()
	chat, err := natsbus.New[string](ctx, nc, natsbus.WithStream("CHAT"))
	if err != nil {
		panic(err)
	}
	defer chat.Close()

	o, _ := orders.Publish(ctx, "orders.created", "A-1")
	c, _ := chat.Publish(ctx, "chat.lobby", "hi")
	fmt.Println("orders seq", o, "chat seq", c, "same epoch:", orders.Epoch() == chat.Epoch())
	js, _ := jetstream.New(nc)
	s, _ := js.Stream(ctx, "ORDERS")
	fmt.Println("stream ORDERS holds subjects", s.CachedInfo().Config.Subjects)
	_, err = natsbus.New[string](ctx, nc, natsbus.WithStream("chat.lobby"))
	fmt.Println(errors.Is(err, natsbus.ErrOption), err)
	// Output:
	// orders seq 1 chat seq 1 same epoch: false
	// stream ORDERS holds subjects [ORDERS.>]
	// true natsbus: invalid option: WithStream("chat.lobby"): "." at byte 4
}

// WithHistoryTTL is the stream's MaxAge (and bounds its deduplication
// window); every node on the stream must give the same one.
func ExampleWithHistoryTTL() {
	nc, stop := embedded()
	defer stop()
	ctx := context.Background()
	b, err := natsbus.New[string](ctx, nc, natsbus.WithHistoryTTL(time.Minute))
	if err != nil {
		panic(err)
	}
	defer b.Close()
	js, _ := jetstream.New(nc)
	s, _ := js.Stream(ctx, "WHALESONG")
	cfg := s.CachedInfo().Config
	fmt.Println("max age", cfg.MaxAge, "duplicate window", cfg.Duplicates)

	_, err = natsbus.New[string](ctx, nc, natsbus.WithHistoryTTL(time.Hour))
	fmt.Println(errors.Is(err, natsbus.ErrStreamMismatch), err)
	_, err = natsbus.New[string](ctx, nc, natsbus.WithHistoryTTL(time.Millisecond))
	fmt.Println(errors.Is(err, natsbus.ErrOption), err)
	// Output:
	// max age 1m0s duplicate window 1m0s
	// true natsbus: stream configuration mismatch: stream "WHALESONG": max_age (WithHistoryTTL) is 1m0s, want 1h0m0s; duplicate_window is 1m0s, want 5m0s
	// true natsbus: invalid option: WithHistoryTTL(1ms): JetStream's MaxAge is at least 100ms
}

// WithReplicas is the stream's replica count. A stream of several replicas
// needs a JetStream cluster; every node must give the same count, and
// natsbus never changes an existing stream's.
func ExampleWithReplicas() {
	nc, stop := embedded() // one server: one replica
	defer stop()
	ctx := context.Background()
	b, err := natsbus.New[string](ctx, nc, natsbus.WithReplicas(1))
	if err != nil {
		panic(err)
	}
	defer b.Close()

	_, err = natsbus.New[string](ctx, nc, natsbus.WithReplicas(3))
	fmt.Println(errors.Is(err, natsbus.ErrStreamMismatch), err)
	_, err = natsbus.New[string](ctx, nc, natsbus.WithReplicas(7))
	fmt.Println(errors.Is(err, natsbus.ErrOption), err)
	// Output:
	// true natsbus: stream configuration mismatch: stream "WHALESONG": num_replicas (WithReplicas) is 1, want 3
	// true natsbus: invalid option: WithReplicas(7): want 1 to 5
}

// WithLogger reports what the bus alone does not show: here why a
// subscription ended. Another program stored an event that does not decode
// in the stream: the bus counts it as lost (ending the subscriptions it
// would have reached, which resume and are told), and the log says which.
func ExampleWithLogger() {
	nc, stop := embedded()
	defer stop()
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		Level: slog.LevelWarn,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "subject" {
				return slog.Attr{} // the time differs on every run; the subject with the way it was read
			}
			return a
		},
	}))
	b, err := natsbus.New[int](ctx, nc, natsbus.WithLogger(logger))
	if err != nil {
		panic(err)
	}
	defer b.Close()
	sub, _ := b.Subscribe("count")
	defer sub.Close()

	js, _ := jetstream.New(nc)
	js.Publish(ctx, "WHALESONG.count", []byte(`"seven"`)) // not an int
	b.Publish(ctx, "count", 8)
	_, err = sub.Next(ctx)
	fmt.Println("subscription ended:", err)
	again, _ := b.Subscribe("count", bus.After(0))
	defer again.Close()
	ev, _ := again.Next(ctx)
	fmt.Println("resumed:", ev.Seq, ev.Data, "recovered:", again.Recovered())
	// Output:
	// level=WARN msg="natsbus: skipped an event that does not decode" stream=WHALESONG seq=1 err="json: cannot unmarshal string into Go value of type int" skipped=1
	// subscription ended: bus: slow consumer: events of the shared log were missed
	// resumed: 2 8 recovered: false
}

// WithBusOptions passes options to the bus that serves the stream: here
// bus.WithMaxRetained bounds the events this process keeps in memory over
// all topics, while the stream keeps its own history.
func ExampleWithBusOptions() {
	nc, stop := embedded()
	defer stop()
	ctx := context.Background()
	b, err := natsbus.New[string](ctx, nc, natsbus.WithBusOptions(bus.WithMaxRetained(2)))
	if err != nil {
		panic(err)
	}
	defer b.Close()
	var seq uint64
	for _, room := range []string{"lobby", "dev", "ops"} {
		seq, _ = b.Publish(ctx, "chat."+room, "hi")
	}
	b.WaitSeq(ctx, seq) // this process has applied them
	fmt.Println("retained in memory:", b.Stats().Retained)
	js, _ := jetstream.New(nc)
	s, _ := js.Stream(ctx, "WHALESONG")
	fmt.Println("in the stream:", s.CachedInfo().State.Msgs)
	// Output:
	// retained in memory: 2
	// in the stream: 3
}
