package bridge

import (
	"runtime"
	"testing"
)

// TestReadLoopStackStaysSmall checks that handling a client frame leaves
// the connection's goroutines at the stack they had before it: a
// subscribe decodes JSON and replays, and run on melody's read loop it
// would leave that goroutine's stack grown for the connection's life.
func TestReadLoopStackStaysSmall(t *testing.T) {
	const n = 100
	s := newServer(t, nil, WithAuthorize(allowAll))
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = s.dial(t)
	}
	before := stackInuse()
	for _, cl := range clients {
		cl.sub("s", "chat.>", nil)
	}
	after := stackInuse()
	// Run on the read loop, a subscribe leaves it 8 KB where it had 4 KB
	// (more under the race detector). What else moves the total is a
	// fraction of that: a writer that grew while writing the answer, a
	// frame's goroutine not yet gone.
	if grown := (int64(after) - int64(before)) / n; grown >= 4096 {
		t.Errorf("a subscribe grew each connection's stacks by %d B, want far less than 4 KB", grown)
	}
}

func stackInuse() uint64 {
	runtime.GC()
	runtime.GC() // each GC halves a stack at most once
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.StackInuse
}

func TestOnSideStack(t *testing.T) {
	ran := false
	onSideStack(func() { ran = true })
	if !ran {
		t.Fatal("fn did not run before onSideStack returned")
	}
	defer func() {
		if p := recover(); p != "boom" {
			t.Fatalf("recovered %v, want the panic of fn", p)
		}
	}()
	onSideStack(func() { panic("boom") })
	t.Fatal("onSideStack returned after fn panicked")
}
