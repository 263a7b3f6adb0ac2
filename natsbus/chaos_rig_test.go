package natsbus

// The rig of the chaos runs: an R3 cluster in this process, three bridge
// nodes (each its own *nats.Conn, natsbus bus and bridge.Bridge on an HTTP
// server), a balancer in front of them, Go publishers on the buses, and the
// chaos: sockets cut, NATS servers restarted, a node crashed and restarted.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/whalesong/bus"
	"github.com/whalesong/bus/bridge"
	"github.com/whalesong/bus/natsbus/internal/natstest"
)

// chaosEvent is the event type of the runs: an id that names its publisher
// ("g<node>-<n>" for Go, "c<client>-<n>" for JS clients), so that
// the stream can be checked against what each publisher was told.
type chaosEvent struct {
	ID string `json:"id"`
}

const chaosStream = "CHAOS"

// chaosNode is one bus node: what a process serving browsers holds.
type chaosNode struct {
	i   int
	nc  *nats.Conn
	bus *bus.Bus[chaosEvent]
	br  *bridge.Bridge[chaosEvent]
	srv *httptest.Server
}

// chaosRig is a running cluster of nodes.
type chaosRig struct {
	t       *testing.T
	size    chaosSize
	cluster *natstest.Cluster
	lb      *natstest.Balancer
	nc      *nats.Conn // the test's own connection: stream reads, deletes
	js      jetstream.JetStream
	links   []*natstest.Proxy // node i reaches server i through links[i] first
	start   time.Time

	pubIDs atomic.Uint64 // numbers the Go publishes: their ids are unique over the whole run

	mu    sync.Mutex
	nodes []*chaosNode  // guarded by mu: nil while crashed
	goPub []goPublish   // guarded by mu: every Go publish and its outcome
	log   []chaosAction // guarded by mu: what the chaos did, in order
}

// goPublish is one Go Publish and what it returned.
type goPublish struct {
	node  int
	id    string
	topic string
	seq   uint64
	err   error
	took  time.Duration
}

// chaosAction is one thing the chaos did, for the figures and for failure
// messages that must say which node did what when.
type chaosAction struct {
	at   time.Time
	what string
}

func (r *chaosRig) note(format string, args ...any) {
	r.mu.Lock()
	r.log = append(r.log, chaosAction{time.Now(), fmt.Sprintf(format, args...)})
	r.mu.Unlock()
}

// timeline is the chaos log, times relative to the start.
func (r *chaosRig) timeline() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, a := range r.log {
		fmt.Fprintf(&b, "  %7.3fs %s\n", a.at.Sub(r.start).Seconds(), a.what)
	}
	return b.String()
}

// streamOptions are every node's options for the stream: R3, and a history
// that holds every event of the run (so that every resume can be complete).
func (r *chaosRig) streamOptions() []Option {
	return []Option{WithStream(chaosStream), WithReplicas(3), WithHistory(r.size.history)}
}

// newChaosRig starts the cluster, the stream with seed events, the nodes
// and the balancer.
func newChaosRig(t *testing.T, size chaosSize) *chaosRig {
	t.Helper()
	r := &chaosRig{t: t, size: size, start: time.Now()}
	r.cluster = natstest.StartCluster(t, 3)
	r.nc = connect(t, r.cluster.URLs())
	var err error
	if r.js, err = jetstream.New(r.nc); err != nil {
		t.Fatal(err)
	}
	for _, s := range r.cluster.Nodes {
		r.links = append(r.links, natstest.NewProxy(t, s.Addr().String()))
	}
	r.nodes = make([]*chaosNode, 3)
	addrs := make([]string, 3)
	for i := range r.nodes {
		n := r.startNode(i)
		r.nodes[i] = n
		addrs[i] = n.srv.Listener.Addr().String()
	}
	r.lb = natstest.NewBalancer(t, clientKey, addrs...)
	r.seed()
	r.note("ready: stream %s at %d, nodes on %v", chaosStream, r.nodes[0].bus.Seq(), addrs)
	return r
}

// clientKey names the JS client of a connection from its request line
// ("GET /ws?c=17 HTTP/1.1"), so that the balancer sends its next
// connection to another node.
func clientKey(line string) string {
	parts := strings.Fields(line)
	if len(parts) < 2 {
		return ""
	}
	u, err := url.ParseRequestURI(parts[1])
	if err != nil {
		return ""
	}
	return u.Query().Get("c")
}

