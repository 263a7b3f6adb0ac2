package bridge

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/whalesong/bus"
	"github.com/whalesong/bus/bridge/internal/wstest"
)

// untouched is the byte the server's write buffer is filled with, to see
// whether anything wrote into it.
const untouched = 0xA5

// markedWriter hands the bridge a hijacked connection whose buffered
// writer's buffer is filled with untouched, as the HTTP server's would be
// fresh from the OS (never resident until written).
type markedWriter struct {
	http.ResponseWriter
	buf []byte // the writer's whole buffer
}

func (w *markedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return c, rw, err
	}
	bw := bufio.NewWriterSize(c, 4096)
	w.buf = bw.AvailableBuffer()[:bw.Available()]
	for i := range w.buf {
		w.buf[i] = untouched
	}
	return c, bufio.NewReadWriter(rw.Reader, bw), nil
}

func (w *markedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// TestHandshakeLeavesServerWriterUntouched checks that the 101 response is
// not written through the HTTP server's 4 KB writer, which the
// connection's goroutine keeps for the whole session: written, it would be
// a resident page per idle connection. It also checks that a response with
// more headers than the small buffer the bridge uses holds them all.
func TestHandshakeLeavesServerWriterUntouched(t *testing.T) {
	b := bus.New[msg]()
	br := New(b, WithAuthorize(allowAll))
	long := strings.Repeat("x", 2*handshakeBuffer)
	done := make(chan []byte, 1)
	ws := wstest.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Long", long) // as a middleware might
		mw := &markedWriter{ResponseWriter: w}
		br.ServeHTTP(mw, r)
		done <- mw.buf
	}), wstest.Options{})
	t.Cleanup(func() {
		_ = br.Close()
		ws.Close()
		_ = b.Close()
	})
	c, resp, err := websocket.DefaultDialer.DialContext(t.Context(), ws.URL+"/", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if got := resp.Header.Get("X-Long"); got != long {
		t.Errorf("X-Long: got %d bytes, want %d", len(got), len(long))
	}
	cl := newClient(t, c)
	cl.sub("s", "x", nil)
	_ = c.Close()
	buf := <-done
	if len(buf) == 0 {
		t.Fatal("the bridge did not hijack through the handler's writer")
	}
	for i, c := range buf {
		if c != untouched {
			t.Fatalf("the server's write buffer was written at byte %d: %q", i, buf[i:min(i+40, len(buf))])
		}
	}
}
