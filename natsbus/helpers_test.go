package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/whalesong/bus"
	"github.com/whalesong/bus/natsbus/internal/natstest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	goleak.VerifyTestMain(m, serverLeftovers...)
}

// serverLeftovers are goroutines that nats-server itself leaves running
// after Shutdown of a clustered server (a stream store's state flusher and
// the access-time ticker it keeps registered). Each test that runs a bus
// also checks, with goleak.IgnoreCurrent taken after its servers started,
// that natsbus leaves nothing.
var serverLeftovers = []goleak.Option{
	goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*fileStore).flushStreamStateLoop"),
	goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server/ats.Register.func1"),
}

// waitLimit bounds every wait for something that should happen soon.
const waitLimit = 20 * time.Second

// connect dials url with ConnectOptions plus extra; the test's cleanup
// closes the connection.
func connect(t testing.TB, url string, extra ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, append(ConnectOptions(), extra...)...)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// testLog makes a Log[T] on nc within a bounded ctx.
func testLog[T any](t testing.TB, nc *nats.Conn, opts ...Option) *natsLog[T] {
	t.Helper()
	cfg, err := newConfig(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	l, err := newLog[T](ctx, nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// recorder collects what a Follow hands to apply.
type recorder[T any] struct {
	mu      sync.Mutex
	recs    []bus.Record[T] // guarded by mu
	changed chan struct{}   // guarded by mu: closed at the next record
}

// follow runs l.Follow from the start in a goroutine that the test's
// cleanup stops and waits for.
func follow[T any](t testing.TB, l *natsLog[T]) *recorder[T] {
	t.Helper()
	r := &recorder[T]{changed: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Follow(ctx, bus.Position{}, r.apply) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Follow returned %v, want context.Canceled", err)
		}
	})
	return r
}

func (r *recorder[T]) apply(rec bus.Record[T]) {
	r.mu.Lock()
	r.recs = append(r.recs, rec)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// snapshot is a copy of the records so far.
func (r *recorder[T]) snapshot() []bus.Record[T] {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bus.Record[T](nil), r.recs...)
}

// wait blocks until cond holds for the records so far, failing the test
// after waitLimit.
func (r *recorder[T]) wait(t testing.TB, what string, cond func([]bus.Record[T]) bool) []bus.Record[T] {
	t.Helper()
	timer := time.NewTimer(waitLimit)
	defer timer.Stop()
	for {
		r.mu.Lock()
		recs, changed := r.recs, r.changed
		ok := cond(recs)
		r.mu.Unlock()
		if ok {
			return append([]bus.Record[T](nil), recs...)
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("no %s within %v; last records: %s", what, waitLimit, tail(recs, 5))
		}
	}
}

// waitSeq waits until an event with Seq >= seq was applied.
func (r *recorder[T]) waitSeq(t testing.TB, seq uint64) []bus.Record[T] {
	t.Helper()
	return r.wait(t, fmt.Sprintf("event %d", seq), func(recs []bus.Record[T]) bool {
		for i := len(recs) - 1; i >= 0; i-- {
			if recs[i].Event.Seq != 0 {
				return recs[i].Event.Seq >= seq
			}
		}
		return false
	})
}

func tail[T any](recs []bus.Record[T], n int) string {
	if len(recs) > n {
		recs = recs[len(recs)-n:]
	}
	s := ""
	for _, r := range recs {
		s += fmt.Sprintf("[epoch %.8s seq %d head %d topic %q] ", r.Epoch, r.Event.Seq, r.Head, r.Event.Topic)
	}
	return s
}

// events are the event records (not announcements) of recs.
func events[T any](recs []bus.Record[T]) []bus.Record[T] {
	var out []bus.Record[T]
	for _, r := range recs {
		if r.Event.Seq != 0 {
			out = append(out, r)
		}
	}
	return out
}

// seqs are the Seqs of the event records of recs.
func seqs[T any](recs []bus.Record[T]) []uint64 {
	var out []uint64
	for _, r := range events(recs) {
		out = append(out, r.Event.Seq)
	}
	return out
}

// epochs are the distinct epochs of recs, in order.
func epochs[T any](recs []bus.Record[T]) []string {
	var out []string
	for _, r := range recs {
		if len(out) == 0 || out[len(out)-1] != r.Epoch {
			out = append(out, r.Epoch)
		}
	}
	return out
}

// streamState reads the stream's state directly.
func streamState(t testing.TB, nc *nats.Conn, name string) *jetstream.StreamInfo {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitLimit)
	for { // nc may still be reconnecting after a restart of the server
		waitConnected(t, nc)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		s, err := js.Stream(ctx, name)
		cancel()
		if err == nil {
			return s.CachedInfo()
		}
		if errors.Is(err, jetstream.ErrStreamNotFound) || time.Now().After(deadline) {
			t.Fatalf("stream %s: %v", name, err)
		}
	}
}

