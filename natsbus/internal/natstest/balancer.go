package natstest

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

// A Balancer is a TCP load balancer on a 127.0.0.1 port in front of
// several targets (bridge nodes), the way one runs in front of web servers:
// each new connection goes to the next live target. With a key function,
// it reads the first line the client sends (an HTTP request line) and sends
// every connection of one key to the live target after the one its
// previous connection went to, so that a client that reconnects always
// lands on another node while two or more are live. CutFraction and Down
// close connections abruptly, as a network failure or a crashed node would.
type Balancer struct {
	ln  net.Listener
	key func(line string) string
	wg  sync.WaitGroup // the accept loop, every routing and every pipe

	mu      sync.Mutex
	targets []string              // guarded by mu: "" while down
	next    int                   // guarded by mu: round robin without a key
	last    map[string]int        // guarded by mu: target of each key's last connection
	history map[string][]Route    // guarded by mu: every connection of each key
	conns   map[*pair]int         // guarded by mu: open connections and their target
	routing map[net.Conn]struct{} // guarded by mu: accepted, still reading the first line
	rng     *rand.Rand            // guarded by mu
	closed  bool                  // guarded by mu
	stats   BalancerStats         // guarded by mu
}

// A Route is one connection of a key: when it was accepted and the
// target it went to.
type Route struct {
	At     time.Time
	Target int
}

// BalancerStats counts what a Balancer did.
type BalancerStats struct {
	Accepted int   // connections accepted
	Refused  int   // closed at once: no live target, or no first line
	Cut      int   // open connections closed by Cut, CutFraction and Down
	Moved    int   // connections of a key that went to another target than its previous one
	Stayed   int   // connections of a key that went to the same target (only one was live)
	PerNode  []int // connections per target
}

// NewBalancer listens on 127.0.0.1:0 in front of targets (host:port); key,
// if not nil, names the client of a connection from its first line. The
// test's cleanup closes it.
func NewBalancer(t testing.TB, key func(line string) string, targets ...string) *Balancer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("natstest: balancer listen: %v", err)
	}
	b := &Balancer{
		ln: ln, key: key,
		targets: append([]string(nil), targets...),
		last:    make(map[string]int),
		history: make(map[string][]Route),
		conns:   make(map[*pair]int),
		routing: make(map[net.Conn]struct{}),
		rng:     rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1)),
		stats:   BalancerStats{PerNode: make([]int, len(targets))},
	}
	b.wg.Add(1)
	go b.accept()
	t.Cleanup(b.Close)
	return b
}

// Addr is the balancer's host:port.
func (b *Balancer) Addr() string { return b.ln.Addr().String() }

func (b *Balancer) accept() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			_ = c.Close()
			continue
		}
		b.stats.Accepted++
		b.routing[c] = struct{}{}
		b.wg.Add(1)
		b.mu.Unlock()
		go b.route(c)
	}
}

// firstLineLimit bounds how long and how much the balancer reads to find a
// connection's key.
const (
	firstLineLimit = 4 << 10
	firstLineWait  = 5 * time.Second
)

// route reads the first line when there is a key function, picks the
// target and pipes the connection there, the line first.
func (b *Balancer) route(c net.Conn) {
	defer b.wg.Done()
	var head []byte
	key := ""
	if b.key != nil {
		var ok bool
		if head, ok = readLine(c); !ok {
			b.refuse(c)
			return
		}
		key = b.key(string(bytes.TrimRight(head, "\r\n")))
	}
	i, addr := b.pick(key)
	if i < 0 {
		b.refuse(c)
		return
	}
	u, err := net.Dial("tcp", addr)
	if err == nil && len(head) > 0 {
		_, err = u.Write(head)
	}
	if err != nil {
		if u != nil {
			_ = u.Close()
		}
		b.refuse(c)
		return
	}
	b.start(&pair{client: c, target: u, done: make(chan struct{})}, i)
}

// readLine reads up to and including the first '\n', one byte at a time
// so that nothing after it is consumed, within firstLineWait.
func readLine(c net.Conn) ([]byte, bool) {
	_ = c.SetReadDeadline(time.Now().Add(firstLineWait))
	defer func() { _ = c.SetReadDeadline(time.Time{}) }()
	var line []byte
	var one [1]byte
	for len(line) < firstLineLimit {
		if _, err := io.ReadFull(c, one[:]); err != nil {
			return nil, false
		}
		line = append(line, one[0])
		if one[0] == '\n' {
			return line, true
		}
	}
	return nil, false
}

