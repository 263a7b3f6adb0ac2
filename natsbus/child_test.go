package natsbus

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/whalesong/bus"
)

// The test binary is also a bus node: with childEnv set to a NATS URL,
// TestMain runs runChild instead of the tests.
const childEnv = "NATSBUS_TEST_CHILD"

// runChild is a bus node in a process of its own: it publishes events
// NATSBUS_CHILD_FROM..NATSBUS_CHILD_TO-1 with ids, printing "acked i seq"
// for each, then "history" with its History as JSON, then waits for its
// stdin to close.
func runChild() int {
	from, _ := strconv.Atoi(os.Getenv("NATSBUS_CHILD_FROM"))
	to, _ := strconv.Atoi(os.Getenv("NATSBUS_CHILD_TO"))
	nc, err := nats.Connect(os.Getenv(childEnv), ConnectOptions()...)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	b, err := New[int](ctx, nc)
	cancel()
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	defer b.Close()
	out := bufio.NewWriter(os.Stdout)
	for i := from; i < to; i++ {
		seq, err := publishRetrying(b, i)
		if err != nil {
			fmt.Fprintln(out, "error", err)
			out.Flush()
			return 1
		}
		fmt.Fprintln(out, "acked", i, seq)
		out.Flush()
	}
	h, _ := b.History(">", 0, 0)
	js, _ := json.Marshal(h)
	fmt.Fprintln(out, "history", string(js))
	out.Flush()
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

func publishRetrying(b *bus.Bus[int], i int) (uint64, error) {
	var err error
	for range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		var seq uint64
		seq, err = b.PublishID(ctx, fmt.Sprintf("ev-%d", i), "t."+strconv.Itoa(i%5), i)
		cancel()
		if err == nil {
			return seq, nil
		}
	}
	return 0, err
}

// child is a bus node running in a child process.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

func startChild(t *testing.T, url string, from, to int) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+url,
		fmt.Sprintf("NATSBUS_CHILD_FROM=%d", from), fmt.Sprintf("NATSBUS_CHILD_TO=%d", to))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin, lines: make(chan string, 1024)}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		_ = c.cmd.Wait()
		for range c.lines { // the reader goroutine ends with the pipe
		}
	})
	return c
}

// line is the child's next line, failing the test on an error line.
func (c *child) line(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-c.lines:
		if !ok {
			t.Fatal("the child ended")
		}
		if strings.HasPrefix(l, "error") {
			t.Fatalf("the child: %s", l)
		}
		return l
	case <-time.After(waitLimit):
		t.Fatal("the child said nothing")
	}
	return ""
}

// A bus node killed for real (SIGKILL) in the middle of publishing, then
// restarted, publishing the same ids again: every event is stored once,
// the ids acked before the kill keep their seqs, and the History of the
// restarted node is the same as that of a node that stayed up.
func TestBusNodeKilledAndRestarted(t *testing.T) {
	noLeaks(t)
	s, _ := single(t)
	nc := conns(t, s.URL(), 1)[0]
	a := newBus(t, nc)
	defer a.Close()
	const n = 300
	first := startChild(t, s.URL(), 0, n)
	acked := map[int]uint64{}
	for len(acked) < 100 {
		var i int
		var seq uint64
		if _, err := fmt.Sscanf(first.line(t), "acked %d %d", &i, &seq); err != nil {
			t.Fatal(err)
		}
		acked[i] = seq
	}
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := first.cmd.Wait(); err == nil {
		t.Fatal("the killed child exited cleanly")
	}
	second := startChild(t, s.URL(), 0, n)
	for {
		l := second.line(t)
		var i int
		var seq uint64
		if _, err := fmt.Sscanf(l, "acked %d %d", &i, &seq); err == nil {
			if want, ok := acked[i]; ok && want != seq {
				t.Fatalf("event %d acked as %d before the kill, %d after", i, want, seq)
			}
			continue
		}
		js, ok := strings.CutPrefix(l, "history ")
		if !ok {
			t.Fatalf("the child said %q", l)
		}
		var theirs []bus.Event[int]
		if err := json.Unmarshal([]byte(js), &theirs); err != nil {
			t.Fatal(err)
		}
		last := theirs[len(theirs)-1].Seq
		waitBusSeq(t, a, last)
		ours := history(t, a)
		if !sameEvents(ours, theirs) {
			t.Fatalf("History differs: ours %d events, the restarted node's %d", len(ours), len(theirs))
		}
		seen := map[int]bool{}
		for k, ev := range ours {
			if seen[ev.Data] || ev.Seq != uint64(k+1) {
				t.Fatalf("event %d (data %d) twice or out of place", ev.Seq, ev.Data)
			}
			seen[ev.Data] = true
		}
		if len(seen) != n {
			t.Fatalf("%d distinct events stored, want %d", len(seen), n)
		}
		break
	}
	_ = second.stdin.Close()
	if err := second.cmd.Wait(); err != nil {
		t.Fatalf("the restarted child: %v", err)
	}
}
