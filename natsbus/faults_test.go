package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/whalesong/bus"
)

// An R1 server that comes back with an older copy of its store (a crash
// before its last writes reached the disk) has the same Created: without a
// check, seqs this node read would be reused for other events. Both ways a
// rewind shows are detected and make a new epoch for every node: the
// stream ends below the cursor, or the message at the cursor is another.
func TestRewoundStreamIsANewEpoch(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after int // events published to the old copy before the follower is back
	}{{"ends below the cursor", 0}, {"another message at the cursor", 7}} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := single(t)
			p := natstestProxy(t, s.URL())
			l := testLog[int](t, connect(t, p.URL()))
			r := follow(t, l)
			waitLoaded(t, l)
			appendN(t, l, "a", 5)
			old := r.waitSeq(t, 5)[0].Epoch
			s.Shutdown()
			snap := t.TempDir()
			copyDir(t, s.StoreDir(), snap)
			s.Restart()
			appendN(t, l, "a", 5)
			r.waitSeq(t, 10)
			p.Down()
			s.Shutdown()
			if err := os.RemoveAll(s.StoreDir()); err != nil {
				t.Fatal(err)
			}
			copyDir(t, snap, s.StoreDir())
			s.Restart()
			dc := connect(t, s.URL())
			direct := testLog[int](t, dc)
			if epochOf(streamState(t, dc, defaultStream)) != old {
				t.Fatal("the restored copy has another Created: not a rewind")
			}
			appendN(t, direct, "b", tc.after)
			p.Up()
			recs := r.wait(t, "the new epoch's events", func(recs []bus.Record[int]) bool {
				ev := events(recs)
				last := ev[len(ev)-1]
				return last.Epoch != old && last.Event.Seq == uint64(5+tc.after)
			})
			i := slices.IndexFunc(recs, func(rec bus.Record[int]) bool { return rec.Epoch != old })
			if recs[i].Event.Seq != 0 {
				t.Fatalf("the new epoch began with an event: %s", tail(recs[:i+1], 2))
			}
			checkContiguous(t, "old epoch", recs[:i], 1, 10)
			checkContiguous(t, "new epoch", recs[i:], 1, uint64(5+tc.after))
			if epochOf(streamState(t, dc, defaultStream)) == old {
				t.Fatal("the stream's epoch did not change for other nodes")
			}
		})
	}
}

func copyDir(t testing.TB, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		dst := filepath.Join(to, rel)
		if info.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, info.Mode())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// An event the codec cannot decode is handed over as lost (counted), so
// that the bus can count it against its topic; the events around it are
// applied.
func TestUndecodableEventIsSkipped(t *testing.T) {
	_, nc := single(t)
	l := testLog[int](t, nc)
	r := follow(t, l)
	waitLoaded(t, l)
	appendN(t, l, "a", 2)
	js, _ := jetstream.New(nc)
	if _, err := js.Publish(context.Background(), defaultStream+".a", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, "a", 2)
	recs := r.waitSeq(t, 5)
	var got []uint64
	lost := 0
	for _, rec := range recs {
		switch {
		case rec.Lost:
			if rec.Event.Seq != 3 || rec.Event.Topic != "a" {
				t.Fatalf("lost record %+v, want seq 3 on a", rec)
			}
			lost++
		case rec.Event.Seq != 0:
			got = append(got, rec.Event.Seq)
		}
	}
	if len(got) != 4 || got[2] != 4 || lost != 1 || l.undecodable.Load() != 1 {
		t.Fatalf("seqs %v, %d lost, undecodable %d; want 3 handed over as lost and counted", got, lost, l.undecodable.Load())
	}
}

