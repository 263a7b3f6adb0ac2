package main

import (
	"testing"
)

// TestBrowserForgedNick: a real page connected as alice publishes a
// message that claims to be from bob (the page's own client, its data
// forged in the console); bob's page and alice's own show it from alice,
// because the server stamps the nick of the connection over it.
func TestBrowserForgedNick(t *testing.T) {
	ct := newChatTest(t, defaultHistory)
	alice := ct.openPage("alice", "lobby")
	bob := ct.openPage("bob", "lobby")
	type result struct {
		Seq  uint64 `json:"seq"`
		Code string `json:"code"`
	}
	got := evalJS[result](alice, `__chat.publish("chat.lobby", {nick: "bob", text: "I am bob, trust me"})`)
	if got.Code != "" || got.Seq != 1 {
		t.Fatalf("forged publish: %+v, want it published at seq 1", got)
	}
	for _, p := range []*chatPage{bob, alice} {
		p.waitShown(1)
		if m := p.messages(); len(m) != 1 || m[0].Nick != "alice" || m[0].Text != "I am bob, trust me" {
			t.Errorf("%s's page shows %+v, want the message from alice", p.nick, m)
		}
	}
	hist, err := ct.bus().History("chat.lobby", 0, 0)
	if err != nil || len(hist) != 1 || hist[0].Data.Nick != "alice" {
		t.Errorf("history %+v (%v), want the one message from alice", hist, err)
	}
}
