package main

import (
	"context"
	"fmt"
	"testing"
)

// TestHistoryOnlyOfChatRooms: the chat's rules cover history pages as they
// do subscriptions: a room's page is served (what scrolling back reads),
// anything outside chat.* is forbidden.
func TestHistoryOnlyOfChatRooms(t *testing.T) {
	hs, b := newTestServer(t)
	var seqs []float64
	for i := range 5 {
		seq, err := b.Publish(context.Background(), "chat.lobby", Message{Nick: "ada", Text: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, float64(seq))
	}
	c := dialChat(t, hs, "ada")
	c.send(fmt.Sprintf(`{"op":"history","id":"h1","pattern":"chat.lobby","before":%d,"limit":2}`, int(seqs[4])))
	got := c.read()
	evs, _ := got["events"].([]any)
	if got["op"] != "page" || got["id"] != "h1" || got["more"] != true || len(evs) != 2 ||
		evs[0].(map[string]any)["seq"] != seqs[2] || evs[1].(map[string]any)["seq"] != seqs[3] {
		t.Errorf("history of chat.lobby: %v, want seqs %v, more", got, seqs[2:4])
	}
	for i, pattern := range []string{">", "chat.>", "news.>", "*.lobby"} {
		id := fmt.Sprint("h", i+2)
		c.send(fmt.Sprintf(`{"op":"history","id":%q,"pattern":%q}`, id, pattern))
		if got := c.read(); got["op"] != "error" || got["code"] != "forbidden" || got["id"] != id {
			t.Errorf("history of %s: %v, want error forbidden", pattern, got)
		}
	}
}