// A follower whose consumer vanishes while it catches up (deleted by an
// operator) makes another and misses nothing; one whose consumer falls
// silent (the network stalls) notices within two heartbeats and does the
// same. The follower is held in its catch-up by an apply that waits, with
// more events than it reads ahead still on the server.
func TestLostConsumerIsReplaced(t *testing.T) {
	const n = readAhead + 1000
	t.Run("deleted", func(t *testing.T) {
		_, nc := single(t)
		sink := newLogSink()
		l := testLog[int](t, nc, WithLogger(slog.New(sink)), WithHistory(n))
		appendN(t, l, "a", n)
		r, held, release := gatedFollow(t, l, 10)
		<-held
		js, _ := jetstream.New(nc)
		s, err := js.Stream(context.Background(), defaultStream)
		if err != nil {
			t.Fatal(err)
		}
		deleted := 0
		for name := range s.ConsumerNames(context.Background()).Name() {
			if err := s.DeleteConsumer(context.Background(), name); err != nil {
				t.Fatal(err)
			}
			deleted++
		}
		if deleted != 1 {
			t.Fatalf("deleted %d consumers, want the follower's one", deleted)
		}
		release()
		sink.wait(t, "session ended", "consumer status") // 409 Consumer Deleted, or 503 to the next pull
		checkContiguous(t, "follower", r.waitSeq(t, n), 1, n)
	})
	t.Run("silent", func(t *testing.T) {
		s, nc := single(t)
		p := natstestProxy(t, s.URL())
		sink := newLogSink()
		l := testLog[int](t, connect(t, p.URL()), WithLogger(slog.New(sink)), WithHistory(n))
		appendN(t, testLog[int](t, nc, WithHistory(n)), "a", n)
		r, held, release := gatedFollow(t, l, 10)
		<-held
		p.Pause()
		release()
		sink.wait(t, "session ended", "no heartbeat")
		p.Resume()
		checkContiguous(t, "follower", r.waitSeq(t, n), 1, n)
	})
}

// New refuses a connection that can lose or resurrect publishes, naming
// the option, and bad options, before it touches the server.
func TestNewRefusesUnsafeConnections(t *testing.T) {
	s, _ := single(t)
	for _, tc := range []struct {
		name string
		opts []nats.Option
		want string
	}{
		{"default options", nil, "MaxReconnects"},
		{"reconnect buffer", []nats.Option{nats.MaxReconnects(-1)}, "ReconnectBufSize"},
		{"no reconnect", []nats.Option{nats.NoReconnect(), nats.ReconnectBufSize(-1)}, "NoReconnect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := nats.Connect(s.URL(), tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			_, err = New[int](context.Background(), nc)
			if !errors.Is(err, ErrConnOption) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v; want ErrConnOption naming %s", err, tc.want)
			}
		})
	}
	closed := connect(t, s.URL())
	closed.Close()
	if _, err := New[int](context.Background(), closed); !errors.Is(err, ErrConnOption) {
		t.Fatalf("a closed connection: %v", err)
	}
	if _, err := New[int](context.Background(), nil); !errors.Is(err, ErrOption) {
		t.Fatalf("a nil connection: %v", err)
	}
	nc := connect(t, s.URL())
	for _, o := range []Option{WithStream("a.b"), WithStream(""), WithStream("a b"), WithStream(strings.Repeat("x", 65)),
		WithHistoryTTL(50e6), WithReplicas(0), WithReplicas(6), WithCodec(nil)} {
		if _, err := New[int](context.Background(), nc, o); !errors.Is(err, ErrOption) {
			t.Errorf("a bad option: %v, want ErrOption", err)
		}
	}
}

// An existing id ledger that cannot keep ids for the dedup window (memory
// storage, a count or size limit, discard new, a shorter window, more than
// one message per id) is refused by name; one that keeps them longer fits.
func TestIDLedgerMismatch(t *testing.T) {
	_, nc := single(t)
	js, _ := jetstream.New(nc)
	for i, tc := range []struct {
		edit func(*jetstream.StreamConfig)
		want string // "" fits
	}{
		{func(c *jetstream.StreamConfig) { c.Storage = jetstream.MemoryStorage }, "storage"},
		{func(c *jetstream.StreamConfig) { c.MaxMsgs = 10 }, "max_msgs"},
		{func(c *jetstream.StreamConfig) { c.MaxBytes = 1 << 20 }, "max_bytes"},
		{func(c *jetstream.StreamConfig) { c.Discard = jetstream.DiscardNew }, "discard"},
		{func(c *jetstream.StreamConfig) { c.MaxAge, c.Duplicates = time.Minute, time.Minute }, "max_age"},
		{func(c *jetstream.StreamConfig) { c.MaxMsgsPerSubject = 2 }, "max_msgs_per_subject"},
		{func(c *jetstream.StreamConfig) { c.DenyPurge = false }, "deny_purge"},
		{func(c *jetstream.StreamConfig) { c.MaxAge, c.Duplicates = time.Hour, time.Hour }, ""},
	} {
		// A ledger of its own each, none deleted: the server removes an
		// account's store directory after its last stream is deleted, and a
		// stream made meanwhile fails ("could not create storage directory").
		cfg, _ := newConfig([]Option{WithStream(fmt.Sprintf("LEDGER%d", i))})
		want := cfg.idsStreamConfig()
		tc.edit(&want)
		if _, err := js.CreateStream(context.Background(), want); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		err := ensureIDs(context.Background(), js, cfg, func() error { return nil })
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("a ledger that keeps ids longer: %v", err)
		case tc.want != "" && (!errors.Is(err, ErrStreamMismatch) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("a ledger with %s changed: %v; want ErrStreamMismatch naming it", tc.want, err)
		}
	}
}