// startNode starts node i: a connection that goes to server i first,
// through link i (which stall can pause), then to the others; a bus on the
// stream; a bridge that lets clients publish; an HTTP server.
func (r *chaosRig) startNode(i int) *chaosNode {
	r.t.Helper()
	urls := strings.Split(r.cluster.URLs(), ",")
	pref := append([]string{r.links[i].URL()}, append(urls[i+1:], urls[:i]...)...)
	nc, err := nats.Connect(strings.Join(pref, ","), append(ConnectOptions(), nats.DontRandomize(), nats.Name(fmt.Sprintf("node%d", i)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { r.note("node %d: NATS async error: %v", i, err) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { r.note("node %d: NATS connection lost: %v", i, err) }),
		nats.ReconnectHandler(func(nc *nats.Conn) { r.note("node %d: NATS reconnected to %s", i, nc.ConnectedUrl()) }))...)
	if err != nil {
		r.t.Fatalf("node %d: connect: %v", i, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := New[chaosEvent](ctx, nc, append(r.streamOptions(), WithLogger(slog.New(&noteHandler{r: r, node: i})))...)
	if err != nil {
		nc.Close()
		r.t.Fatalf("node %d: New: %v", i, err)
	}
	br := bridge.New(b,
		bridge.WithAuthorize(func(any, bridge.Action, string) error { return nil }),
		bridge.WithPublishRate(1000, 2000))
	mux := http.NewServeMux()
	mux.Handle("/ws", br)
	n := &chaosNode{i: i, nc: nc, bus: b, br: br, srv: httptest.NewServer(mux)}
	r.t.Cleanup(n.stop)
	return n
}

// stop ends a node as a crash does, all at once: its NATS connection, bus,
// bridge and HTTP server (the balancer has cut its sockets first).
// Idempotent.
func (n *chaosNode) stop() {
	n.nc.Close()
	_ = n.bus.Close()
	_ = n.br.Close()
	n.srv.Close()
}

// noteHandler puts what a node's natsbus logs (follower sessions that
// end, catch-ups, epochs) into the chaos timeline.
type noteHandler struct {
	r    *chaosRig
	node int
}

func (h *noteHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *noteHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *noteHandler) WithGroup(string) slog.Handler            { return h }
func (h *noteHandler) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key != "stream" {
			fmt.Fprintf(&b, " %s", a)
		}
		return true
	})
	h.r.note("node %d: %s%s", h.node, rec.Message, b.String())
	return nil
}

// node is node i's current bus, or nil while it is down.
func (r *chaosRig) node(i int) *chaosNode {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nodes[i]
}

// live are the nodes up now.
func (r *chaosRig) live() []*chaosNode {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*chaosNode
	for _, n := range r.nodes {
		if n != nil {
			out = append(out, n)
		}
	}
	return out
}

// crash kills node i: the balancer stops sending it connections and cuts
// the ones it has, then its bus and bridge go.
func (r *chaosRig) crash(i int) {
	r.mu.Lock()
	n := r.nodes[i]
	r.nodes[i] = nil
	r.mu.Unlock()
	cut := r.lb.Down(i)
	n.stop()
	r.note("node %d crashed (%d sockets cut) at seq %d", i, cut, n.bus.Seq())
	// Its connection's handlers noted the loss before the crash: nothing after it is about this node.
}

// restart brings node i back: a new connection, bus and bridge on the
// same stream.
func (r *chaosRig) restart(i int) {
	start := time.Now()
	n := r.startNode(i)
	r.mu.Lock()
	r.nodes[i] = n
	r.mu.Unlock()
	r.lb.Up(i, n.srv.Listener.Addr().String())
	r.note("node %d restarted in %v, loaded to seq %d", i, time.Since(start).Round(time.Millisecond), n.bus.Seq())
}

// restartServer shuts NATS server s down, keeps it down for down, and
// starts it again on its port and store.
func (r *chaosRig) restartServer(s int, down time.Duration) {
	leader, meta := r.cluster.StreamLeader(chaosStream), r.metaLeader()
	r.cluster.Kill(s)
	r.note("NATS server n%d down (stream leader was n%d, meta leader n%d)", s, leader, meta)
	time.Sleep(down) // the outage itself: a length of time, not a wait for an event
	start := time.Now()
	r.cluster.Restart(s)
	r.note("NATS server n%d up again in %v", s, time.Since(start).Round(time.Millisecond))
}

// stall holds all traffic between node i and NATS for d, as a stalled
// network does (no disconnect), so that the node falls behind the stream
// while clients that saw later events on other nodes come to it.
func (r *chaosRig) stall(i int, d time.Duration) {
	n := r.node(i)
	if n == nil {
		r.t.Fatalf("stall: node %d is down", i)
	}
	r.links[i].Pause()
	r.note("node %d's link to NATS stalled at seq %d", i, n.bus.Seq())
	time.Sleep(d) // the stall itself: a length of time
	behind := n.bus.Seq()
	r.links[i].Resume()
	r.note("node %d's link to NATS resumed (node at seq %d, stream at %d)", i, behind, streamState(r.t, r.nc, chaosStream).State.LastSeq)
}

