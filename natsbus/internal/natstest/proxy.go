package natstest

import (
	"fmt"
	"net"
	"sync"
	"testing"
)

// A Proxy forwards TCP connections from a 127.0.0.1 port to a target
// address. Pause holds every byte in both directions (the connections stay
// open, as across a stalled network), Cut closes the open connections, and
// Down refuses new ones until Up.
type Proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup // the accept loop and every pipe

	mu     sync.Mutex
	pairs  map[*pair]struct{} // guarded by mu: the open connections
	open   chan struct{}      // guarded by mu: closed while not paused
	down   bool               // guarded by mu
	closed bool               // guarded by mu
}

// pair is one proxied connection: the client's end and the target's.
type pair struct {
	client, target net.Conn
	done           chan struct{} // closed by end
	once           sync.Once
}

func (c *pair) end() {
	c.once.Do(func() {
		close(c.done)
		_ = c.client.Close()
		_ = c.target.Close()
	})
}

// NewProxy listens on 127.0.0.1:0 and forwards to target; the test's
// cleanup closes it.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("natstest: proxy listen: %v", err)
	}
	open := make(chan struct{})
	close(open)
	p := &Proxy{ln: ln, target: target, pairs: make(map[*pair]struct{}), open: open}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// URL is the proxy's address as a NATS URL.
func (p *Proxy) URL() string { return fmt.Sprintf("nats://%s", p.ln.Addr()) }

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.serve(c)
	}
}

func (p *Proxy) serve(c net.Conn) {
	if p.refusing() {
		_ = c.Close()
		return
	}
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	pr := &pair{client: c, target: u, done: make(chan struct{})}
	p.mu.Lock()
	if p.down || p.closed {
		p.mu.Unlock()
		pr.end()
		return
	}
	p.pairs[pr] = struct{}{}
	p.wg.Add(2)
	p.mu.Unlock()
	go p.pipe(pr, c, u)
	go p.pipe(pr, u, c)
}

func (p *Proxy) refusing() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.down || p.closed
}

// pipe copies from src to dst, holding every chunk while paused; when
// either side ends, the pair ends.
func (p *Proxy) pipe(pr *pair, src, dst net.Conn) {
	defer p.wg.Done()
	defer p.forget(pr)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.waitOpen(pr) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// waitOpen blocks while the proxy is paused; false once the pair ended.
func (p *Proxy) waitOpen(pr *pair) bool {
	p.mu.Lock()
	open := p.open
	p.mu.Unlock()
	select {
	case <-open:
		return true
	case <-pr.done:
		return false
	}
}

func (p *Proxy) forget(pr *pair) {
	p.mu.Lock()
	delete(p.pairs, pr)
	p.mu.Unlock()
	pr.end()
}

// Pause holds all traffic, leaving the connections open.
func (p *Proxy) Pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.open:
		p.open = make(chan struct{})
	default:
	}
}

// Resume lets the held traffic through.
func (p *Proxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.open:
	default:
		close(p.open)
	}
}

// Cut closes every open connection; new ones are still accepted.
func (p *Proxy) Cut() {
	p.mu.Lock()
	pairs := make([]*pair, 0, len(p.pairs))
	for pr := range p.pairs {
		pairs = append(pairs, pr)
	}
	p.mu.Unlock()
	for _, pr := range pairs {
		pr.end()
	}
}

// Down cuts every connection and refuses new ones until Up.
func (p *Proxy) Down() {
	p.mu.Lock()
	p.down = true
	p.mu.Unlock()
	p.Cut()
}

// Up accepts connections again.
func (p *Proxy) Up() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// Close stops the proxy, closes every connection and waits for its
// goroutines. Idempotent.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	_ = p.ln.Close()
	p.Cut()
	p.wg.Wait()
}
