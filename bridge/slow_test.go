package bridge

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/whalesong/bus/bridge/internal/wstest"
)

// TestSlowClientIsCutOff stops reading on one client while 100 others read
// along: the slow one is closed with 4000 once its backlog passes the
// limit, and the others get every event in order; publishing never waits.
func TestSlowClientIsCutOff(t *testing.T) {
	if testing.Short() {
		t.Skip("moves tens of megabytes over loopback")
	}
	// Small socket buffers on both sides, so that the kernel does not
	// absorb megabytes for a client that stopped reading.
	s := newServerWith(t, nil, wstest.Options{SendBuffer: 8192}, WithMaxBacklog(64))
	slow := s.dialWith(t, wstest.DialOptions{RecvBuffer: 4096})
	slow.sub("s", "feed", nil)

	const fast = 100
	var wg sync.WaitGroup
	results := make([]chan []uint64, fast)
	progress := make([]atomic.Uint64, fast)
	for i := range fast {
		cl := s.dial(t)
		cl.sub("s", "feed", nil)
		results[i] = make(chan []uint64, 1)
		wg.Go(func() {
			var seqs []uint64
			defer func() { results[i] <- seqs }()
			for {
				f, err := cl.tryRead(readWait)
				if err != nil {
					t.Logf("fast client %d: %v", i, err)
					return
				}
				for _, ev := range f.Events {
					if string(ev.Data) == `{"text":"end"}` { // the last event
						return
					}
					seqs = append(seqs, ev.Seq)
					progress[i].Store(ev.Seq)
				}
			}
		})
	}

	t0 := time.Now()
	data := msg{Text: strings.Repeat("x", 512)}
	var published []uint64
	for s.br.Stats().SlowDisconnects == 0 {
		if len(published) > 20000 {
			t.Fatal("the slow client was never cut off")
		}
		start := time.Now()
		seq := s.publish("feed", data)
		published = append(published, seq)
		if d := time.Since(start); d > time.Second {
			t.Fatalf("a publish waited %v", d)
		}
		if len(published)%32 == 0 { // the fast clients keep up: stay far below their limit
			waitFor(t, "the fast clients", func() bool {
				for i := range progress {
					if progress[i].Load() < seq {
						return false
					}
				}
				return true
			})
		}
	}
	s.publish("feed", msg{Text: "end"})
	t.Logf("cut off after %d events, %v", len(published), time.Since(t0))

	// The slow client now reads: what was written before the cut, then 4000.
	if code := slow.closeCode(); code != closeResumeNeeded {
		t.Fatalf("slow client closed with %d, want 4000", code)
	}
	for i := range fast {
		seqs := <-results[i]
		if !slices.Equal(seqs, published) {
			t.Fatalf("fast client %d got %d events, want the %d published, in order", i, len(seqs), len(published))
		}
	}
	wg.Wait()
}
