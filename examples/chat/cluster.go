package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
)

// maxNodes bounds -cluster: ports 8080 to 8095 by default.
const maxNodes = 16

// The supervisor's lines on stdout. They are for people, and stable enough
// for the tests to read (cluster_test.go).
const (
	natsFormat    = "chat: NATS server %s with JetStream, store %s"
	upFormat      = "chat: node %d up at %s pid %d epoch %s seq %d"
	downFormat    = "chat: node %d (pid %d) is gone (%v); restarting it in %v"
	failedFormat  = "chat: node %d (pid %d) exited before it served (%v); stopping"
	stoppedFormat = "chat: node %d (pid %d) stopped"
	stoppingLine  = "chat: stopping the nodes, then the NATS server"
	doneFormat    = "chat: stopped %d nodes and the NATS server"
)

// runCluster is -cluster: an embedded NATS server with JetStream on
// 127.0.0.1 and cfg.cluster chat nodes, each a child process of this binary
// on one stream, listening on consecutive ports from cfg.addr's. It
// restarts a node that dies after cfg.restartDelay, at the same address, and
// when ctx ends it stops the nodes, then the server, and removes the store
// unless it is cfg.store. It says what it does on out; the nodes' logs go
// to logs.
func runCluster(ctx context.Context, cfg config, out, logs io.Writer) error {
	host, port, err := clusterPorts(cfg.addr, cfg.cluster)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("chat: find this binary to start the nodes: %w", err)
	}
	store, removeStore, err := openStore(cfg.store)
	if err != nil {
		return err
	}
	srv, err := startNATS(store)
	if err != nil {
		return errors.Join(err, removeStore())
	}
	natsURL := srv.ClientURL()
	kept := " (removed at exit)"
	if cfg.store != "" {
		kept = " (kept: run again with -store " + store + " to go on with the same chat)"
	}
	fmt.Fprintf(out, natsFormat+"%s\n", natsURL, store, kept)

	procs := make([]*nodeProc, cfg.cluster)
	nodeLogs := log.New(logs, "", 0)
	for i := range procs {
		addr := net.JoinHostPort(host, "0")
		if port > 0 {
			addr = net.JoinHostPort(host, strconv.Itoa(port+i))
		}
		procs[i] = &nodeProc{
			id:  i + 1,
			exe: exe,
			args: []string{"-node", strconv.Itoa(i + 1), "-nats", natsURL, "-stream", cfg.nats.stream,
				"-history", strconv.Itoa(cfg.history)},
			addr:  addr,
			delay: cfg.restartDelay,
			logs:  nodeLogs,
		}
	}
	rep := &reporter{out: out, cfg: cfg, host: host, natsURL: natsURL, epochs: map[int]string{}}
	err = supervise(ctx, procs, rep)
	stopNATS(srv)
	fmt.Fprintf(out, doneFormat+"\n", cfg.cluster)
	return errors.Join(err, removeStore())
}

// clusterPorts splits addr into the host the nodes listen on and the first
// node's port (0: any free port for each).
func clusterPorts(addr string, n int) (host string, port int, err error) {
	host, p, err := net.SplitHostPort(addr)
	if err == nil {
		port, err = strconv.Atoi(p)
	}
	switch {
	case err != nil:
		return "", 0, fmt.Errorf("chat: -addr %q: %w", addr, err)
	case port < 0 || port+n-1 > 65535:
		return "", 0, fmt.Errorf("chat: -addr %q: no room for %d ports from %d", addr, n, port)
	}
	return host, port, nil
}

// supervise runs every node until ctx ends or one fails to start (which
// stops them all), reporting what happens; it returns once every node is
// gone.
func supervise(ctx context.Context, procs []*nodeProc, rep *reporter) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := make(chan nodeEvent)
	errs := make([]error, len(procs))
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Go(func() {
			if errs[i] = p.run(ctx, events); errs[i] != nil {
				cancel()
			}
		})
	}
	go func() { // ends the loop below once every node is gone
		wg.Wait()
		close(events)
	}()
	stopping := ctx.Done()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return errors.Join(errs...)
			}
			rep.report(ev)
		case <-stopping:
			fmt.Fprintln(rep.out, stoppingLine)
			stopping = nil
		}
	}
}

// reporter writes the supervisor's lines; one goroutine calls it.
type reporter struct {
	out     io.Writer
	cfg     config
	host    string // for the URLs it prints
	natsURL string
	epochs  map[int]string // the epoch each node last reported
	greeted bool
}

func (r *reporter) report(ev nodeEvent) {
	switch ev.kind {
	case nodeUp:
		_, port, _ := net.SplitHostPort(ev.ready.addr)
		fmt.Fprintf(r.out, upFormat, ev.node, "http://"+net.JoinHostPort(r.displayHost(), port), ev.pid, ev.ready.epoch, ev.ready.seq)
		if ev.restarts > 0 {
			fmt.Fprint(r.out, r.sameEpoch(ev))
		}
		fmt.Fprintln(r.out)
		r.epochs[ev.node] = ev.ready.epoch
		if !r.greeted && len(r.epochs) == r.cfg.cluster {
			r.greeted = true
			r.greet()
		}
	case nodeDown:
		fmt.Fprintf(r.out, downFormat+"\n", ev.node, ev.pid, ev.err, ev.delay)
	case nodeFailed:
		fmt.Fprintf(r.out, failedFormat+"\n", ev.node, ev.pid, ev.err)
	case nodeStopped:
		fmt.Fprintf(r.out, stoppedFormat, ev.node, ev.pid)
		if killed(ev.err) || errors.Is(ev.err, exec.ErrWaitDelay) {
			fmt.Fprintf(r.out, " (killed: it did not stop within %v)", nodeStopWait)
		}
		fmt.Fprintln(r.out)
	}
}

// sameEpoch says whether a restarted node has the epoch it had: it must,
// the epoch is the stream's.
func (r *reporter) sameEpoch(ev nodeEvent) string {
	if ev.ready.epoch == r.epochs[ev.node] {
		return fmt.Sprintf(" (restart %d, same epoch: its pages resume with nothing lost)", ev.restarts)
	}
	return fmt.Sprintf(" (restart %d, NEW EPOCH: the stream was recreated)", ev.restarts)
}

// greet says what to try, once every node is up.
func (r *reporter) greet() {
	fmt.Fprintf(r.out, "chat: %d nodes serve stream %s: open two of them in two windows and chat\n", r.cfg.cluster, r.cfg.nats.stream)
	fmt.Fprintf(r.out, "chat: kill -9 a node's pid: it is back in %v, and its pages resume with nothing lost and no gap\n", r.cfg.restartDelay)
	extra := ""
	if r.cfg.history != defaultHistory {
		extra = " -history " + strconv.Itoa(r.cfg.history)
	}
	fmt.Fprintf(r.out, "chat: one more node, by hand: go run ./examples/chat -nats %s -stream %s%s -addr localhost:8090\n",
		r.natsURL, r.cfg.nats.stream, extra)
	fmt.Fprintln(r.out, "chat: Ctrl-C stops everything")
}

// displayHost is the host of the URLs printed: the one -addr names, or
// localhost when it names every interface.
func (r *reporter) displayHost() string {
	if ip := net.ParseIP(r.host); r.host == "" || (ip != nil && ip.IsUnspecified()) {
		return "localhost"
	}
	return r.host
}
