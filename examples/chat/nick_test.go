package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestForgedNickIsStamped: alice publishes a message that claims to be
// from bob; every subscriber, and the history, see it from alice.
func TestForgedNickIsStamped(t *testing.T) {
	hs, b := newTestServer(t)
	sub, err := b.Subscribe("chat.lobby")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	reader := dialChat(t, hs, "carol")
	reader.send(`{"op":"sub","id":"r1","sub":"s1","pattern":"chat.lobby"}`)
	if got := reader.read(); got["op"] != "subscribed" {
		t.Fatalf("sub: %v", got)
	}
	alice := dialChat(t, hs, "alice")
	alice.send(`{"op":"pub","id":"00000000-0000-4000-8000-000000000001","topic":"chat.lobby","data":{"nick":"bob","text":"  I am bob  "}}`)
	if got := alice.read(); got["op"] != "published" {
		t.Fatalf("pub: %v", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ev, err := sub.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Data != (Message{Nick: "alice", Text: "I am bob"}) {
		t.Fatalf("the bus got %+v, want it from alice, trimmed", ev.Data)
	}
	frame := reader.read()
	events, _ := frame["events"].([]any)
	if len(events) != 1 {
		t.Fatalf("reader got %v", frame)
	}
	data, _ := events[0].(map[string]any)["data"].(map[string]any)
	if data["nick"] != "alice" || data["text"] != "I am bob" {
		t.Fatalf("the page of carol shows %v, want it from alice", data)
	}
}

// TestStampNick: the hook signs every message with the connection's nick
// and refuses an empty or overlong text.
func TestStampNick(t *testing.T) {
	tests := []struct {
		in   Message
		want Message
		err  error
	}{
		{Message{Nick: "bob", Text: "hi"}, Message{Nick: "alice", Text: "hi"}, nil},
		{Message{Text: " \t hi \n"}, Message{Nick: "alice", Text: "hi"}, nil},
		{Message{Nick: "alice", Text: "   "}, Message{}, errBadText},
		{Message{Text: strings.Repeat("é", maxText)}, Message{Nick: "alice", Text: strings.Repeat("é", maxText)}, nil},
		{Message{Text: strings.Repeat("é", maxText+1)}, Message{}, errBadText},
	}
	for _, tt := range tests {
		got, err := stampNick("alice", "chat.lobby", tt.in)
		if !errors.Is(err, tt.err) || (err == nil && got != tt.want) {
			t.Errorf("stampNick(%.20q) = %+v, %v; want %+v, %v", tt.in.Text, got, err, tt.want, tt.err)
		}
	}
}
