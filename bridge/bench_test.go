package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/olahol/melody"
	bus "github.com/whalesong/bus"
	"github.com/whalesong/bus/bridge/internal/wstest"
)

// The fan-out benchmark: 1,000 loopback clients on one topic, 2,000 events
// of about 100 bytes each, published as fast as the server takes them.
// Reported: deliveries/s (events received by all clients over the run) and
// the p50/p99 latency from publish to receipt. The baseline is raw melody
// Broadcast of the same pre-encoded event, measured in the same run, with
// a buffer large enough that melody drops nothing.
//
//	go test -run '^$' -bench 'Fanout|Idle' -benchtime 1x -count 5 ./bridge/
const (
	benchClients = 1000
	benchEvents  = 2000
)

// benchPad makes an event's data about 100 bytes.
var benchPad = strings.Repeat("x", 64)

func BenchmarkFanout(b *testing.B) {
	b.Run("bridge", func(b *testing.B) { benchFanout(b, newBridgeTarget(b), benchEvents, 0) })
	b.Run("melody", func(b *testing.B) { benchFanout(b, newMelodyTarget(b, 2*benchEvents), benchEvents, 0) })
}

// BenchmarkFanoutPaced measures latency at a load both servers sustain:
// 1,000 clients, 500 events at 100 events/s (100,000 deliveries/s).
func BenchmarkFanoutPaced(b *testing.B) {
	const events, every = 500, 10 * time.Millisecond
	b.Run("bridge", func(b *testing.B) { benchFanout(b, newBridgeTarget(b), events, every) })
	b.Run("melody", func(b *testing.B) { benchFanout(b, newMelodyTarget(b, 2*benchEvents), events, every) })
}

// target is a server under benchmark: a URL to dial, a way to subscribe a
// fresh connection, a publish of one event carrying its send time, a close.
type target struct {
	url       string
	subscribe func(c *websocket.Conn) error
	publish   func(sentNanos int64)
	close     func()
}

func newBridgeTarget(b *testing.B) *target {
	bs := bus.New[msg]()
	br := New(bs, WithMaxBacklog(4*benchEvents))
	srv := httptest.NewServer(br)
	ctx := b.Context()
	return &target{
		url: "ws" + strings.TrimPrefix(srv.URL, "http"),
		subscribe: func(c *websocket.Conn) error {
			if err := c.WriteMessage(websocket.TextMessage, []byte(`{"op":"sub","id":"r","sub":"s","pattern":"bench"}`)); err != nil {
				return err
			}
			for { // hello, then subscribed
				_, data, err := c.ReadMessage()
				if err != nil || bytes.Contains(data, []byte(`"subscribed"`)) {
					return err
				}
			}
		},
		publish: func(sent int64) {
			if _, err := bs.Publish(ctx, "bench", msg{Text: benchPad, N: int(sent)}); err != nil {
				b.Fatal(err)
			}
		},
		close: func() { _ = br.Close(); srv.Close(); _ = bs.Close() },
	}
}

// newMelodyTarget is raw melody with a per-session buffer of buffer
// messages (the fan-out run gives it room for every event, so that it drops
// none).
func newMelodyTarget(b *testing.B, buffer int) *target {
	m := melody.New()
	m.Config.MessageBufferSize = buffer
	m.Config.MaxMessageSize = DefaultMaxMessageSize
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _ = m.HandleRequest(w, r) }))
	var buf []byte
	return &target{
		url:       "ws" + strings.TrimPrefix(srv.URL, "http"),
		subscribe: func(*websocket.Conn) error { return nil },
		publish: func(sent int64) {
			// The same JSON an events entry carries, encoded once per event.
			data, _ := json.Marshal(msg{Text: benchPad, N: int(sent)})
			buf = appendEventTail(append(buf[:0], `{"subs":["s"],`...), "bench", 1, time.Now(), data, "")
			if err := m.Broadcast(bytes.Clone(buf)); err != nil {
				b.Fatal(err)
			}
		},
		close: func() {
			// melody's hub must outlive every session: a session that
			// unregisters after Close blocks forever.
			for deadline := time.Now().Add(time.Minute); m.Len() > 0 && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
			_ = m.Close()
			srv.Close()
		},
	}
}

