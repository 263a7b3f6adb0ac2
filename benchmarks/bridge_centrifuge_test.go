package benchmarks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/centrifugal/centrifuge"
	"github.com/gorilla/websocket"
	"github.com/whalesong/bus"
	"github.com/whalesong/bus/bridge"
)

// BenchmarkBridgeVsCentrifuge fans events out over WebSocket from the
// whalesong bridge and from github.com/centrifugal/centrifuge, in the same
// run, the same scenario for both: N loopback clients (default 1,000) on
// one topic/channel, E events (default 2,000) of about 100 bytes of JSON
// published as fast as the server takes them (bus.Publish, node.Publish).
// Each event carries its publish time and index; every client checks that
// it gets every event once, in order, and records publish-to-receipt
// latency. Reported: deliveries/s (N*E over the time from the first publish
// to the last receipt), p50/p99 latency, and publish-ms, how long the
// publishing loop took: the latency counts from the publish call, so a
// server whose Publish returns only once the event is handed to every
// client (centrifuge) holds its queue before the clock starts, and one
// whose Publish returns at once (the bus) holds it inside the latency.
//
// Both servers run with their default configuration (centrifuge: in-memory
// broker, its WebsocketHandler, JSON protocol; the bridge: bridge.New with
// no option). The clients are the same for both: gorilla/websocket
// connections in the same process, one goroutine each, that find the events
// in a frame with the same byte scan, so that the client side costs the
// same and the comparison is of the servers. (centrifuge-go, the official
// client, decodes every reply and runs callbacks; TestCentrifugeGoClient
// checks that this server setup is one it talks to.)
//
//	go test -run '^$' -bench 'Centrifuge' -benchtime 1x -count 5 .
//
// WHALESONG_BENCH_CLIENTS and WHALESONG_BENCH_EVENTS change N and E;
// WHALESONG_BENCH_EVERY (a duration, e.g. 10ms) paces the publisher to one
// event per interval, to compare latency at a load both servers sustain.
func BenchmarkBridgeVsCentrifuge(b *testing.B) {
	n := envInt(b, "WHALESONG_BENCH_CLIENTS", 1000)
	e := envInt(b, "WHALESONG_BENCH_EVENTS", 2000)
	var every time.Duration
	if s := os.Getenv("WHALESONG_BENCH_EVERY"); s != "" {
		var err error
		if every, err = time.ParseDuration(s); err != nil || every < 0 {
			b.Fatalf("WHALESONG_BENCH_EVERY=%q: want a duration", s)
		}
	}
	b.Run("impl=whalesong", func(b *testing.B) { benchWSFanout(b, newBridgeServer(b), n, e, every) })
	b.Run("impl=centrifuge", func(b *testing.B) { benchWSFanout(b, newCentrifugeServer(b), n, e, every) })
}

const (
	wsTopic = "bench.topic"
	// wsLimit bounds every wait (dialing, a run), so that a server that
	// loses events fails instead of hanging.
	wsLimit = 2 * time.Minute
)

// wsEvent is the payload: about 100 bytes of JSON.
type wsEvent struct {
	Sent int64  `json:"sent"` // publish time, Unix ns
	I    int    `json:"i"`    // index in the run, from 0
	Pad  string `json:"pad"`
}

var wsPad = strings.Repeat("x", 56)

// wsServer is a server under benchmark.
type wsServer struct {
	url string
	// subscribe runs on a fresh connection and returns once the server has
	// confirmed the subscription.
	subscribe func(c *websocket.Conn) error
	// pong, if set, answers a server's application-level ping found in a
	// frame (centrifuge's JSON protocol: an empty object on its own line).
	pong    func(c *websocket.Conn, frame []byte) error
	publish func(ev wsEvent) error
	close   func()
}

func newBridgeServer(testing.TB) *wsServer {
	bs := bus.New[wsEvent]()
	br := bridge.New(bs)
	srv := httptest.NewServer(br)
	ctx := context.Background()
	return &wsServer{
		url: "ws" + strings.TrimPrefix(srv.URL, "http"),
		subscribe: func(c *websocket.Conn) error {
			err := c.WriteMessage(websocket.TextMessage, []byte(`{"op":"sub","id":"1","sub":"s","pattern":"`+wsTopic+`"}`))
			if err != nil {
				return err
			}
			for { // hello, then subscribed
				_, data, err := c.ReadMessage()
				switch {
				case err != nil:
					return err
				case bytes.Contains(data, []byte(`"op":"subscribed"`)):
					return nil
				case bytes.Contains(data, []byte(`"op":"error"`)):
					return fmt.Errorf("subscribe: %s", data)
				}
			}
		},
		publish: func(ev wsEvent) error {
			_, err := bs.Publish(ctx, wsTopic, ev)
			return err
		},
		close: func() {
			_ = br.Close()
			srv.Close()
			_ = bs.Close()
		},
	}
}

