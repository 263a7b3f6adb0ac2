package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/whalesong/bus"
	"github.com/whalesong/bus/natsbus"
)

// defaultStream is the JetStream stream of the chat: room r is its subject
// CHAT.chat.r.
const defaultStream = "CHAT"

// openWait bounds connecting to NATS and loading the stream at start.
const openWait = 30 * time.Second

// natsConfig is how a node reaches NATS and which stream it serves. Every
// node of one chat must have the same stream, history and replicas (a
// stream that exists with other settings is refused, not changed).
type natsConfig struct {
	urls     string // comma-separated server URLs
	stream   string
	replicas int
	history  int    // messages kept per room
	creds    string // a credentials file, or ""
}

// readyFormat is the line a node started by -cluster prints on its stdout
// once it serves: its listening address, the bus's epoch and seq. It is the
// only thing such a node prints on stdout (its logs go to stderr); its
// supervisor reads it, and stops the node by closing the node's stdin.
const readyFormat = "ready %s epoch %s seq %d"

// runNode serves the chat on a natsbus bus until ctx ends. A node of
// -cluster (cfg.nodeID > 0) prints readyFormat on out; a node run by hand
// logs where it serves.
func runNode(ctx context.Context, cfg config, out io.Writer) error {
	opening, cancel := context.WithTimeout(ctx, openWait)
	defer cancel()
	b, closeBus, err := openNATSBus(opening, cfg.nats, nodeName(cfg), slog.Default())
	if err != nil {
		return err
	}
	defer closeBus()
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	if cfg.nodeID > 0 {
		fmt.Fprintf(out, readyFormat+"\n", ln.Addr(), b.Epoch(), b.Seq())
	} else {
		log.Printf("chat: serving http://%s on NATS stream %s (epoch %s, seq %d)", ln.Addr(), cfg.nats.stream, b.Epoch(), b.Seq())
	}
	return serveBus(ctx, ln, b)
}

// nodeName names the node's NATS connection (the server's monitoring and
// logs show it).
func nodeName(cfg config) string {
	if cfg.nodeID > 0 {
		return fmt.Sprintf("whalesong-chat node %d", cfg.nodeID)
	}
	return "whalesong-chat " + cfg.addr
}

// openNATSBus connects to NATS with the options natsbus needs and opens the
// chat's bus on the stream, with the stream's history per room. ctx bounds
// the opening only. closeBus closes the bus, then the connection.
func openNATSBus(ctx context.Context, cfg natsConfig, name string, logger *slog.Logger) (b *bus.Bus[Message], closeBus func(), err error) {
	opts := append(natsbus.ConnectOptions(),
		nats.Name(name),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Warn("chat: disconnected from NATS; reconnecting", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			logger.Info("chat: reconnected to NATS", "url", nc.ConnectedUrlRedacted())
		}),
	)
	if cfg.creds != "" {
		opts = append(opts, nats.UserCredentials(cfg.creds))
	}
	nc, err := nats.Connect(cfg.urls, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("chat: connect to NATS at %s: %w", redactURLs(cfg.urls), err)
	}
	b, err = natsbus.New[Message](ctx, nc,
		natsbus.WithStream(cfg.stream),
		natsbus.WithReplicas(cfg.replicas),
		natsbus.WithHistory(cfg.history),
		natsbus.WithLogger(logger))
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("chat: open stream %s at %s: %w", cfg.stream, redactURLs(cfg.urls), err)
	}
	return b, func() {
		b.Close()
		nc.Close()
	}, nil
}

// redactURLs is urls (comma-separated) without their passwords, for logs.
func redactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		u, err := url.Parse(p)
		if err != nil || u.User == nil {
			parts[i] = p
			continue
		}
		if _, ok := u.User.Password(); !ok {
			u.User = url.User("REDACTED") // a token
		}
		p = u.Redacted()
		parts[i] = p
	}
	return strings.Join(parts, ",")
}

// stopAtEOF is ctx, also cancelled when r ends: a node of -cluster reads
// its stdin to learn that its supervisor wants it to stop (the supervisor
// closes the pipe) or has died (the pipe closes with it). The goroutine
// that reads lives as long as the process.
func stopAtEOF(ctx context.Context, r io.Reader) context.Context {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		_, _ = io.Copy(io.Discard, r)
		cancel()
	}()
	return ctx
}
