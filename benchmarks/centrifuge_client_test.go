package benchmarks

import (
	"encoding/json"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	centrifugego "github.com/centrifugal/centrifuge-go"
	"github.com/whalesong/bus/benchmarks/internal/wspeer"
)

// TestCentrifugeGoClient checks the centrifuge server of cmd/wsload
// (internal/wspeer) with centrifuge's own Go client (JSON protocol): it
// connects, subscribes and gets a publication, as the load's raw clients
// do, so the comparison runs centrifuge as its users would.
func TestCentrifugeGoClient(t *testing.T) {
	srv, err := wspeer.NewServer("centrifuge", wspeer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler)
	defer waitNoGoroutine(t, "github.com/centrifugal/centrifuge", 10*time.Second)
	defer srv.Close()
	defer hs.Close()
	c := centrifugego.NewJsonClient("ws"+strings.TrimPrefix(hs.URL, "http"), centrifugego.Config{})
	defer c.Close()
	sub, err := c.NewSubscription(wspeer.Topic)
	if err != nil {
		t.Fatal(err)
	}
	subscribed := make(chan struct{}, 1)
	got := make(chan []byte, 1)
	sub.OnSubscribed(func(centrifugego.SubscribedEvent) { subscribed <- struct{}{} })
	sub.OnPublication(func(e centrifugego.PublicationEvent) { got <- e.Data })
	if err := c.Connect(); err != nil {
		t.Fatal(err)
	}
	if err := sub.Subscribe(); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(10 * time.Second)
	select {
	case <-subscribed:
	case <-timeout:
		t.Fatal("not subscribed")
	}
	want := wspeer.Event{Sent: time.Now().UnixNano(), I: 7, Pad: wspeer.Pad}
	if err := srv.Publish(want); err != nil {
		t.Fatal(err)
	}
	select {
	case data := <-got:
		var ev wspeer.Event
		if err := json.Unmarshal(data, &ev); err != nil || ev != want {
			t.Fatalf("got %s (%v), want %+v", data, err, want)
		}
	case <-timeout:
		t.Fatal("no publication")
	}
}

// waitNoGoroutine waits until no goroutine's stack mentions frame.
// centrifuge's Shutdown does not wait for all it stops: a channel whose
// last subscriber left is unsubscribed from the broker by a job that
// first sleeps a second, and the connections' goroutines end after the
// sockets close. Nothing signals their end, so this looks again.
func waitNoGoroutine(t *testing.T, frame string, limit time.Duration) {
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(limit); ; {
		n := runtime.Stack(buf, true)
		if !strings.Contains(string(buf[:n]), frame) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("goroutines of %s still running after %v", frame, limit)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
