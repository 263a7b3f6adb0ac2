package natsbus_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
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