func newCentrifugeServer(tb testing.TB) *wsServer {
	node, err := centrifuge.New(centrifuge.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	broker, err := centrifuge.NewMemoryBroker(node, centrifuge.MemoryBrokerConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	node.SetBroker(broker)
	node.OnConnecting(func(ctx context.Context, e centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
		return centrifuge.ConnectReply{}, nil // the credentials come from the middleware
	})
	node.OnConnect(func(c *centrifuge.Client) {
		c.OnSubscribe(func(e centrifuge.SubscribeEvent, cb centrifuge.SubscribeCallback) {
			if e.Channel != wsTopic {
				cb(centrifuge.SubscribeReply{}, centrifuge.ErrorPermissionDenied)
				return
			}
			cb(centrifuge.SubscribeReply{}, nil)
		})
	})
	if err := node.Run(); err != nil {
		tb.Fatal(err)
	}
	ws := centrifuge.NewWebsocketHandler(node, centrifuge.WebsocketConfig{})
	auth := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := centrifuge.SetCredentials(r.Context(), &centrifuge.Credentials{UserID: "bench"})
		ws.ServeHTTP(w, r.WithContext(ctx))
	})
	srv := httptest.NewServer(auth)
	ping := []byte("{}")
	return &wsServer{
		url: "ws" + strings.TrimPrefix(srv.URL, "http"),
		subscribe: func(c *websocket.Conn) error {
			// One command per frame, each answered by the reply with its id.
			for _, cmd := range []string{`{"id":1,"connect":{}}`, `{"id":2,"subscribe":{"channel":"` + wsTopic + `"}}`} {
				if err := c.WriteMessage(websocket.TextMessage, []byte(cmd)); err != nil {
					return err
				}
				_, data, err := c.ReadMessage()
				if err != nil {
					return err
				}
				if bytes.Contains(data, []byte(`"error":`)) {
					return fmt.Errorf("%s: %s", cmd, data)
				}
			}
			return nil
		},
		pong: func(c *websocket.Conn, frame []byte) error {
			// A frame is replies and pushes, one JSON object a line; a
			// ping is "{}" and wants "{}" back.
			for line := range bytes.SplitSeq(frame, []byte{'\n'}) {
				if bytes.Equal(line, ping) {
					return c.WriteMessage(websocket.TextMessage, ping)
				}
			}
			return nil
		},
		publish: func(ev wsEvent) error {
			data, err := json.Marshal(ev)
			if err != nil {
				return err
			}
			_, err = node.Publish(wsTopic, data)
			return err
		},
		close: func() {
			srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := node.Shutdown(ctx); err != nil {
				tb.Error(err)
			}
			// Shutdown does not wait for everything it stops: when its
			// last subscriber leaves, a channel is unsubscribed from the
			// broker by a job that first sleeps a second (node.go,
			// unsubscribeFromBrokerWhenEmpty), and the connections'
			// goroutines end after the sockets close.
			waitNoGoroutine(tb, []string{"github.com/centrifugal/centrifuge.", "github.com/centrifugal/centrifuge/"}, 10*time.Second)
		},
	}
}

