package bridge

import (
	"math"
	"strconv"
	"testing"

	"github.com/gorilla/websocket"
)

// BenchmarkClientPublish is the client publish path over loopback: one
// connection sends b.N publishes with distinct ids (pipelined, 64 in
// flight) and reads their answers; "hook" adds a publish hook that
// rewrites the data. Compare with the same benchmark on an older tree:
//
//	go test -run '^$' -bench ClientPublish -benchmem -count 5 ./bridge/
func BenchmarkClientPublish(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchClientPublish(b) })
	b.Run("hook", func(b *testing.B) {
		benchClientPublish(b, WithPublishHook(func(_ any, _ string, m msg) (msg, error) {
			m.N++
			return m, nil
		}))
	})
}

func benchClientPublish(b *testing.B, opts ...Option) {
	s := newServer(b, nil, append([]Option{WithAuthorize(allowAll), WithPublishRate(math.Inf(1), 1)}, opts...)...)
	cl := s.dial(b)
	const window = 64
	frame := func(i int) []byte {
		return []byte(`{"op":"pub","id":"p` + strconv.Itoa(i) + `","topic":"chat.lobby","data":{"text":"hi there"}}`)
	}
	b.ReportAllocs()
	b.ResetTimer()
	sent, read := 0, 0
	for read < b.N {
		for sent < b.N && sent-read < window {
			if err := cl.c.WriteMessage(websocket.TextMessage, frame(sent)); err != nil {
				b.Fatal(err)
			}
			sent++
		}
		if _, _, err := cl.c.ReadMessage(); err != nil {
			b.Fatal(err)
		}
		read++
	}
}