// waitConnected waits until nc is connected: a test's own connection
// reconnects after a restart of the server on its own schedule, and a
// request it sends before then fails at once.
func waitConnected(t testing.TB, nc *nats.Conn) {
	t.Helper()
	ch := nc.StatusChanged(nats.CONNECTED)
	defer nc.RemoveStatusListener(ch)
	if nc.Status() == nats.CONNECTED {
		return
	}
	select {
	case <-ch:
	case <-time.After(waitLimit):
		t.Fatalf("the test's connection did not reconnect within %v (status %v)", waitLimit, nc.Status())
	}
}

// appendN publishes n events to topic through l, each with a bounded ctx,
// and returns their seqs.
func appendN(t testing.TB, l *natsLog[int], topic string, n int) []uint64 {
	t.Helper()
	out := make([]uint64, 0, n)
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		seq, err := l.Append(ctx, "", topic, i)
		cancel()
		if err != nil {
			t.Fatalf("append %d to %s: %v", i, topic, err)
		}
		out = append(out, seq)
	}
	return out
}

// single starts one embedded server and returns it with a connection.
func single(t testing.TB) (*natstest.Server, *nats.Conn) {
	t.Helper()
	s := natstest.Start(t)
	return s, connect(t, s.URL())
}

// waitLoaded waits until a follower of l caught up with the stream.
func waitLoaded[T any](t testing.TB, l *natsLog[T]) {
	t.Helper()
	select {
	case <-l.loaded:
	case <-time.After(waitLimit):
		t.Fatalf("the follower did not catch up within %v", waitLimit)
	}
}

// checkContiguous fails unless the event records of recs are exactly the
// seqs from..to, each once, in order.
func checkContiguous[T any](t testing.TB, name string, recs []bus.Record[T], from, to uint64) {
	t.Helper()
	got := seqs(recs)
	if uint64(len(got)) != to-from+1 {
		t.Fatalf("%s: %d events, want %d (%d..%d); last records %s", name, len(got), to-from+1, from, to, tail(recs, 5))
	}
	for i, s := range got {
		if s != from+uint64(i) {
			t.Fatalf("%s: event %d has seq %d, want %d", name, i, s, from+uint64(i))
		}
	}
}

// natstestProxy is a pausable TCP proxy to url (host:port of a nats URL).
func natstestProxy(t testing.TB, url string) *natstest.Proxy {
	t.Helper()
	return natstest.NewProxy(t, strings.TrimPrefix(url, "nats://"))
}

// waitFor polls cond for state that offers no signal (a stream's contents).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	natstest.Eventually(t, waitLimit, what, cond)
}

// logSink is a slog.Handler that keeps every record's message and
// attributes as one line, and signals each new one.
type logSink struct {
	mu      sync.Mutex
	lines   []string      // guarded by mu
	changed chan struct{} // guarded by mu
}

func newLogSink() *logSink { return &logSink{changed: make(chan struct{})} }

func (s *logSink) Enabled(context.Context, slog.Level) bool { return true }
func (s *logSink) WithAttrs([]slog.Attr) slog.Handler       { return s }
func (s *logSink) WithGroup(string) slog.Handler            { return s }
func (s *logSink) Handle(_ context.Context, r slog.Record) error {
	line := r.Message
	r.Attrs(func(a slog.Attr) bool { line += " " + a.String(); return true })
	s.mu.Lock()
	s.lines = append(s.lines, line)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	return nil
}

// wait blocks until a line contains all of parts.
func (s *logSink) wait(t testing.TB, parts ...string) {
	t.Helper()
	timer := time.NewTimer(waitLimit)
	defer timer.Stop()
	for {
		s.mu.Lock()
		lines, changed := s.lines, s.changed
		s.mu.Unlock()
		for _, l := range lines {
			if containsAll(l, parts) {
				return
			}
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("no log line with %q within %v; lines: %q", parts, waitLimit, lines)
		}
	}
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// gatedFollow runs l.Follow with an apply that stops before the event
// with Seq at until release is called; the test's cleanup stops it.
func gatedFollow[T any](t testing.TB, l *natsLog[T], at uint64) (r *recorder[T], held <-chan struct{}, release func()) {
	t.Helper()
	r = &recorder[T]{changed: make(chan struct{})}
	gate, h := make(chan struct{}), make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- l.Follow(ctx, bus.Position{}, func(rec bus.Record[T]) {
			if rec.Event.Seq == at {
				close(h)
				<-gate
			}
			r.apply(rec)
		})
	}()
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(func() {
		release()
		cancel()
		<-done
	})
	return r, h, release
}