// benchFanout publishes events per iteration, one every interval (0: as
// fast as the server takes them).
func benchFanout(b *testing.B, tg *target, events int, every time.Duration) {
	defer tg.close()
	conns := dialMany(b, tg.url, benchClients, tg.subscribe)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	var lat []int64
	var total time.Duration
	for b.Loop() {
		rounds := make([][]int64, len(conns))
		var wg sync.WaitGroup
		for i, c := range conns {
			wg.Go(func() { rounds[i] = readLatencies(b, c, events) })
		}
		start := time.Now()
		tick := time.NewTicker(max(every, time.Nanosecond))
		for range events {
			if every > 0 {
				<-tick.C
			}
			tg.publish(time.Now().UnixNano())
		}
		tick.Stop()
		wg.Wait()
		total += time.Since(start)
		for _, r := range rounds {
			lat = append(lat, r...)
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/total.Seconds(), "deliveries/s")
	b.ReportMetric(float64(lat[len(lat)/2])/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100])/1e3, "p99-µs")
}

// readLatencies reads until n events arrived and returns publish-to-receipt
// latencies in ns. It finds each event's send time as the "n" field without
// decoding the frame, identically for both targets.
func readLatencies(b *testing.B, c *websocket.Conn, n int) []int64 {
	out := make([]int64, 0, n)
	key := []byte(`"n":`)
	for len(out) < n {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Minute))
		_, data, err := c.ReadMessage()
		if err != nil {
			b.Error(err)
			return out
		}
		now := time.Now().UnixNano()
		for {
			i := bytes.Index(data, key)
			if i < 0 {
				break
			}
			data = data[i+len(key):]
			j := bytes.IndexAny(data, ",}")
			sent, err := strconv.ParseInt(string(data[:j]), 10, 64)
			if err != nil {
				b.Error(err)
				return out
			}
			out = append(out, now-sent)
		}
	}
	return out
}

// dialMany opens n client connections (50 at a time) with small buffers
// and runs setup on each.
func dialMany(b *testing.B, url string, n int, setup func(*websocket.Conn) error) []*websocket.Conn {
	b.Helper()
	raiseFileLimit(b, 2*n+256)
	conns := make([]*websocket.Conn, n)
	o := wstest.DialOptions{BufferSize: 512, HandshakeTimeout: time.Minute}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 50)
	var mu sync.Mutex
	var firstErr error
	for i := range conns {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := wstest.Dial(context.Background(), url, o)
			if err == nil {
				err = setup(c)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			conns[i] = c
		})
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatalf("dial: %v", firstErr)
	}
	return conns
}

func raiseFileLimit(b *testing.B, need int) {
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

// BenchmarkIdleConnections holds 5,000 idle connections (each subscribed,
// for the bridge) and reports the heap and goroutines each one costs,
// against raw melody. The clients live in the same process, with small
// buffers and no goroutine, so their share is the same in both rows.
func BenchmarkIdleConnections(b *testing.B) {
	if testing.Short() {
		b.Skip("5,000 connections")
	}
	const n = 5000
	b.Run("bridge", func(b *testing.B) { benchIdle(b, n, newBridgeTarget(b)) })
	b.Run("melody", func(b *testing.B) { benchIdle(b, n, newMelodyTarget(b, 256)) }) // melody's default buffer
}

func benchIdle(b *testing.B, n int, tg *target) {
	defer tg.close()
	for b.Loop() {
		heap0, stack0, g0 := memAndGoroutines()
		conns := dialMany(b, tg.url, n, tg.subscribe)
		heap1, stack1, g1 := memAndGoroutines()
		b.ReportMetric(float64(heap1-heap0)/float64(n), "heap-B/conn")
		b.ReportMetric(float64(stack1-stack0)/float64(n), "stack-B/conn")
		b.ReportMetric(float64(g1-g0)/float64(n), "goroutines/conn")
		for _, c := range conns {
			_ = c.Close()
		}
	}
}

func memAndGoroutines() (heap, stack uint64, goroutines int) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, ms.StackInuse, runtime.NumGoroutine()
}