// metaLeader is the index of the JetStream meta leader, or -1.
func (r *chaosRig) metaLeader() int {
	for i, s := range r.cluster.Nodes {
		if srv := s.Running(); srv != nil && srv.JetStreamIsLeader() {
			return i
		}
	}
	return -1
}

// seed publishes size.seed events before the clients start, so that
// clients can subscribe with after.
func (r *chaosRig) seed() {
	n := r.nodes[0]
	for k := range r.size.seed {
		r.publish(n, 0, fmt.Sprintf("g0-seed-%d", k), r.topic(k))
	}
	for _, x := range r.nodes {
		waitSeqOf(r.t, x.bus, uint64(r.size.seed))
	}
}

func (r *chaosRig) topic(k int) string { return fmt.Sprintf("t%d", k%r.size.topics) }

// publish makes one Go Publish on n and records it.
func (r *chaosRig) publish(n *chaosNode, node int, id, topic string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	seq, err := n.bus.Publish(ctx, topic, chaosEvent{ID: id})
	p := goPublish{node: node, id: id, topic: topic, seq: seq, err: err, took: time.Since(start)}
	r.mu.Lock()
	r.goPub = append(r.goPub, p)
	r.mu.Unlock()
}

// goPublishers publish rate events a second in all, spread over the
// nodes and workers per node, until stop is closed; a node that is down
// publishes nothing. The returned func waits for them.
func (r *chaosRig) goPublishers(rate int, stop <-chan struct{}) (wait func()) {
	var wg sync.WaitGroup
	const workers = 4
	every := time.Duration(float64(time.Second) * float64(3*workers) / float64(max(rate, 1)))
	for node := range 3 {
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tick := time.NewTicker(every)
				defer tick.Stop()
				for k := 0; ; k++ {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					if n := r.node(node); n != nil {
						r.publish(n, node, fmt.Sprintf("g%d-%d", node, r.pubIDs.Add(1)), r.topic(node*7+w*3+k))
					}
				}
			}()
		}
	}
	return wg.Wait
}

// cutter cuts fraction of the open client sockets every second until stop
// is closed; the returned func waits for it.
func (r *chaosRig) cutter(fraction float64, stop <-chan struct{}) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				r.lb.CutFraction(fraction)
			}
		}
	}()
	return func() { <-done }
}

// quiesce waits until every live node has applied everything the stream
// holds, and returns the stream's last seq.
func (r *chaosRig) quiesce() uint64 {
	r.t.Helper()
	info := streamState(r.t, r.nc, chaosStream)
	for _, n := range r.live() {
		waitSeqOf(r.t, n.bus, info.State.LastSeq)
	}
	return info.State.LastSeq
}

func waitSeqOf(t testing.TB, b *bus.Bus[chaosEvent], seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := b.WaitSeq(ctx, seq); err != nil {
		t.Fatalf("WaitSeq(%d): %v (bus at %d, health %v)", seq, err, b.Seq(), b.Health())
	}
}

// epoch is the epoch every live node has; it fails the test when they
// disagree.
func (r *chaosRig) epoch() string {
	r.t.Helper()
	var ep string
	for _, n := range r.live() {
		if ep == "" {
			ep = n.bus.Epoch()
		} else if n.bus.Epoch() != ep {
			r.t.Fatalf("node %d has epoch %s, another %s", n.i, n.bus.Epoch(), ep)
		}
	}
	return ep
}

// recreateStream deletes the stream and makes it again (a new epoch), as
// an operator who resets it would, and waits until every node follows the
// new one.
func (r *chaosRig) recreateStream() string {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := r.js.DeleteStream(ctx, chaosStream); err != nil {
		r.t.Fatalf("delete the stream: %v", err)
	}
	b, err := New[chaosEvent](ctx, r.nc, r.streamOptions()...)
	if err != nil {
		r.t.Fatalf("recreate the stream: %v", err)
	}
	ep := b.Epoch()
	_ = b.Close()
	r.note("stream deleted and recreated: epoch %s", ep)
	for _, n := range r.live() {
		natstest.Eventually(r.t, waitLimit, fmt.Sprintf("node %d in the new epoch", n.i), func() bool { return n.bus.Epoch() == ep })
	}
	r.note("every node follows epoch %s", ep)
	return ep
}

// goOutcomes counts the Go publishes by outcome.
func (r *chaosRig) goOutcomes() (acked, uncertain, failed int, slowest time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.goPub {
		switch {
		case p.err == nil:
			acked++
		case errors.Is(p.err, bus.ErrUncertain):
			uncertain++
		default:
			failed++
		}
		slowest = max(slowest, p.took)
	}
	return
}
