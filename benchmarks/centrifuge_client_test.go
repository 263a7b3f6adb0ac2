package benchmarks

import (
	"encoding/json"
	"testing"
	"time"

	centrifugego "github.com/centrifugal/centrifuge-go"
)

// TestCentrifugeGoClient checks the centrifuge server of
// BenchmarkBridgeVsCentrifuge with centrifuge's own Go client (JSON
// protocol): it connects, subscribes and gets a publication as the
// benchmark's raw clients do.
func TestCentrifugeGoClient(t *testing.T) {
	s := newCentrifugeServer(t)
	defer s.close()
	c := centrifugego.NewJsonClient(s.url, centrifugego.Config{})
	defer c.Close()
	sub, err := c.NewSubscription(wsTopic)
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
	want := wsEvent{Sent: time.Now().UnixNano(), I: 7, Pad: wsPad}
	if err := s.publish(want); err != nil {
		t.Fatal(err)
	}
	select {
	case data := <-got:
		var ev wsEvent
		if err := json.Unmarshal(data, &ev); err != nil || ev != want {
			t.Fatalf("got %s (%v), want %+v", data, err, want)
		}
	case <-timeout:
		t.Fatal("no publication")
	}
}