// pick chooses the target of a new connection: for a key, the first live
// target after its previous one; without, the next live one in turn. -1
// when none is live.
func (b *Balancer) pick(key string) (int, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(b.targets)
	start := b.next
	prev, seen := -1, false
	if key != "" {
		prev, seen = b.last[key]
		if seen {
			start = prev + 1
		}
	}
	for k := range n {
		i := (start + k) % n
		if b.targets[i] == "" {
			continue
		}
		if key == "" {
			b.next = i + 1
		} else {
			if !seen {
				b.next = i + 1 // first connections of new keys spread in turn
			}
			b.last[key] = i
			b.history[key] = append(b.history[key], Route{At: time.Now(), Target: i})
			switch {
			case seen && i == prev:
				b.stats.Stayed++
			case seen:
				b.stats.Moved++
			}
		}
		b.stats.PerNode[i]++
		return i, b.targets[i]
	}
	return -1, ""
}

func (b *Balancer) refuse(c net.Conn) {
	b.mu.Lock()
	delete(b.routing, c)
	b.stats.Refused++
	b.mu.Unlock()
	_ = c.Close()
}

// start registers an open connection to target i and starts its pipes,
// unless the balancer closed or the target went down meanwhile.
func (b *Balancer) start(pr *pair, i int) {
	b.mu.Lock()
	delete(b.routing, pr.client)
	if b.closed || b.targets[i] == "" {
		b.stats.Refused++
		b.mu.Unlock()
		pr.end()
		return
	}
	b.conns[pr] = i
	b.wg.Add(2)
	b.mu.Unlock()
	go b.pipe(pr, pr.client, pr.target)
	go b.pipe(pr, pr.target, pr.client)
}

// pipe copies src to dst until either side ends; then the pair ends.
func (b *Balancer) pipe(pr *pair, src, dst net.Conn) {
	defer b.wg.Done()
	defer b.forget(pr)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (b *Balancer) forget(pr *pair) {
	b.mu.Lock()
	delete(b.conns, pr)
	b.mu.Unlock()
	pr.end()
}

// Open is the number of open connections.
func (b *Balancer) Open() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.conns)
}

// OpenTo is the number of open connections to each target.
func (b *Balancer) OpenTo() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]int, len(b.targets))
	for _, i := range b.conns {
		out[i]++
	}
	return out
}

// CutFraction closes a random fraction p (0 to 1) of the open
// connections, at least one when any is open and p > 0, and returns how
// many it closed.
func (b *Balancer) CutFraction(p float64) int {
	b.mu.Lock()
	all := make([]*pair, 0, len(b.conns))
	for pr := range b.conns {
		all = append(all, pr)
	}
	n := int(p*float64(len(all)) + 0.999999)
	n = min(max(n, 0), len(all))
	if p <= 0 {
		n = 0
	}
	b.rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	cut := all[:n]
	for _, pr := range cut {
		delete(b.conns, pr)
	}
	b.stats.Cut += n
	b.mu.Unlock()
	for _, pr := range cut {
		pr.end()
	}
	return n
}

// Down stops routing to target i and cuts its open connections at once,
// as when its process dies; it returns how many it cut.
func (b *Balancer) Down(i int) int {
	b.mu.Lock()
	b.targets[i] = ""
	var cut []*pair
	for pr, to := range b.conns {
		if to == i {
			cut = append(cut, pr)
			delete(b.conns, pr)
		}
	}
	b.stats.Cut += len(cut)
	b.mu.Unlock()
	for _, pr := range cut {
		pr.end()
	}
	return len(cut)
}

// Up routes to target i again, now at addr.
func (b *Balancer) Up(i int, addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.targets[i] = addr
}

// Stats is a copy of the counts so far.
func (b *Balancer) Stats() BalancerStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.stats
	s.PerNode = append([]int(nil), b.stats.PerNode...)
	return s
}

// Routes is every connection of key so far, in order.
func (b *Balancer) Routes(key string) []Route {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Route(nil), b.history[key]...)
}

// Close stops accepting, closes every connection and waits for every
// goroutine of the balancer. Idempotent.
func (b *Balancer) Close() {
	b.mu.Lock()
	b.closed = true
	var open []*pair
	for pr := range b.conns {
		open = append(open, pr)
	}
	clear(b.conns)
	var pending []net.Conn
	for c := range b.routing {
		pending = append(pending, c)
	}
	b.mu.Unlock()
	_ = b.ln.Close()
	for _, pr := range open {
		pr.end()
	}
	for _, c := range pending {
		_ = c.Close() // a route reading its first line ends at once
	}
	b.wg.Wait()
}

// String describes the targets, for failure messages.
func (b *Balancer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return fmt.Sprintf("balancer %s -> %q", b.ln.Addr(), b.targets)
}
