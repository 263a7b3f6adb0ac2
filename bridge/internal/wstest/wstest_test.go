package wstest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/http"
	"os"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serverFrame builds an unmasked frame as a server writes it.
func serverFrame(op byte, payload []byte) []byte {
	b := []byte{0x80 | op}
	switch n := len(payload); {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

func TestRecorderSplitsAndJoins(t *testing.T) {
	closePayload := append(binary.BigEndian.AppendUint16(nil, 4000), "resume needed"...)
	var stream []byte
	stream = append(stream, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"...)
	stream = append(stream, serverFrame(OpText, []byte("hello"))...)
	stream = append(stream, serverFrame(OpText, bytes.Repeat([]byte("x"), 300))...)
	stream = append(stream, serverFrame(OpText, bytes.Repeat([]byte("y"), 70000))...)
	stream = append(stream, serverFrame(OpPing, nil)...)
	stream = append(stream, serverFrame(OpClose, closePayload)...)
	for _, chunk := range []int{1, 2, 3, 7, 100, 4096, len(stream)} {
		var r recorder
		for rest := stream; len(rest) > 0; {
			n := min(chunk, len(rest))
			r.write(rest[:n])
			rest = rest[n:]
		}
		if !r.upgraded {
			t.Fatalf("chunk %d: not upgraded", chunk)
		}
		var ops []byte
		var lens []int
		for _, f := range r.frames {
			ops = append(ops, f.Opcode)
			lens = append(lens, f.Len)
		}
		if !slices.Equal(ops, []byte{OpText, OpText, OpText, OpPing, OpClose}) || !slices.Equal(lens, []int{5, 300, 70000, 0, len(closePayload)}) {
			t.Fatalf("chunk %d: ops %v lens %v", chunk, ops, lens)
		}
		last := r.frames[4]
		if last.CloseCode() != 4000 || last.CloseReason() != "resume needed" {
			t.Fatalf("chunk %d: close %d %q", chunk, last.CloseCode(), last.CloseReason())
		}
	}
}

func TestRecorderIgnoresRefusals(t *testing.T) {
	var r recorder
	r.write([]byte("HTTP/1.1 401 Unauthorized\r\nContent-Length: 5\r\n\r\n\x88\x02\x03\xe8x"))
	if r.upgraded || len(r.frames) != 0 {
		t.Fatalf("a refusal recorded as upgraded %v, frames %v", r.upgraded, r.frames)
	}
}

func TestCloseCodeOfFrames(t *testing.T) {
	if c := (Frame{Opcode: OpClose}).CloseCode(); c != 1005 {
		t.Fatalf("empty close: %d", c)
	}
	if c := (Frame{Opcode: OpText, Payload: []byte{3, 232}}).CloseCode(); c != 0 {
		t.Fatalf("text frame: %d", c)
	}
}

// echo upgrades and echoes every message; a message "close" is answered
// with close code 4000.
func echo(t testing.TB) http.Handler {
	up := websocket.Upgrader{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			typ, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if string(msg) == "close" {
				_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4000, "asked"))
				return
			}
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			if err := c.WriteMessage(typ, msg); err != nil {
				return
			}
		}
	})
}

func TestServerBothTransports(t *testing.T) {
	for _, mem := range []bool{false, true} {
		s := NewServer(t, echo(t), Options{Memory: mem})
		c, err := s.Dial(t.Context(), "/", DialOptions{})
		if err != nil {
			t.Fatalf("memory %v: %v", mem, err)
		}
		_ = c.WriteMessage(websocket.TextMessage, []byte("hi"))
		if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "hi" {
			t.Fatalf("memory %v: echo %q %v", mem, msg, err)
		}
		_ = c.WriteMessage(websocket.TextMessage, []byte("close"))
		_, _, err = c.ReadMessage()
		if code, ok := CloseCode(err); !ok || code != 4000 {
			t.Fatalf("memory %v: %v, want close 4000", mem, err)
		}
		_ = c.Close()
		up := s.Upgraded()
		if len(up) != 1 {
			t.Fatalf("memory %v: %d upgraded conns", mem, len(up))
		}
		frames := up[0].Frames()
		if len(frames) != 2 || frames[0].Len != 2 || frames[1].CloseCode() != 4000 {
			t.Fatalf("memory %v: frames %+v", mem, frames)
		}
		s.Close()
	}
}

func TestRefusedDialIsStatusError(t *testing.T) {
	s := NewServer(t, http.NotFoundHandler(), Options{})
	_, err := s.Dial(t.Context(), "/", DialOptions{})
	var se *StatusError
	if !errors.As(err, &se) || se.Status != http.StatusNotFound {
		t.Fatalf("got %v, want status 404", err)
	}
	if n := s.Cut(); n != 0 {
		t.Fatalf("cut %d conns that were never upgraded", n)
	}
}

// TestStallHonoursDeadline runs in a bubble: a stalled write waits until
// Unstall, or fails at its deadline like a socket's.
func TestStallHonoursDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewServer(t, echo(t), Options{Memory: true})
		c, err := s.Dial(t.Context(), "/", DialOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		sc := s.Last()
		sc.Stall()
		start := time.Now()
		_ = c.WriteMessage(websocket.TextMessage, []byte("held"))
		got := make(chan string, 1)
		go func() {
			_, msg, _ := c.ReadMessage()
			got <- string(msg)
		}()
		time.Sleep(500 * time.Millisecond)
		synctest.Wait()
		select {
		case m := <-got:
			t.Fatalf("a stalled write arrived: %q", m)
		default:
		}
		sc.Unstall()
		if m := <-got; m != "held" || time.Since(start) != 500*time.Millisecond {
			t.Fatalf("got %q after %v", m, time.Since(start))
		}

		sc.Stall() // now the echo's one-second deadline passes
		_ = c.WriteMessage(websocket.TextMessage, []byte("lost"))
		go func() {
			_, _, err := c.ReadMessage()
			got <- err.Error()
		}()
		<-got // the server gave up and closed the connection
		if d := time.Since(start); d != 1500*time.Millisecond {
			t.Fatalf("the write failed after %v, want at its 1 s deadline", d-500*time.Millisecond)
		}
	})
}

func TestSlowDelaysEveryWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewServer(t, echo(t), Options{Memory: true})
		c, err := s.Dial(t.Context(), "/", DialOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s.Last().Slow(300 * time.Millisecond)
		start := time.Now()
		for range 2 {
			_ = c.WriteMessage(websocket.TextMessage, []byte("x"))
			if _, _, err := c.ReadMessage(); err != nil {
				t.Fatal(err)
			}
		}
		if d := time.Since(start); d != 600*time.Millisecond {
			t.Fatalf("two slow writes took %v", d)
		}
	})
}

func TestCutClosesUpgradedOnly(t *testing.T) {
	s := NewServer(t, echo(t), Options{})
	c, err := s.Dial(t.Context(), "/", DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, err := http.Get(s.HTTP + "/") // a plain request: not upgraded, not cut
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if n := s.Cut(); n != 1 {
		t.Fatalf("cut %d, want 1", n)
	}
	if n := s.Cut(); n != 0 {
		t.Fatalf("cut %d again, want 0", n)
	}
	_ = c.SetReadDeadline(time.Now().Add(WaitTimeout))
	if _, _, err := c.ReadMessage(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after the cut: %v, want the connection gone", err)
	}
	if _, ok := CloseCode(err); ok {
		t.Fatal("a cut sent a close frame")
	}
}
