// Command chat is a small chat with rooms on a whalesong bus: every room is
// a topic chat.<room>, the page subscribes with the last 50 messages and
// resumes by itself after a dropped connection. Prometheus metrics of the
// bus and the bridge are at /metrics.
//
// It runs in one of three ways:
//
//	go run ./examples/chat                  # one process, in-memory bus: http://localhost:8080
//	go run ./examples/chat -cluster 3       # 3 nodes on an embedded NATS server: :8080, :8081, :8082
//	go run ./examples/chat -nats nats://a:4222,nats://b:4222 -replicas 3
//	                                        # one node on a real NATS cluster (run one per machine)
//
// With -cluster the process is a supervisor (cluster.go): it runs an
// embedded nats-server with JetStream on 127.0.0.1 and starts each node as
// a child process of the same binary with -nats and -node, restarting a
// node that dies. With -nats (node.go) the chat's bus is a natsbus bus on
// one JetStream stream, so every node serves the same rooms with the same
// seqs and epoch: a page that reconnects to a restarted node, or to
// another one, gets exactly what it missed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/whalesong/bus"
)

// defaultHistory is how many messages each room keeps: the page shows the
// last 50 on join, and the rest lets a page that was offline for a while
// resume without a gap.
const defaultHistory = 500

// shutdownWait bounds the HTTP shutdown. WebSockets are not waited for:
// they get going-away at once.
const shutdownWait = 5 * time.Second

// config is the command line.
type config struct {
	addr    string
	history int

	// -cluster: the supervisor.
	cluster      int
	store        string
	restartDelay time.Duration

	// -nats: one node on a stream.
	nats   natsConfig
	nodeID int // -node: started by a -cluster supervisor
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command: it parses args, runs the chat in the mode they ask
// for until SIGINT or SIGTERM, and returns the exit code. stdout gets what
// a user (or, from a node, its supervisor) reads; the logs go to stderr.
func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2 // parseFlags said why
	}
	log.SetOutput(stderr)
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if cfg.nodeID > 0 {
		// A node of -cluster leaves Ctrl-C to its supervisor (the terminal
		// sends it to the whole process group), which stops the nodes
		// first, by closing their stdin, and then the NATS server. SIGTERM
		// still stops it.
		signal.Ignore(os.Interrupt)
		sigs = sigs[1:]
	}
	ctx, stop := signal.NotifyContext(context.Background(), sigs...)
	defer stop()
	switch {
	case cfg.cluster > 0:
		err = runCluster(ctx, cfg, stdout, stderr)
	case cfg.nodeID > 0:
		err = runNode(stopAtEOF(ctx, os.Stdin), cfg, stdout)
	case cfg.nats.urls != "":
		err = runNode(ctx, cfg, stdout)
	default:
		err = runLocal(ctx, cfg)
	}
	if err != nil {
		log.Print(err)
		return 1
	}
	return 0
}

// parseFlags reads the command line; on an error it says why on stderr.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.addr, "addr", "localhost:8080", "address to listen on; with -cluster, node i listens on its port + i-1 (port 0: any free port, kept across restarts)")
	fs.IntVar(&cfg.history, "history", defaultHistory, "messages kept per room for replay")
	fs.IntVar(&cfg.cluster, "cluster", 0, fmt.Sprintf("run `n` nodes (1 to %d) on an embedded NATS server, restarting a node that dies", maxNodes))
	fs.StringVar(&cfg.store, "store", "", "with -cluster: the JetStream store `dir`, kept after exit (default: a new temporary directory, removed at exit)")
	fs.DurationVar(&cfg.restartDelay, "restart-delay", 2*time.Second, "with -cluster: how long a dead node stays down before it is restarted")
	fs.StringVar(&cfg.nats.urls, "nats", "", "run one node on the NATS server(s) at `urls` (comma-separated; nats://user:password@host:4222, tls://host:4222)")
	fs.StringVar(&cfg.nats.stream, "stream", defaultStream, "the JetStream stream that holds the chat, with -nats or -cluster (every node of one chat uses the same)")
	fs.IntVar(&cfg.nats.replicas, "replicas", 1, "with -nats: the stream's replicas (3 on a cluster of 3 servers or more survives losing one)")
	fs.StringVar(&cfg.nats.creds, "creds", "", "with -nats: a NATS credentials `file` (user JWT and nkey seed)")
	fs.IntVar(&cfg.nodeID, "node", 0, "internal: -cluster starts its nodes with -node `i` (they print a ready line and stop when stdin closes)")
	if err := fs.Parse(args); err != nil {
		return cfg, err // fs said why, with the usage
	}
	cfg.nats.history = cfg.history
	if err := cfg.check(fs.NArg()); err != nil {
		fmt.Fprintln(stderr, "chat:", err)
		return cfg, err
	}
	return cfg, nil
}

// check refuses flags that do not go together; extra counts the arguments
// left after the flags.
func (c config) check(extra int) error {
	switch {
	case extra > 0:
		return errors.New("unexpected arguments after the flags")
	case c.cluster < 0 || c.cluster > maxNodes:
		return fmt.Errorf("-cluster %d: want 1 to %d nodes", c.cluster, maxNodes)
	case c.cluster > 0 && c.nats.urls != "":
		return errors.New("-cluster runs its own NATS server: leave out -nats (or run each node with -nats and no -cluster)")
	case c.cluster > 0 && (c.nats.replicas != 1 || c.nats.creds != ""):
		return errors.New("-replicas and -creds are for -nats: -cluster's one embedded server has neither")
	case c.nodeID > 0 && c.nats.urls == "":
		return errors.New("-node is set by -cluster, with -nats")
	case c.store != "" && c.cluster == 0:
		return errors.New("-store is for -cluster's embedded NATS server")
	case c.history < 1:
		return fmt.Errorf("-history %d: want at least 1", c.history)
	case c.restartDelay < 0:
		return fmt.Errorf("-restart-delay %v: want 0 or more", c.restartDelay)
	}
	return nil
}

// runLocal is the chat on one in-memory bus, as before there was NATS.
func runLocal(ctx context.Context, cfg config) error {
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	log.Printf("chat: serving http://%s", ln.Addr())
	return serve(ctx, ln, cfg.history)
}

// serve runs the chat on ln on a new in-memory bus until ctx ends.
func serve(ctx context.Context, ln net.Listener, history int) error {
	b := bus.New[Message](bus.WithHistory(history))
	defer b.Close()
	return serveBus(ctx, ln, b)
}

// serveBus runs the chat on ln and b until ctx ends, then shuts down: HTTP
// first (within shutdownWait), then every WebSocket (going-away, so pages
// reconnect elsewhere). It leaves b open: the caller closes it after.
func serveBus(ctx context.Context, ln net.Listener, b *bus.Bus[Message]) error {
	srv := newServer(b)
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}

	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()

	var err error
	select {
	case err = <-served:
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), shutdownWait)
		defer cancel()
		err = hs.Shutdown(shutdown)
		if serr := <-served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
	}
	return errors.Join(err, srv.Close())
}
