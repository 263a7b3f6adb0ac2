// Command chat is a small chat with rooms on a whalesong bus: every room is
// a topic chat.<room>, the page subscribes with the last 50 messages and
// resumes by itself after a dropped connection. Prometheus metrics of the
// bus and the bridge are at /metrics.
//
//	go run ./examples/chat            # http://localhost:8080
//	go run ./examples/chat -addr :9000
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/whalesong/bus"
)

// defaultHistory is how many messages each room keeps: the page shows the
// last 50 on join, and the rest lets a page that was offline for a while
// resume without a gap.
const defaultHistory = 500

func main() {
	addr := flag.String("addr", "localhost:8080", "address to listen on")
	history := flag.Int("history", defaultHistory, "messages kept per room for replay")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("chat: serving http://%s", ln.Addr())
	if err := serve(ctx, ln, *history); err != nil {
		log.Fatal(err)
	}
}

// serve runs the chat on ln until ctx ends, then shuts down: HTTP first,
// then every WebSocket (going-away, so pages reconnect elsewhere), then the
// bus.
func serve(ctx context.Context, ln net.Listener, history int) error {
	b := bus.New[Message](bus.WithHistory(history))
	defer b.Close()
	srv := newServer(b)
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}

	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()

	var err error
	select {
	case err = <-served:
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = hs.Shutdown(shutdown)
		if serr := <-served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
	}
	return errors.Join(err, srv.Close())
}
