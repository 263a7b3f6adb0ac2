package natstest

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// A Cluster is n servers in this process, routed to each other, with
// JetStream clustered: streams may have up to n replicas.
type Cluster struct {
	t     testing.TB
	Nodes []*Server
}

// StartCluster runs n servers on 127.0.0.1. Their client and route ports
// come from listeners on 127.0.0.1:0 that are all held until every port is
// drawn, so no two collide; the test's cleanup shuts them down. It returns
// once JetStream has a meta leader that knows every server.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	ports := freePorts(t, 2*n)
	routes := make([]string, n)
	for i := range n {
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", ports[n+i])
	}
	c := &Cluster{t: t}
	for i := range n {
		o := baseOptions(t, fmt.Sprintf("n%d", i))
		o.Port = ports[i]
		o.Cluster = server.ClusterOpts{Name: "whalesong", Host: "127.0.0.1", Port: ports[n+i]}
		o.Routes = server.RoutesFromStr(strings.Join(routes, ","))
		c.Nodes = append(c.Nodes, &Server{t: t, opts: o})
	}
	for _, s := range c.Nodes {
		s.startAsync()
	}
	for _, s := range c.Nodes {
		s.waitReady()
		t.Cleanup(s.Shutdown)
	}
	c.WaitMeta()
	return c
}

func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var held []net.Listener
	defer func() {
		for _, l := range held {
			_ = l.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("natstest: draw a port: %v", err)
		}
		held = append(held, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// startAsync starts the server without waiting: cluster members wait for
// their routes, so they must all start before any is ready.
func (s *Server) startAsync() {
	o := s.opts
	srv, err := server.NewServer(&o)
	if err != nil {
		s.t.Fatalf("natstest: new server: %v", err)
	}
	go srv.Start()
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
}

func (s *Server) waitReady() {
	if srv := s.Running(); srv == nil || !srv.ReadyForConnections(readyTimeout) {
		s.t.Fatalf("natstest: server %s not ready within %v", s.opts.ServerName, readyTimeout)
	}
}

// URLs lists every node's client URL, for nats.Connect.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		urls[i] = s.URL()
	}
	return strings.Join(urls, ",")
}

// Kill shuts node i down and waits until it is gone.
func (c *Cluster) Kill(i int) { c.Nodes[i].Shutdown() }

// Restart brings node i back on its port and store.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.Nodes[i].Restart()
}

// StreamLeader is the index of the node that leads stream (in the default
// account), or -1 while there is none.
func (c *Cluster) StreamLeader(stream string) int {
	for i, s := range c.Nodes {
		if srv := s.Running(); srv != nil && srv.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	return -1
}

// WaitMeta waits until the running nodes agree on a JetStream meta leader
// that knows every node.
func (c *Cluster) WaitMeta() {
	c.t.Helper()
	Eventually(c.t, 30*time.Second, "a JetStream meta leader", func() bool {
		leaders := 0
		for _, s := range c.Nodes {
			srv := s.Running()
			if srv == nil {
				continue
			}
			if !srv.JetStreamIsCurrent() {
				return false
			}
			if srv.JetStreamIsLeader() {
				leaders++
				if len(srv.JetStreamClusterPeers()) < len(c.Nodes) {
					return false
				}
			}
		}
		return leaders == 1
	})
}

// WaitStreamLeader waits until stream has a leader and returns its index.
func (c *Cluster) WaitStreamLeader(stream string) int {
	c.t.Helper()
	var leader int
	Eventually(c.t, 30*time.Second, "a leader of stream "+stream, func() bool {
		leader = c.StreamLeader(stream)
		return leader >= 0
	})
	return leader
}

// Eventually polls cond every 20ms until it holds, failing the test after
// limit. It is for state that offers no signal (a server's cluster role).
func Eventually(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("natstest: no %s within %v", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
