//go:build unix

package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/whalesong/bus/internal/nodetest"
)

// supervisor is `chat -cluster` running in a child process (this test
// binary, see runAsChat), its nodes in grandchildren.
type supervisor struct {
	t     *testing.T
	cmd   *exec.Cmd
	lines chan string          // its stdout, line by line; closed when it exits
	logs  *nodetest.SyncBuffer // its stderr: the nodes' logs
	store string               // the JetStream store, from its first line
	nats  string               // the NATS URL
	seen  []string             // every stdout line read so far
}

// startSupervisor runs chat with args and reads its first line (the NATS
// server's). The test's cleanup kills it if it still runs and shows its
// output when the test failed.
func startSupervisor(t *testing.T, args ...string) *supervisor {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), envRunChat+"=1")
	s := &supervisor{t: t, cmd: cmd, lines: make(chan string, 100), logs: &nodetest.SyncBuffer{}}
	cmd.Stderr = s.logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		defer close(s.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil { // a test that failed half-way: stop it as Ctrl-C would
			_ = cmd.Process.Signal(os.Interrupt)
			stopped := time.AfterFunc(waitLimit, func() { _ = cmd.Process.Kill() })
			for range s.lines {
			}
			<-read
			_ = cmd.Wait()
			stopped.Stop()
		}
		if t.Failed() {
			t.Logf("supervisor stdout:\n%s\nsupervisor stderr:\n%s", strings.Join(s.seen, "\n"), s.logs.String())
		}
	})
	if _, err := fmt.Sscanf(s.next(), natsFormat, &s.nats, &s.store); err != nil {
		t.Fatalf("first line: %v", err)
	}
	return s
}

// next is the supervisor's next line on stdout.
func (s *supervisor) next() string {
	s.t.Helper()
	select {
	case l, ok := <-s.lines:
		if !ok {
			s.t.Fatalf("the supervisor exited")
		}
		s.seen = append(s.seen, l)
		return l
	case <-time.After(waitLimit):
		s.t.Fatalf("the supervisor said nothing for %v", waitLimit)
	}
	return ""
}

// upNode is a node as an upFormat line reports it.
type upNode struct {
	id    int
	url   string
	pid   int
	epoch string
	seq   uint64
	line  string
}

// waitUp reads lines until one says that a node is up, failing on a line
// that says a node failed.
func (s *supervisor) waitUp() upNode {
	s.t.Helper()
	for {
		l := s.next()
		var n upNode
		if _, err := fmt.Sscanf(l, upFormat, &n.id, &n.url, &n.pid, &n.epoch, &n.seq); err == nil {
			n.line = l
			return n
		}
		if strings.Contains(l, "exited before it served") {
			s.t.Fatalf("supervisor: %s", l)
		}
	}
}

// waitNodes waits until n nodes are up, and returns them by id (1 to n),
// checking that they share one epoch.
func (s *supervisor) waitNodes(n int) []upNode {
	s.t.Helper()
	nodes := make([]upNode, n)
	for range n {
		u := s.waitUp()
		if u.id < 1 || u.id > n || nodes[u.id-1].pid != 0 {
			s.t.Fatalf("unexpected %q", u.line)
		}
		nodes[u.id-1] = u
	}
	for _, u := range nodes {
		if u.epoch != nodes[0].epoch {
			s.t.Fatalf("nodes in different epochs: %q, %q", nodes[0].line, u.line)
		}
	}
	return nodes
}

// waitLine reads lines until one starts with prefix.
func (s *supervisor) waitLine(prefix string) string {
	s.t.Helper()
	for {
		if l := s.next(); strings.HasPrefix(l, prefix) {
			return l
		}
	}
}

// interrupt sends SIGINT, as Ctrl-C does, and checks that the supervisor
// stops every node, then the server, and exits 0.
func (s *supervisor) interrupt(nodes int) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(os.Interrupt); err != nil {
		s.t.Fatal(err)
	}
	s.waitLine(stoppingLine)
	stopped := map[int]bool{}
	for len(stopped) < nodes {
		var id, pid int
		if _, err := fmt.Sscanf(s.next(), stoppedFormat, &id, &pid); err == nil {
			stopped[id] = true
		}
	}
	s.waitLine(fmt.Sprintf(doneFormat, nodes))
	for l := range s.lines {
		s.seen = append(s.seen, l)
	}
	if err := s.cmd.Wait(); err != nil {
		s.t.Errorf("the supervisor exited with %v after SIGINT", err)
	}
}