// waitNoGoroutine waits until no goroutine's stack mentions any of frames.
func waitNoGoroutine(tb testing.TB, frames []string, limit time.Duration) {
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(limit); ; {
		n := runtime.Stack(buf, true)
		for n == len(buf) {
			buf = make([]byte, 2*len(buf))
			n = runtime.Stack(buf, true)
		}
		stacks := string(buf[:n])
		found := ""
		for _, f := range frames {
			if strings.Contains(stacks, f) {
				found = f
				break
			}
		}
		if found == "" {
			return
		}
		if time.Now().After(deadline) {
			tb.Errorf("goroutines of %s still running after %v", found, limit)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// benchWSFanout publishes events per iteration, one every interval (0: as
// fast as the server takes them).
func benchWSFanout(b *testing.B, s *wsServer, clients, events int, every time.Duration) {
	defer s.close()
	conns := wsDial(b, s, clients)
	// Closing every connection ends the readers: at the end, and at once
	// when one of them fails.
	var closeOnce sync.Once
	closeAll := func() {
		closeOnce.Do(func() {
			for _, c := range conns {
				_ = c.Close()
			}
		})
	}
	defer closeAll()

	var lat []int64
	var total, publishing time.Duration
	for b.Loop() {
		rounds := make([][]int64, len(conns))
		deadline := time.Now().Add(wsLimit)
		var wg sync.WaitGroup
		for i, c := range conns {
			wg.Go(func() {
				var err error
				rounds[i], err = wsRead(c, s.pong, events, deadline)
				if err != nil {
					b.Errorf("client %d after %d events: %v", i, len(rounds[i]), err)
					closeAll()
				}
			})
		}
		var tick *time.Ticker
		if every > 0 {
			tick = time.NewTicker(every)
		}
		start := time.Now()
		for i := range events {
			if tick != nil {
				<-tick.C
			}
			if err := s.publish(wsEvent{Sent: time.Now().UnixNano(), I: i, Pad: wsPad}); err != nil {
				b.Errorf("publish %d: %v", i, err)
				closeAll()
				break
			}
		}
		publishing += time.Since(start)
		if tick != nil {
			tick.Stop()
		}
		wg.Wait()
		total += time.Since(start)
		if b.Failed() {
			return
		}
		for _, r := range rounds {
			lat = append(lat, r...)
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/total.Seconds(), "deliveries/s")
	b.ReportMetric(float64(lat[len(lat)/2])/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100])/1e3, "p99-µs")
	b.ReportMetric(publishing.Seconds()*1e3/float64(b.N), "publish-ms")
}

var (
	sentKey  = []byte(`"sent":`)
	indexKey = []byte(`"i":`)
)

// wsRead reads frames until n events arrived and returns their latencies
// in ns. Events are found by their "sent" and "i" fields, whatever wraps
// them (a bridge events frame, centrifuge pushes), and must come once
// each, in order.
func wsRead(c *websocket.Conn, pong func(*websocket.Conn, []byte) error, n int, deadline time.Time) ([]int64, error) {
	out := make([]int64, 0, n)
	if err := c.SetReadDeadline(deadline); err != nil {
		return out, err
	}
	for len(out) < n {
		_, frame, err := c.ReadMessage()
		if err != nil {
			return out, err
		}
		now := time.Now().UnixNano()
		if pong != nil {
			if err := pong(c, frame); err != nil {
				return out, err
			}
		}
		for data := frame; ; {
			sent, rest, ok := intAfter(data, sentKey)
			if !ok {
				break
			}
			i, rest, ok := intAfter(rest, indexKey)
			if !ok {
				return out, fmt.Errorf("no index after sent in %q", frame)
			}
			if int(i) != len(out) {
				return out, fmt.Errorf("event %d, want %d", i, len(out))
			}
			out = append(out, now-sent)
			data = rest
		}
	}
	return out, nil
}

// intAfter finds key in data and parses the integer that follows it.
func intAfter(data, key []byte) (v int64, rest []byte, ok bool) {
	k := bytes.Index(data, key)
	if k < 0 {
		return 0, nil, false
	}
	data = data[k+len(key):]
	j := 0
	for j < len(data) && (data[j] >= '0' && data[j] <= '9' || data[j] == '-') {
		j++
	}
	v, err := strconv.ParseInt(string(data[:j]), 10, 64)
	return v, data[j:], err == nil
}

// wsDial opens n connections (50 at a time, small buffers) and subscribes
// each.
func wsDial(b *testing.B, s *wsServer, n int) []*websocket.Conn {
	b.Helper()
	wsRaiseFileLimit(b, 2*n+256)
	d := websocket.Dialer{ReadBufferSize: 512, WriteBufferSize: 512, HandshakeTimeout: wsLimit}
	conns := make([]*websocket.Conn, 0, n)
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	sem := make(chan struct{}, 50)
	for range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c, _, err := d.Dial(s.url, nil)
			if err == nil {
				_ = c.SetReadDeadline(time.Now().Add(wsLimit))
				err = s.subscribe(c)
			}
			mu.Lock()
			defer mu.Unlock()
			if c != nil {
				conns = append(conns, c)
			}
			if err != nil && firstErr == nil {
				firstErr = err
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		for _, c := range conns {
			_ = c.Close()
		}
		b.Fatalf("dial: %v", firstErr)
	}
	return conns
}

func wsRaiseFileLimit(b *testing.B, need int) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Skipf("getrlimit: %v", err)
	}
	if lim.Cur >= uint64(need) {
		return
	}
	lim.Cur = min(max(lim.Cur, uint64(need)), lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < uint64(need) {
		b.Skipf("need %d file descriptors, may have %d", need, lim.Cur)
	}
}

func envInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		b.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return v
}
