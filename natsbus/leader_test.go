package natsbus

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/whalesong/bus"
	"github.com/whalesong/bus/natsbus/internal/natstest"
)

// expiredStream publishes n events to topic "t" through l (whose stream has
// a TTL) and waits until the stream has dropped them all: a consumer made
// then has nothing to deliver below the stream's last seq.
func expiredStream(t *testing.T, l *natsLog[int], n int) {
	t.Helper()
	appendN(t, l, "t", n)
	waitFor(t, "the events to expire", func() bool {
		st := streamState(t, l.nc, defaultStream).State
		return st.Msgs == 0 && st.LastSeq == uint64(n)
	})
}

// caught is the first Caught record in recs, if any.
func caught[T any](recs []bus.Record[T]) (bus.Record[T], bool) {
	for _, r := range recs {
		if r.Caught {
			return r, true
		}
	}
	return bus.Record[T]{}, false
}

// A consumer that stops short of the stream's last seq because the events
// after the cursor are gone (here, expired) is not held back by the check
// with the stream leader: the leader has nothing there, so the follower
// goes live up to the last seq and the bus counts those seqs as deleted;
// the next event comes live.
func TestShortCatchUpOverDeletedEvents(t *testing.T) {
	noLeaks(t)
	_, nc := single(t)
	const n = 10
	l := testLog[int](t, nc, WithHistoryTTL(200*time.Millisecond))
	expiredStream(t, l, n)

	f := &follower[int]{l: l, ctx: context.Background()}
	if next, found, err := f.leaderNext(0); err != nil || found {
		t.Fatalf("leaderNext(0) on an empty stream = %d, %v, %v; want not found", next, found, err)
	}

	r := follow(t, testLog[int](t, connect(t, nc.ConnectedUrl()), WithHistoryTTL(200*time.Millisecond)))
	recs := r.wait(t, "a Caught record", func(recs []bus.Record[int]) bool { _, ok := caught(recs); return ok })
	if c, _ := caught(recs); c.Head != n || len(events(recs)) != 0 {
		t.Fatalf("caught up at head %d with %d events, want head %d and none: %s", c.Head, len(events(recs)), n, tail(recs, 5))
	}
	appendN(t, l, "t", 1)
	if got := seqs(r.waitSeq(t, n+1)); len(got) != 1 || got[0] != n+1 {
		t.Fatalf("events after going live: %v, want [%d]", got, n+1)
	}
	if next, found, err := f.leaderNext(0); err != nil || !found || next != n+1 {
		t.Fatalf("leaderNext(0) = %d, %v, %v; want %d", next, found, err, n+1)
	}
}

// When the stream leader does not answer the check, the follower takes
// nothing for deleted: it starts over, and goes live only once the leader
// answers. Here the account may not send the check (a permission), until a
// reload allows it.
func TestShortCatchUpWithoutTheLeadersAnswer(t *testing.T) {
	noLeaks(t)
	perms := func(deny ...string) func(*server.Options) {
		return func(o *server.Options) {
			o.Users = []*server.User{
				{Username: "admin", Password: "a"},
				{Username: "bus", Password: "b", Permissions: &server.Permissions{
					Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: deny},
				}},
			}
		}
	}
	quiet := nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}) // the violations are expected
	s := natstest.StartWith(t, perms("$JS.API.STREAM.MSG.GET.>"))
	const n = 10
	admin := testLog[int](t, connect(t, s.URL(), nats.UserInfo("admin", "a"), quiet), WithHistoryTTL(200*time.Millisecond))
	expiredStream(t, admin, n)

	sink := newLogSink()
	r := follow(t, testLog[int](t, connect(t, s.URL(), nats.UserInfo("bus", "b"), quiet),
		WithHistoryTTL(200*time.Millisecond), WithLogger(slog.New(sink))))
	sink.wait(t, "session ended", errNoLeaderAnswer.Error())
	if recs := r.snapshot(); len(recs) == 0 {
		t.Fatal("no record from the session that asked the leader")
	} else if c, ok := caught(recs); ok {
		t.Fatalf("caught up at head %d without the leader's answer: %s", c.Head, tail(recs, 5))
	}

	s.Reload(perms())
	recs := r.wait(t, "a Caught record", func(recs []bus.Record[int]) bool { _, ok := caught(recs); return ok })
	if c, _ := caught(recs); c.Head != n || len(events(recs)) != 0 {
		t.Fatalf("caught up at head %d with %d events, want head %d and none: %s", c.Head, len(events(recs)), n, tail(recs, 5))
	}
}

func TestParseMsgGet(t *testing.T) {
	for _, tc := range []struct {
		in    string
		seq   uint64
		found bool
		err   bool
	}{
		{`{"type":"io.nats.jetstream.api.v1.stream_msg_get_response","message":{"subject":"W.t","seq":42,"data":"MQ==","time":"2026-12-01T00:00:00Z"}}`, 42, true, false},
		{`{"type":"io.nats.jetstream.api.v1.stream_msg_get_response","error":{"code":404,"err_code":10037,"description":"no message found"}}`, 0, false, false},
		{`{"error":{"code":503,"err_code":10008,"description":"JetStream system temporarily unavailable"}}`, 0, false, true},
		{`{"error":{"code":404,"err_code":10059,"description":"stream not found"}}`, 0, false, true},
		{`{"type":"io.nats.jetstream.api.v1.stream_msg_get_response"}`, 0, false, true},
		{`{"message":{"seq":0}}`, 0, false, true},
		{`{"message":{"seq":-1}}`, 0, false, true},
		{`not json`, 0, false, true},
		{``, 0, false, true},
	} {
		seq, found, err := parseMsgGet([]byte(tc.in))
		if seq != tc.seq || found != tc.found || (err != nil) != tc.err {
			t.Errorf("parseMsgGet(%s) = %d, %v, %v; want %d, %v, error %v", tc.in, seq, found, err, tc.seq, tc.found, tc.err)
		}
		if err != nil && !errors.Is(err, errNoLeaderAnswer) {
			t.Errorf("parseMsgGet(%s): %v does not wrap errNoLeaderAnswer", tc.in, err)
		}
	}
}

// Whatever comes back, parseMsgGet either finds a seq, finds none, or
// says there was no usable answer: never a panic, never "found" seq 0.
func FuzzParseMsgGet(f *testing.F) {
	f.Add([]byte(`{"message":{"seq":42}}`))
	f.Add([]byte(`{"error":{"code":404,"err_code":10037}}`))
	f.Add([]byte(`{"error":{"code":404,"err_code":10037},"message":{"seq":3}}`))
	f.Add([]byte(`{"error":null,"message":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		seq, found, err := parseMsgGet(data)
		switch {
		case err != nil && (found || seq != 0 || !errors.Is(err, errNoLeaderAnswer)):
			t.Fatalf("error %v with %d, %v", err, seq, found)
		case err == nil && found != (seq > 0):
			t.Fatalf("found %v with seq %d", found, seq)
		}
	})
}