// gone says whether no process has pid (a zombie counts as gone: it runs
// nothing and holds no port).
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// pid (comm) state ...: comm may hold spaces, the state follows the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// checkLeftNothing checks that the nodes' processes and ports, the NATS
// server's port and the store are all gone.
func checkLeftNothing(t *testing.T, s *supervisor, nodes []upNode) {
	t.Helper()
	for _, n := range nodes {
		if !gone(n.pid) {
			t.Errorf("node %d (pid %d) still runs", n.id, n.pid)
		}
		ln, err := net.Listen("tcp", strings.TrimPrefix(n.url, "http://"))
		if err != nil {
			t.Errorf("node %d's address is still taken: %v", n.id, err)
		} else {
			ln.Close()
		}
	}
	if conn, err := net.DialTimeout("tcp", strings.TrimPrefix(s.nats, "nats://"), time.Second); err == nil {
		conn.Close()
		t.Errorf("the NATS server at %s still answers", s.nats)
	}
	if _, err := os.Stat(s.store); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the store %s is still there (%v)", s.store, err)
	}
}

// TestClusterRestartsAKilledNode runs `chat -cluster 3`: three nodes come up
// on one stream in one epoch; a node killed with SIGKILL is restarted at
// the same address, in the same epoch, with the stream's events (it
// reports the seq a message published on another node took); SIGINT stops
// the nodes and the server, and leaves no process, port or store behind.
func TestClusterRestartsAKilledNode(t *testing.T) {
	s := startSupervisor(t, "-cluster", "3", "-addr", "127.0.0.1:0", "-restart-delay", "200ms")
	nodes := s.waitNodes(3)
	if !strings.HasPrefix(s.nats, "nats://127.0.0.1:") {
		t.Errorf("the NATS server listens on %s, want 127.0.0.1 only", s.nats)
	}
	alice := dialNode(t, nodes[0].url, "alice")
	seq := alice.publish(1, "lobby", "before the kill")

	victim := nodes[1]
	if err := syscall.Kill(victim.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var id, pid int
	down := s.waitLine("chat: node 2 (pid")
	if _, err := fmt.Sscanf(down, "chat: node %d (pid %d) is gone (signal: killed)", &id, &pid); err != nil || pid != victim.pid {
		t.Fatalf("after the kill: %q (%v)", down, err)
	}
	back := s.waitUp()
	switch {
	case back.id != 2 || back.pid == victim.pid:
		t.Fatalf("after the kill: %q, want node 2 in a new process", back.line)
	case back.url != victim.url || back.epoch != victim.epoch:
		t.Fatalf("restarted node 2: %q, want %s in epoch %s", back.line, victim.url, victim.epoch)
	case back.seq != seq:
		t.Errorf("restarted node 2 reports seq %d, want %d: it did not load the stream", back.seq, seq)
	case !strings.Contains(back.line, "same epoch"):
		t.Errorf("the restart line does not say that the epoch is the same: %q", back.line)
	}
	if !gone(victim.pid) {
		t.Errorf("the killed node (pid %d) was not reaped", victim.pid)
	}
	bob := dialNode(t, back.url, "bob")
	if bob.hello.Epoch != victim.epoch || bob.hello.Seq != seq {
		t.Errorf("the restarted node says hello in epoch %s at seq %d, want %s at %d", bob.hello.Epoch, bob.hello.Seq, victim.epoch, seq)
	}

	nodes[1] = back
	s.interrupt(3)
	checkLeftNothing(t, s, nodes)
}

// TestClusterNodeThatCannotStart: a node that exits by itself before it
// serves (its port is taken) stops the whole cluster with an error, rather
// than being restarted forever.
func TestClusterNodeThatCannotStart(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	s := startSupervisor(t, "-cluster", "1", "-addr", taken.Addr().String())
	failed := s.waitLine("chat: node 1 (pid")
	if !strings.Contains(failed, "exited before it served (exit status 1)") {
		t.Errorf("got %q", failed)
	}
	for l := range s.lines {
		s.seen = append(s.seen, l)
	}
	err = s.cmd.Wait()
	if exit := (*exec.ExitError)(nil); !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("the supervisor exited with %v, want exit status 1", err)
	}
	if logs := s.logs.String(); !strings.Contains(logs, "node 1 | ") || !strings.Contains(logs, "address already in use") {
		t.Errorf("the node's error was not passed on:\n%s", logs)
	}
	if _, err := os.Stat(s.store); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the store %s is still there (%v)", s.store, err)
	}
}

// TestClusterNodesDieWithTheSupervisor: when the supervisor is killed
// (nothing can clean up after SIGKILL), its nodes see their stdin close and
// stop by themselves.
func TestClusterNodesDieWithTheSupervisor(t *testing.T) {
	s := startSupervisor(t, "-cluster", "2", "-addr", "127.0.0.1:0", "-store", t.TempDir())
	nodes := s.waitNodes(2)
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for range s.lines {
	}
	_ = s.cmd.Wait()
	for _, n := range nodes {
		// Not our child: nothing to wait on but the process table.
		deadline := time.Now().Add(waitLimit)
		for !gone(n.pid) {
			if time.Now().After(deadline) {
				t.Fatalf("node %d (pid %d) still runs %v after its supervisor was killed", n.id, n.pid, waitLimit)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
