package wspeer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Subscribe subscribes a fresh connection to Topic the way peer name's
// protocol does, and returns once the server has confirmed it.
func Subscribe(name string, c *websocket.Conn) error {
	switch name {
	case "whalesong":
		return subscribeBridge(c)
	case "centrifuge":
		return subscribeCentrifuge(c)
	case "melody":
		return nil // every connection gets every Broadcast
	}
	return fmt.Errorf("wspeer: no peer %q", name)
}

func subscribeBridge(c *websocket.Conn) error {
	if err := c.WriteMessage(websocket.TextMessage, []byte(`{"op":"sub","id":"1","sub":"s","pattern":"`+Topic+`"}`)); err != nil {
		return err
	}
	for { // hello, then subscribed
		_, data, err := c.ReadMessage()
		switch {
		case err != nil:
			return err
		case bytes.Contains(data, []byte(`"op":"subscribed"`)):
			return nil
		case bytes.Contains(data, []byte(`"op":"error"`)):
			return fmt.Errorf("subscribe: %s", data)
		}
	}
}

func subscribeCentrifuge(c *websocket.Conn) error {
	// One command per frame, each answered by the reply with its id.
	for _, cmd := range []string{`{"id":1,"connect":{}}`, `{"id":2,"subscribe":{"channel":"` + Topic + `"}}`} {
		if err := c.WriteMessage(websocket.TextMessage, []byte(cmd)); err != nil {
			return err
		}
		_, data, err := c.ReadMessage()
		if err != nil {
			return err
		}
		if bytes.Contains(data, []byte(`"error":`)) {
			return fmt.Errorf("%s: %s", cmd, data)
		}
	}
	return nil
}

// Dialer is the clients' dialer: small buffers, as a browser's socket
// would not matter here.
var Dialer = websocket.Dialer{ReadBufferSize: 4096, WriteBufferSize: 512, HandshakeTimeout: 2 * time.Minute}

// DialMany opens n connections to url (50 at a time) and subscribes each
// as peer name does. On error it closes those it opened.
func DialMany(name, url string, n int) ([]*websocket.Conn, error) {
	conns := make([]*websocket.Conn, 0, n)
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	sem := make(chan struct{}, 50)
	for range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c, _, err := Dialer.Dial(url, nil)
			if err == nil {
				_ = c.SetReadDeadline(time.Now().Add(2 * time.Minute))
				err = Subscribe(name, c)
				_ = c.SetReadDeadline(time.Time{})
			}
			mu.Lock()
			defer mu.Unlock()
			if c != nil {
				conns = append(conns, c)
			}
			if err != nil && firstErr == nil {
				firstErr = err
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		for _, c := range conns {
			_ = c.Close()
		}
		return nil, fmt.Errorf("dial %s: %w", url, firstErr)
	}
	return conns, nil
}

// Received is what one client got in a run.
type Received struct {
	Lat    []int64 // publish-to-receipt latency of each event, ns, in order
	Last   int64   // Unix ns of the last receipt
	Frames int     // WebSocket frames that carried them (and pings)
}

// Reader reads one connection's frames into a buffer it reuses, finds
// each event by its "sent" and "i" fields whatever wraps it (a bridge
// events frame, a centrifuge push, melody's frame), checks that events
// come once each and in order, and answers centrifuge's
// application-level ping (an empty object on its own line) when asked.
type Reader struct {
	c    *websocket.Conn
	pong bool
	buf  []byte
}

// NewReader reads c, a connection of peer name.
func NewReader(name string, c *websocket.Conn) *Reader {
	return &Reader{c: c, pong: name == "centrifuge", buf: make([]byte, 0, 4096)}
}

// Read reads until n events arrived or deadline passed.
func (r *Reader) Read(n int, deadline time.Time) (Received, error) {
	got := Received{Lat: make([]int64, 0, n)}
	if err := r.c.SetReadDeadline(deadline); err != nil {
		return got, err
	}
	for len(got.Lat) < n {
		frame, err := r.next()
		if err != nil {
			return got, err
		}
		now := time.Now().UnixNano()
		got.Frames++
		got.Last = now
		if r.pong && isPing(frame) {
			if err := r.c.WriteMessage(websocket.TextMessage, ping); err != nil {
				return got, err
			}
		}
		if got.Lat, err = scan(frame, now, got.Lat); err != nil {
			return got, err
		}
	}
	return got, nil
}

// next reads one whole frame into r.buf.
func (r *Reader) next() ([]byte, error) {
	_, rd, err := r.c.NextReader()
	if err != nil {
		return nil, err
	}
	b := r.buf[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		k, err := rd.Read(b[len(b):cap(b)])
		b = b[:len(b)+k]
		if errors.Is(err, io.EOF) {
			r.buf = b
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

var (
	ping     = []byte("{}")
	sentKey  = []byte(`"sent":`)
	indexKey = []byte(`"i":`)
)

// isPing reports whether one of frame's lines is "{}".
func isPing(frame []byte) bool {
	return bytes.Equal(frame, ping) || bytes.HasPrefix(frame, []byte("{}\n")) ||
		bytes.HasSuffix(frame, []byte("\n{}")) || bytes.Contains(frame, []byte("\n{}\n"))
}

// scan appends the latency of each event in frame to lat, checking that
// its index is the next one.
func scan(frame []byte, now int64, lat []int64) ([]int64, error) {
	for data := frame; ; {
		sent, rest, ok := intAfter(data, sentKey)
		if !ok {
			return lat, nil
		}
		i, rest, ok := intAfter(rest, indexKey)
		if !ok {
			return lat, fmt.Errorf("no index after sent in %q", clip(frame))
		}
		if int(i) != len(lat) {
			return lat, fmt.Errorf("event %d, want %d", i, len(lat))
		}
		lat = append(lat, now-sent)
		data = rest
	}
}

// intAfter finds key in data and parses the non-negative integer that
// follows it, without allocating.
func intAfter(data, key []byte) (v int64, rest []byte, ok bool) {
	k := bytes.Index(data, key)
	if k < 0 {
		return 0, nil, false
	}
	data = data[k+len(key):]
	j := 0
	for ; j < len(data) && data[j] >= '0' && data[j] <= '9' && j < 19; j++ {
		v = v*10 + int64(data[j]-'0')
	}
	return v, data[j:], j > 0
}

func clip(b []byte) []byte {
	if len(b) > 200 {
		return b[:200]
	}
	return b
}
