package bridge_test

// Tests of the browser client (client/whalesong.js) run by Node.js: its unit
// tests (node --test client/test/), and the harness of the integration tests
// in clientjs_it_test.go. They skip when node is missing, and fail instead
// when WHALESONG_NODE=required (as .ci/run sets). (Not client_js_test.go:
// the _js suffix would make it a GOOS=js file, never built on Linux.)

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/whalesong/bus/internal/nodetest"
)

// findNode returns node and its flags, or skips the test (fails it when
// WHALESONG_NODE=required) where no usable node exists.
func findNode(t *testing.T) (string, []string) {
	t.Helper()
	return nodetest.Find(t, "the JS client tests")
}

var tapCount = regexp.MustCompile(`(?m)^# (pass|fail) (\d+)$`)

// TestClientJSUnit runs the client's node unit tests (backoff, queue, resume,
// gap, storage) with the built-in runner.
func TestClientJSUnit(t *testing.T) {
	node, flags := findNode(t)
	files, err := filepath.Glob(filepath.Join("client", "test", "*.*js"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files in client/test: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	args := append(slices.Clone(flags), "--test", "--test-reporter=tap")
	cmd := exec.CommandContext(ctx, node, append(args, files...)...)
	out, err := cmd.CombinedOutput()
	counts := map[string]int{}
	for _, m := range tapCount.FindAllStringSubmatch(string(out), -1) {
		counts[m[1]], _ = strconv.Atoi(m[2])
	}
	if err != nil || counts["fail"] != 0 || counts["pass"] == 0 {
		t.Fatalf("node --test: %v (pass %d, fail %d)\n%s", err, counts["pass"], counts["fail"], out)
	}
	t.Logf("node --test: %d passed, 0 failed", counts["pass"])
}

// nodeScript runs a node script and exchanges JSON lines with it.
type nodeScript struct {
	t      *testing.T
	stdin  io.WriteCloser
	lines  chan string
	stderr *nodetest.SyncBuffer // node's stderr: the test may read it while node runs
	done   chan struct{}        // closed when node has exited; waitErr is set then
	// waitErr is what cmd.Wait returned; read it only after done is closed.
	waitErr error
}

func startScript(t *testing.T, ctx context.Context, node string, args []string, env []string) *nodeScript {
	t.Helper()
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Env = append(os.Environ(), env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &nodeScript{t: t, stdin: stdin, lines: make(chan string, 16), stderr: new(nodetest.SyncBuffer), done: make(chan struct{})}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { // owned by the test: it ends when node's stdout closes, then reports Wait
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		stdin.Close()
		for range s.lines { // drain so the reader can finish
		}
		<-s.done
	})
	return s
}

// step waits for the script's next line and checks it is the named step.
func (s *nodeScript) step(name string) jsStep {
	s.t.Helper()
	var st jsStep
	s.stepInto(name, &st)
	return st
}

// stepInto waits for the script's next line, checks it is the named step
// and decodes it into v (a struct of the script's own fields).
func (s *nodeScript) stepInto(name string, v any) {
	s.t.Helper()
	select {
	case line, ok := <-s.lines:
		if !ok {
			<-s.done
			s.t.Fatalf("node exited before step %q: %v\nstderr:\n%s", name, s.waitErr, s.stderr)
		}
		var head struct {
			Step string `json:"step"`
		}
		if err := json.Unmarshal([]byte(line), &head); err != nil || head.Step != name {
			s.t.Fatalf("want step %q, got %q (%v)\nstderr:\n%s", name, line, err, s.stderr)
		}
		if err := json.Unmarshal([]byte(line), v); err != nil {
			s.t.Fatalf("step %q: %v in %q", name, err, line)
		}
	case <-time.After(20 * time.Second):
		s.t.Fatalf("no step %q within 20s\nstderr:\n%s", name, s.stderr)
	}
}

func (s *nodeScript) send(cmd string) {
	s.t.Helper()
	if _, err := io.WriteString(s.stdin, cmd+"\n"); err != nil {
		s.t.Fatalf("write %q to node: %v", cmd, err)
	}
}