// A stream whose configuration disagrees with the options is an error
// that names the field; natsbus never changes it.
func TestStreamMismatch(t *testing.T) {
	_, nc := single(t)
	_ = testLog[int](t, nc, WithHistory(10))
	for _, tc := range []struct {
		opts []Option
		want string
	}{
		{[]Option{WithHistory(20)}, "max_msgs_per_subject"},
		{[]Option{WithHistory(10), WithHistoryTTL(10e9)}, "max_age"},
		{[]Option{WithHistory(10), WithReplicas(3)}, "num_replicas"},
	} {
		cfg, _ := newConfig(tc.opts)
		_, err := newLog[int](context.Background(), nc, cfg)
		if !errors.Is(err, ErrStreamMismatch) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v; want ErrStreamMismatch naming %s", tc.opts, err, tc.want)
		}
	}
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "HAND", Subjects: []string{"HAND.>"}}); err != nil {
		t.Fatal(err)
	}
	cfg, _ := newConfig([]Option{WithStream("HAND")})
	_, err := newLog[int](context.Background(), nc, cfg)
	for _, want := range []string{"deny_delete", "deny_purge", "republish", "max_msgs_per_subject"} {
		if !errors.Is(err, ErrStreamMismatch) || !strings.Contains(err.Error(), want) {
			t.Errorf("a hand-made stream: %v; want ErrStreamMismatch naming %s", err, want)
		}
	}
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "ALL", Subjects: []string{"OTHER.>"}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3e9)
	defer cancel()
	cfg, _ = newConfig([]Option{WithStream("R3"), WithReplicas(3)})
	if _, err := newLog[int](ctx, nc, cfg); !errors.Is(err, ErrStream) || ctx.Err() != nil {
		t.Errorf("R3 on one server: %v; want ErrStream", err)
	}
}

// Live copies lost (a full buffer while apply was slow) are read from the
// stream again: nothing is missing, nothing is twice.
func TestLostLiveCopiesAreReadAgain(t *testing.T) {
	saved := liveBuffer
	liveBuffer = 16
	defer func() { liveBuffer = saved }()
	_, nc := single(t)
	sink := newLogSink()
	l := testLog[int](t, nc, WithLogger(slog.New(sink)))
	r, held, release := gatedFollow(t, l, 10)
	waitLoaded(t, l)
	appendN(t, l, "a", 10)
	<-held
	appendN(t, l, "a", 190)
	release()
	checkContiguous(t, "follower", r.waitSeq(t, 200), 1, 200)
	sink.wait(t, "catching up")
}

// Which JetStream answers New waits out (within its ctx) and which end it
// at once.
func TestTransientErrors(t *testing.T) {
	api := func(code, errCode int) error {
		return fmt.Errorf("create: %w", &jetstream.APIError{Code: code, ErrorCode: jetstream.ErrorCode(errCode)})
	}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"no answer", context.DeadlineExceeded, true},
		{"stream not found", api(404, int(jetstream.JSErrCodeStreamNotFound)), true},
		{"JetStream unavailable", api(503, 10008), true},
		{"no suitable peers (a peer offline)", api(400, 10005), true},
		{"replicas on a single server", api(500, errCodeReplicasUnsupported), false},
		{"a bad stream config", api(400, 10025), false},
	} {
		if got := transient(tc.err); got != tc.want {
			t.Errorf("%s: transient %v, want %v", tc.name, got, tc.want)
		}
	}
}
