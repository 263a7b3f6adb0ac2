// Package natstest runs embedded nats-server instances for natsbus's tests:
// one server with JetStream on a temporary store and a random 127.0.0.1
// port, restartable on the same store and port; a cluster of servers in
// this process; a TCP proxy that can be paused, cut and taken down; and a
// TCP load balancer in front of several targets that sends each client's
// next connection to another one and cuts connections at random.
// Nothing here listens on anything but 127.0.0.1.
package natstest

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// readyTimeout bounds how long a server may take to accept connections.
const readyTimeout = 10 * time.Second

// A Server is one embedded nats-server with JetStream. Restart brings it
// back on the same port and store directory, as after a deploy.
type Server struct {
	t    testing.TB
	opts server.Options // Port is fixed after the first start

	mu  sync.Mutex
	srv *server.Server // guarded by mu; nil while down
}

// Start runs a server with JetStream on a fresh temporary store and a
// random 127.0.0.1 port; the test's cleanup shuts it down.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, func(*server.Options) {})
}

// StartWith is Start with the options changed by edit first (users and
// their permissions, say).
func StartWith(t testing.TB, edit func(*server.Options)) *Server {
	t.Helper()
	s := &Server{t: t, opts: baseOptions(t, "n0")}
	edit(&s.opts)
	s.Restart()
	s.opts.Port = s.Addr().Port
	t.Cleanup(s.Shutdown)
	return s
}

// Reload changes the options with edit and applies them to the running
// server, as a configuration reload does (a restart keeps them). Call it
// from the test's goroutine, like Restart.
func (s *Server) Reload(edit func(*server.Options)) {
	s.t.Helper()
	edit(&s.opts)
	o := s.opts
	srv := s.Running()
	if srv == nil {
		s.t.Fatalf("natstest: reload server %s: it is down", o.ServerName)
	}
	if err := srv.ReloadOptions(&o); err != nil {
		s.t.Fatalf("natstest: reload server %s: %v", o.ServerName, err)
	}
}

func baseOptions(t testing.TB, name string) server.Options {
	return server.Options{
		ServerName: name,
		Host:       "127.0.0.1",
		Port:       -1,
		JetStream:  true,
		StoreDir:   t.TempDir(),
		NoSigs:     true,
		NoLog:      true,
		MaxPayload: 1 << 20,
	}
}

// Restart starts the server if it is down (on its port and store), after
// shutting it down if it is up.
func (s *Server) Restart() {
	s.t.Helper()
	s.Shutdown()
	o := s.opts
	srv, err := server.NewServer(&o)
	if err != nil {
		s.t.Fatalf("natstest: new server: %v", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(readyTimeout) {
		srv.Shutdown()
		s.t.Fatalf("natstest: server %s not ready within %v", o.ServerName, readyTimeout)
	}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
}

// Shutdown stops the server and waits until it is gone. Idempotent.
func (s *Server) Shutdown() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// Running is the server while it is up, else nil.
func (s *Server) Running() *server.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv
}

// URL is the server's client URL; it stays the same across restarts.
func (s *Server) URL() string {
	return fmt.Sprintf("nats://127.0.0.1:%d", s.opts.Port)
}

// Addr is the client address.
func (s *Server) Addr() *net.TCPAddr {
	if s.opts.Port > 0 {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: s.opts.Port}
	}
	return s.Running().Addr().(*net.TCPAddr)
}

// StoreDir is where the server keeps its JetStream data.
func (s *Server) StoreDir() string { return s.opts.StoreDir }

// Name is the server's name.
func (s *Server) Name() string { return s.opts.ServerName }
