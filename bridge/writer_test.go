package bridge

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"
)

// TestFrameHead checks the header written into a frame's headroom at the
// edges of the three length forms of RFC 6455, section 5.2.
func TestFrameHead(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 0xffff, 0x10000, 0x10001} {
		payload := bytes.Repeat([]byte{'x'}, n)
		b := append(append([]byte(nil), zeroHead[:]...), payload...)
		got := frameHead(b, opText)
		var want []byte
		switch {
		case n < 126:
			want = []byte{0x81, byte(n)}
		case n <= 0xffff:
			want = binary.BigEndian.AppendUint16([]byte{0x81, 126}, uint16(n))
		default:
			want = binary.BigEndian.AppendUint64([]byte{0x81, 127}, uint64(n))
		}
		want = append(want, payload...)
		if !bytes.Equal(got, want) {
			t.Errorf("payload of %d: header % x, want % x", n, got[:min(len(got), 10)], want[:min(len(want), 10)])
		}
	}
}

// TestPingsDoNotInterleaveWithFrames: gorilla answers a client's pings on
// the read loop while the session's writer writes events to the same
// socket; every frame arrives whole (a torn one fails the client's reader),
// every event once and in order, and every ping gets its pong.
func TestPingsDoNotInterleaveWithFrames(t *testing.T) {
	const events, pings = 3000, 300
	s := newServer(t, nil, WithAuthorize(allowAll), WithMaxBacklog(events))
	cl := s.dial(t)
	cl.sub("s", "x", nil)
	var pongs atomic.Int64
	cl.c.SetPongHandler(func(string) error { pongs.Add(1); return nil })
	done := make(chan error, 1)
	go func() {
		for i := range pings {
			if err := cl.c.WriteControl(websocket.PingMessage, fmt.Appendf(nil, "%d", i), time.Now().Add(readWait)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range events {
		s.publish("x", msg{Text: "0123456789abcdef0123456789abcdef"})
	}
	got := cl.events(events)
	if err := <-done; err != nil {
		t.Fatalf("ping: %v", err)
	}
	for i, e := range got {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
	}
	waitFor(t, "every pong", func() bool {
		cl.ping() // reads until its own pong frame of the protocol: pongs are handled meanwhile
		return pongs.Load() == pings
	})
}

// TestIdleSessionHasNoWriter: once a connection has nothing left to send,
// its writer goroutine is gone (an idle connection costs no goroutine for
// it), and the next frame starts one again.
func TestIdleSessionHasNoWriter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newMemServer(t, nil, WithAuthorize(allowAll))
		cl := s.dial(t)
		cl.sub("s", "x", nil)
		sess := s.br.live()[0]
		idle := func(when string) {
			t.Helper()
			synctest.Wait()
			gone := make(chan struct{})
			go func() { sess.writer.Wait(); close(gone) }()
			synctest.Wait()
			select {
			case <-gone:
			default:
				t.Fatalf("%s: the writer still runs with nothing to write", when)
			}
		}
		idle("after the hello and the ack")
		s.publish("x", msg{Text: "a"})
		if got := cl.events(1); string(got[0].Data) != `{"text":"a"}` {
			t.Fatalf("got %+v", got)
		}
		idle("after an event")
	})
}

// TestReplayFramesStayNearTheByteCap: a replay of large events is sent in
// frames of about maxBatchBytes (one event over at most), not in frames of
// maxBatchEvents whatever their size, with every event once and in order.
func TestReplayFramesStayNearTheByteCap(t *testing.T) {
	s := newServer(t, nil, WithAuthorize(allowAll))
	pad := strings.Repeat("x", 4000)
	const n = 100
	for range n {
		s.publish("big", msg{Text: pad})
	}
	cl := s.dial(t)
	cl.send(map[string]any{"op": "sub", "id": "r1", "sub": "s1", "pattern": "big", "after": map[string]any{"seq": 0}})
	got, frames := 0, 0
	for got < n {
		_, data, err := cl.c.ReadMessage()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		var f struct {
			Op     string `json:"op"`
			Events []struct {
				Seq uint64 `json:"seq"`
			} `json:"events"`
		}
		if err := json.Unmarshal(data, &f); err != nil {
			t.Fatal(err)
		}
		if f.Op != "events" {
			continue
		}
		frames++
		if len(data) > maxBatchBytes+len(pad)+200 {
			t.Fatalf("frame %d: %d bytes, %d events: over the %d-byte cap by more than one event", frames, len(data), len(f.Events), maxBatchBytes)
		}
		for _, e := range f.Events {
			if got++; e.Seq != uint64(got) {
				t.Fatalf("event %d has seq %d", got, e.Seq)
			}
		}
	}
	if frames < n*len(pad)/maxBatchBytes {
		t.Fatalf("%d frames for %d bytes of events", frames, n*len(pad))
	}
}
