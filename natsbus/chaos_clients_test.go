package natsbus

// The Node side of the chaos runs: one node process runs every JS client
// (testdata/chaos_clients.mjs, with the whalesong.js that bridge.ClientJS
// serves). (Not chaos_js_test.go: a _js suffix makes a GOOS=js file.)

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/whalesong/bus/bridge"
	"github.com/whalesong/bus/internal/nodetest"
)

// findNode returns node and the flags whalesong.js needs under it, or
// skips the test where no usable node exists (fails it instead when
// WHALESONG_NODE=required, as .ci/run sets).
func findNode(t *testing.T) (string, []string) {
	t.Helper()
	return nodetest.Find(t, "the chaos run of the JS clients")
}

// clientModule writes the client as bridge.ClientJS serves it to an .mjs
// file and returns its file: URL.
func clientModule(t *testing.T) string {
	t.Helper()
	rec := httptest.NewRecorder()
	bridge.ClientJS().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/whalesong.js", nil))
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/javascript") {
		t.Fatalf("ClientJS: %d, Content-Type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	path := filepath.Join(t.TempDir(), "whalesong.mjs")
	if err := os.WriteFile(path, rec.Body.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String()
}

// jsClientSpec is one client of the script's parameters.
type jsClientSpec struct {
	Pattern string     `json:"pattern"`
	After   any        `json:"after,omitempty"` // a seq, or {epoch, seq}
	Publish *jsPublish `json:"publish,omitempty"`
}

type jsPublish struct {
	Topic string `json:"topic"`
	Every int    `json:"every"` // ms
}

type jsParams struct {
	Client  string         `json:"client"`
	URL     string         `json:"url"`
	Options map[string]int `json:"options"`
	Clients []jsClientSpec `json:"clients"`
}

// jsSegment is what one client's handler got in one epoch: seqs as the
// first one and the differences between consecutive ones.
type jsSegment struct {
	Epoch  string  `json:"epoch"`
	First  uint64  `json:"first"`
	Last   uint64  `json:"last"`
	Deltas []int64 `json:"deltas"`
	N      int     `json:"n"`
}

// seqs are the segment's seqs in the order the handler got them.
func (s jsSegment) seqs() []uint64 {
	out := make([]uint64, 0, s.N)
	cur := int64(s.First)
	out = append(out, s.First)
	for _, d := range s.Deltas {
		cur += d
		out = append(out, uint64(cur))
	}
	return out
}

type jsGap struct {
	Pattern string `json:"pattern"`
	Reason  string `json:"reason"`
	After   uint64 `json:"after"`
	Before  uint64 `json:"before"`
	Events  int    `json:"events"` // events handed over before it
	At      int64  `json:"at"`
}

type jsConn struct {
	At     int64 `json:"at"`     // Unix ms of the hello
	Events int   `json:"events"` // events handed over before it
}

// jsClient is the "client" line: everything one client saw.
type jsClient struct {
	K              int            `json:"k"`
	Pattern        string         `json:"pattern"`
	Segments       []jsSegment    `json:"segments"`
	Gaps           []jsGap        `json:"gaps"`
	Errors         map[string]int `json:"errors"`
	Opens          int            `json:"opens"`
	Drops          int            `json:"drops"`
	DropCodes      map[string]int `json:"dropCodes"`
	FailedAttempts map[string]int `json:"failedAttempts"`
	ReconnectMs    []int64        `json:"reconnectMs"`
	ResumeMs       []int64        `json:"resumeMs"`
	ServeMs        []int64        `json:"serveMs"`
	MaxStallMs     int64          `json:"maxStallMs"`
	MaxStallAt     int64          `json:"maxStallAt"`
	Stalls         [][2]int64     `json:"stalls"` // [ms, end (Unix ms)] of every stall of 250 ms or more
	Conns          []jsConn       `json:"conns"`
	Pubs           [][2]uint64    `json:"pubs"`     // [n, seq]
	PubFails       []jsPubFail    `json:"pubFails"` // [n, code]
	PubPending     int            `json:"pubPending"`
	Ready          *struct {
		Recovered bool   `json:"recovered"`
		Error     string `json:"error"`
		At        int64  `json:"at"`
	} `json:"ready"`
	State    string `json:"state"`
	SubState string `json:"subState"`
}

// jsPubFail is [n, code] on the wire.
type jsPubFail struct {
	N    int
	Code string
}

func (f *jsPubFail) UnmarshalJSON(b []byte) error {
	var raw [2]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if err := json.Unmarshal(raw[0], &f.N); err != nil {
		return err
	}
	return json.Unmarshal(raw[1], &f.Code)
}

// jsScript is the running node process.
type jsScript struct {
	t      *testing.T
	stdin  io.WriteCloser
	lines  chan []byte
	stderr *nodetest.SyncBuffer
	done   chan struct{} // closed when node has exited; waitErr is set then
	// waitErr is what cmd.Wait returned; read it only after done is closed.
	waitErr error
}

// startClients runs the script with p; the test's cleanup ends node (it
// exits when its stdin closes) and waits for it.
func startClients(t *testing.T, p jsParams) *jsScript {
	t.Helper()
	node, flags := findNode(t)
	script, err := filepath.Abs(filepath.Join("testdata", "chaos_clients.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(t.TempDir(), "params.json")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, append(flags, script, cfgPath)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &jsScript{t: t, stdin: stdin, lines: make(chan []byte, 64), stderr: new(nodetest.SyncBuffer), done: make(chan struct{})}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { // owned by the test: ends when node's stdout closes, then reports Wait
		r := bufio.NewReaderSize(stdout, 1<<20)
		for {
			line, err := r.ReadBytes('\n')
			if len(bytes.TrimSpace(line)) > 0 {
				s.lines <- line
			}
			if err != nil {
				break
			}
		}
		close(s.lines)
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		timer := time.AfterFunc(30*time.Second, func() { _ = cmd.Process.Kill() })
		defer timer.Stop()
		for range s.lines { // drain so that the reader can finish
		}
		<-s.done
	})
	return s
}

// send writes one command.
func (s *jsScript) send(cmd map[string]any) {
	s.t.Helper()
	b, err := json.Marshal(cmd)
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.stdin.Write(append(b, '\n')); err != nil {
		s.t.Fatalf("write %s to node: %v\nstderr:\n%s", b, err, s.stderr)
	}
}

// step waits at most limit for the script's next line, checks that it is
// the named step and decodes it into v.
func (s *jsScript) step(name string, limit time.Duration, v any) {
	s.t.Helper()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case line, ok := <-s.lines:
		if !ok {
			<-s.done
			s.t.Fatalf("node exited before step %q: %v\nstderr:\n%s", name, s.waitErr, s.stderr)
		}
		var head struct {
			Step string `json:"step"`
		}
		if err := json.Unmarshal(line, &head); err != nil || head.Step != name {
			s.t.Fatalf("want step %q, got %.300s (%v)\nstderr:\n%s", name, line, err, s.stderr)
		}
		if err := json.Unmarshal(line, v); err != nil {
			s.t.Fatalf("step %q: %v in %.300s", name, err, line)
		}
	case <-timer.C:
		s.t.Fatalf("no step %q within %v\nstderr:\n%s", name, limit, s.stderr)
	}
}

// jsBehind is a client that did not reach a wait's target.
type jsBehind struct {
	K       int    `json:"k"`
	Pattern string `json:"pattern"`
	Want    uint64 `json:"want"`
	Epoch   string `json:"epoch"`
	Last    uint64 `json:"last"`
	State   string `json:"state"`
	Sub     string `json:"sub"`
}

// report asks for every client's results and reads them, and how long
// the node process ran and the CPU time it used.
func (s *jsScript) report(n int) (clients []jsClient, ranMs, cpuMs int64) {
	s.t.Helper()
	s.send(map[string]any{"cmd": "report"})
	clients = make([]jsClient, n)
	for i := range clients {
		s.step("client", time.Minute, &clients[i])
	}
	var done struct {
		Ms    int64 `json:"ms"`
		CPUMs int64 `json:"cpuMs"`
	}
	s.step("done", time.Minute, &done)
	return clients, done.Ms, done.CPUMs
}