// BenchmarkDecodeFrame decodes the client frames a publishing and a
// subscribing client send most.
func BenchmarkDecodeFrame(b *testing.B) {
	for _, tt := range []struct{ name, frame string }{
		{"pub", `{"op":"pub","id":"9f1d1f0a-63a3-4e52-9a8e-2f6a1c0f9b11","topic":"chat.lobby","data":{"text":"hi there, this is a chat message"}}`},
		{"sub", `{"op":"sub","id":"r1","sub":"s1","pattern":"chat.>","after":{"epoch":"0f8e2b1c-7d4a-4c2e-8f61-2a9d3c4b5e6f","seq":41}}`},
	} {
		data := []byte(tt.frame)
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, pe := decodeFrame(data); pe != nil {
					b.Fatal(pe)
				}
			}
		})
	}
}

// BenchmarkPipeFanout is the session's path without the kernel: 10
// clients over in-memory connections (wstest, net.Pipe), each subscribed
// to one topic, reading as fast as they can; an op is one event published
// and delivered to all 10 (the clock runs until the last delivery). It is
// far less noisy than the loopback runs above, so it shows what a change of
// the session code costs.
func BenchmarkPipeFanout(b *testing.B) {
	benchPipeFanout(b, `{"op":"sub","id":"r","sub":"s","pattern":"bench"}`)
}

// benchPipeFanout runs BenchmarkPipeFanout with each client sending sub.
func benchPipeFanout(b *testing.B, sub string) {
	const clients = 10
	bs := bus.New[msg]()
	defer bs.Close()
	br := New(bs, WithMaxBacklog(1<<30))
	defer br.Close()
	srv := wstest.NewServer(b, br, wstest.Options{Memory: true})
	defer srv.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	for range clients {
		c, err := srv.Dial(b.Context(), "/", wstest.DialOptions{})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		if err := c.WriteMessage(websocket.TextMessage, []byte(sub)); err != nil {
			b.Fatal(err)
		}
		for { // hello, then subscribed
			_, data, err := c.ReadMessage()
			if err != nil {
				b.Fatal(err)
			}
			if bytes.Contains(data, []byte(`"subscribed"`)) {
				break
			}
		}
		wg.Go(func() { // reads until the bridge closes
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		})
	}
	m := msg{Text: benchPad}
	n := uint64(b.N)
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	b.ResetTimer() // not b.Loop: the clock must run until the last delivery
	for range b.N {
		if _, err := bs.Publish(b.Context(), "bench", m); err != nil {
			b.Fatal(err)
		}
	}
	// Every event reaches every client, or (conflate) is superseded.
	handled := func() uint64 { st := br.Stats(); return st.EventsOut + st.Superseded }
	for deadline := time.Now().Add(time.Minute); handled() < clients*n; time.Sleep(100 * time.Microsecond) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d deliveries after a minute", handled(), clients*n)
		}
	}
	b.StopTimer()
	// The process's CPU time per op: on a shared machine, less noisy than
	// the wall clock (other processes take cores, not this one's cycles).
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
	_ = br.Close() // ends the readers
}

// cpuTime returns the user and system CPU time the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Skipf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSessionQueue is the session's queue alone, on one goroutine: 64
// live events queue behind a frame in flight (deliver), then leave as one
// batch (claim and build), as for a busy client. An op is one batch.
func BenchmarkSessionQueue(b *testing.B) {
	bs := bus.New[msg]()
	defer bs.Close()
	br := New(bs, WithMaxBacklog(1<<30))
	defer br.Close()
	s := &session[msg]{br: br}
	cs := &clientSub[msg]{id: "s"}
	s.subs = map[string]*clientSub[msg]{"s": cs}
	a := &attachment[msg]{sess: s, subs: []*clientSub[msg]{cs}}
	var events [64]*sharedEvent
	for i := range events {
		events[i] = br.encodeEvent(bus.Event[msg]{Topic: "bench", Seq: uint64(i + 1), Time: time.Now(), Data: msg{Text: benchPad}}, nil)
	}
	s.writing = true // the writer runs: deliveries queue
	b.ReportAllocs()
	for b.Loop() {
		cs.lastSent = 0
		for _, se := range events {
			s.deliver(a, se)
		}
		s.mu.Lock()
		s.writing = false
		_, n := s.claimLocked()
		s.writing = true
		s.mu.Unlock()
		if n != len(events) {
			b.Fatalf("claimed %d events, want %d", n, len(events))
		}
		putBuf(s.buildEvents())
	}
}
