package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"os/exec"
	"time"
)

// nodeStopWait is how long a node may take to stop after its stdin closed
// before it is killed.
const nodeStopWait = 10 * time.Second

// maxLine bounds one line a node writes; a longer one is passed on in
// pieces.
const maxLine = 64 << 10

// A nodeProc is one node of -cluster: this binary run as a child process
// with -nats, -node and -addr, and started again when it dies.
//
// The protocol between a node and its supervisor: the node prints one line
// on stdout, readyFormat, once it serves, and nothing else there; it logs
// on stderr, which the supervisor passes on prefixed with "node i | ". The
// supervisor stops it by closing its stdin (the node also stops when the
// supervisor dies, since the pipe then closes) and kills it if it has not
// exited within nodeStopWait. A node ignores SIGINT, so that Ctrl-C in a
// terminal reaches the supervisor alone.
type nodeProc struct {
	id    int
	exe   string   // this binary
	args  []string // the node's flags but -addr
	addr  string   // -addr; once the node has served, the address it reported
	delay time.Duration
	logs  *log.Logger // the node's stderr, line by line
}

// A nodeEvent is what the supervisor reports about a node.
type nodeEvent struct {
	node     int
	kind     eventKind
	pid      int
	restarts int           // how many times the node was started again before this life
	ready    readyLine     // nodeUp
	err      error         // nodeDown, nodeFailed: how the process ended
	delay    time.Duration // nodeDown: when it starts again
}

type eventKind int

const (
	nodeUp      eventKind = iota // it serves
	nodeDown                     // it died or exited; it will be started again
	nodeFailed                   // it exited by itself before it served: the cluster stops
	nodeStopped                  // it stopped because the supervisor is stopping
)

// readyLine is a node's readyFormat line.
type readyLine struct {
	addr  string
	epoch string
	seq   uint64
}

// run starts the node and starts it again after delay each time it dies,
// until ctx ends; then it stops the node and returns nil. A node that exits
// by itself (not killed by a signal) before it served is an error: it would
// only fail again.
func (p *nodeProc) run(ctx context.Context, events chan<- nodeEvent) error {
	for restarts := 0; ; restarts++ {
		c, err := p.start(ctx)
		if ctx.Err() != nil && err != nil {
			return nil // stopping, nothing started
		}
		if err != nil {
			return fmt.Errorf("chat: start node %d: %w", p.id, err)
		}
		ev := nodeEvent{node: p.id, pid: c.cmd.Process.Pid, restarts: restarts}
		ready, up := c.waitReady()
		if up {
			p.addr = ready.addr // a restart listens where the pages are
			ev.kind, ev.ready = nodeUp, ready
			events <- ev
		}
		<-c.done
		ev.err = c.err
		switch {
		case ctx.Err() != nil:
			ev.kind = nodeStopped
			events <- ev
			return nil
		case !up && !killed(c.err):
			ev.kind = nodeFailed
			events <- ev
			return fmt.Errorf("chat: node %d exited before it served (%v); its log is above", p.id, c.err)
		}
		ev.kind, ev.delay = nodeDown, p.delay
		events <- ev
		select {
		case <-time.After(p.delay):
		case <-ctx.Done():
			return nil
		}
	}
}

// killed says whether the process ended on a signal rather than by itself.
func killed(err error) bool {
	var exit *exec.ExitError
	return errors.As(err, &exit) && exit.ExitCode() == -1
}

// nodeChild is one life of a node: a running child process.
type nodeChild struct {
	cmd   *exec.Cmd
	ready chan readyLine // the node's ready line (buffered: the first one)
	done  chan struct{}  // closed once the process is gone and its output read
	err   error          // how it ended; set before done closes
}

// start runs the node. When ctx ends, its stdin is closed, and it is killed
// if it has not exited nodeStopWait later. A goroutine waits for the
// process; done says when it is gone.
func (p *nodeProc) start(ctx context.Context) (*nodeChild, error) {
	cmd := exec.CommandContext(ctx, p.exe, append(p.args, "-addr", p.addr)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	cmd.Cancel = stdin.Close
	cmd.WaitDelay = nodeStopWait
	c := &nodeChild{cmd: cmd, ready: make(chan readyLine, 1), done: make(chan struct{})}
	stdout := &lineWriter{line: c.readLine(p)}
	stderr := &lineWriter{line: func(line string) { p.logs.Printf("node %d | %s", p.id, line) }}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		defer close(c.done)
		c.err = cmd.Wait() // returns once the process exited and its output is copied
		stdout.flush()
		stderr.flush()
	}()
	return c, nil
}

// readLine takes the ready line from the node's stdout; anything else
// there is passed on as a log line.
func (c *nodeChild) readLine(p *nodeProc) func(string) {
	return func(line string) {
		var r readyLine
		if _, err := fmt.Sscanf(line, readyFormat, &r.addr, &r.epoch, &r.seq); err != nil {
			p.logs.Printf("node %d | (stdout) %s", p.id, line)
			return
		}
		select {
		case c.ready <- r:
		default: // only the first one counts
		}
	}
}

// waitReady returns the node's ready line, or false once the process is
// gone without one.
func (c *nodeChild) waitReady() (readyLine, bool) {
	select {
	case r := <-c.ready:
		return r, true
	case <-c.done:
		select { // the line is read before done closes
		case r := <-c.ready:
			return r, true
		default:
			return readyLine{}, false
		}
	}
}

// lineWriter calls line for each line written to it (without the newline).
// exec copies a child's output to it from one goroutine.
type lineWriter struct {
	line func(string)
	buf  []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	rest := w.buf
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		w.line(string(bytes.TrimSuffix(rest[:i], []byte("\r"))))
		rest = rest[i+1:]
	}
	if len(rest) > maxLine {
		w.line(string(rest))
		rest = nil
	}
	w.buf = append(w.buf[:0], rest...)
	return len(p), nil
}

// flush passes on a last line that has no newline.
func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.line(string(w.buf))
		w.buf = w.buf[:0]
	}
}
