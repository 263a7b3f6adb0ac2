package main

import (
	"fmt"
	"os"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// natsReadyWait bounds how long the embedded server may take to accept
// connections (JetStream recovers its store first).
const natsReadyWait = 30 * time.Second

// startNATS runs an embedded nats-server with JetStream for -cluster: on
// 127.0.0.1 only, on a free port, keeping its store in storeDir (a server
// started again on the same directory has the same stream, so the chat
// keeps its epoch and history). It installs no signal handlers and logs
// nothing: the supervisor owns both. stopNATS stops it.
func startNATS(storeDir string) (*natsserver.Server, error) {
	srv, err := natsserver.NewServer(&natsserver.Options{
		ServerName:         "whalesong-chat",
		Host:               "127.0.0.1",
		Port:               natsserver.RANDOM_PORT,
		JetStream:          true,
		StoreDir:           storeDir,
		JetStreamMaxStore:  1 << 30, // a demo: 1 GiB of disk at most
		JetStreamMaxMemory: 256 << 20,
		NoSigs:             true,
		NoLog:              true,
	})
	if err != nil {
		return nil, fmt.Errorf("chat: embedded NATS server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(natsReadyWait) {
		stopNATS(srv)
		return nil, fmt.Errorf("chat: embedded NATS server not ready within %v", natsReadyWait)
	}
	return srv, nil
}

// stopNATS shuts the server down and waits until it is gone.
func stopNATS(srv *natsserver.Server) {
	srv.Shutdown()
	srv.WaitForShutdown()
}

// openStore is the JetStream store directory: dir, created if needed and
// kept, or a new temporary directory that remove deletes.
func openStore(dir string) (store string, remove func() error, err error) {
	if dir == "" {
		dir, err = os.MkdirTemp("", "whalesong-chat-")
		if err != nil {
			return "", nil, fmt.Errorf("chat: JetStream store: %w", err)
		}
		return dir, func() error { return os.RemoveAll(dir) }, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, fmt.Errorf("chat: JetStream store: %w", err)
	}
	return dir, func() error { return nil }, nil
}
