// Package nodetest finds Node.js for the tests that run the project's JS
// client under it (bridge, natsbus, examples), and holds what those tests
// share. A test that needs node skips where none is usable, and fails
// instead when WHALESONG_NODE=required (as .ci/run sets).
package nodetest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// errVersion reports `node --version` output that names no major version.
var errVersion = errors.New("nodetest: unreadable node version")

// Find returns node's path and the flags whalesong.js needs under it, or
// skips t (fails it when WHALESONG_NODE=required) where no node 20 or
// newer is on PATH. what names the tests skipped, for the message.
func Find(t testing.TB, what string) (path string, flags []string) {
	t.Helper()
	unusable := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if os.Getenv("WHALESONG_NODE") == "required" {
			t.Fatalf("%s (WHALESONG_NODE=required)", msg)
		}
		t.Skipf("%s: skipping %s (set WHALESONG_NODE=required to fail instead)", msg, what)
	}
	path, err := exec.LookPath("node")
	if err != nil {
		unusable("node not found on PATH")
	}
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		unusable("node --version failed: %v", err)
	}
	major, err := parseMajor(string(out))
	if err != nil {
		unusable("%v", err)
	}
	if major < 20 {
		unusable("node %s is too old (20 or newer has a WebSocket)", strings.TrimSpace(string(out)))
	}
	return path, flagsFor(major)
}

// parseMajor reads the major version from `node --version` ("v20.20.2").
func parseMajor(s string) (int, error) {
	s = strings.TrimSpace(s)
	major, _, _ := strings.Cut(strings.TrimPrefix(s, "v"), ".")
	n, err := strconv.Atoi(major)
	if err != nil || !strings.HasPrefix(s, "v") || n <= 0 {
		return 0, fmt.Errorf("%w: %q", errVersion, s)
	}
	return n, nil
}

// flagsFor are the flags Node needs for whalesong.js: a WebSocket global
// (flagged before Node 22) and ES-module detection for a .js file outside
// any package.json of type module (flagged before Node 22.7 / 20.19).
func flagsFor(major int) []string {
	switch {
	case major < 22:
		return []string{"--experimental-websocket", "--experimental-detect-module"}
	case major == 22:
		return []string{"--experimental-detect-module"}
	default:
		return nil
	}
}

// SyncBuffer is a bytes.Buffer that a child process's output is copied
// into (by exec's goroutine) while the test reads it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer // guarded by mu
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
