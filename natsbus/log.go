package natsbus

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/whalesong/bus"
)

// natsLog is the bus.Log of one stream: Append publishes to it (publish.go),
// Follow reads it with a consumer of its own (follow.go).
type natsLog[T any] struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	cfg    config
	prefix string // cfg.prefix(): topic t is subject prefix+t

	undecodable atomic.Uint64 // events skipped because they did not decode

	loadOnce sync.Once
	loaded   chan struct{} // closed when a follower first caught up with the stream

	mu     sync.Mutex
	resume resumePoint // guarded by mu: where the last Follow stopped

	epoch atomic.Pointer[string] // the stream's incarnation, as a follower last read it (ids.go)
	ids   idBacklog              // ledger entries still to write (ids.go)

	followers atomic.Int32 // Follow calls running: whether Append can wait for the follower (ids.go)
}

// epochNow is the stream's epoch as a follower last read it ("" before).
func (l *natsLog[T]) epochNow() string {
	if e := l.epoch.Load(); e != nil {
		return *e
	}
	return ""
}

// resumePoint remembers the Nats-Msg-Id of the last message a follower
// read, so that the next Follow from there can tell a rewound stream.
type resumePoint struct {
	epoch string
	seq   uint64
	id    string
}

var _ bus.Log[int] = (*natsLog[int])(nil)

// newLog makes the Log of cfg's stream on nc, creating the stream or
// checking its configuration within ctx.
func newLog[T any](ctx context.Context, nc *nats.Conn, cfg config) (*natsLog[T], error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStream, err)
	}
	before := nc.LastError() // a permission refused from here on is New's (access.go)
	if err := ensureStream(ctx, js, cfg, apiRefused(nc, before)); err != nil {
		return nil, err
	}
	if err := ensureIDs(ctx, js, cfg, apiRefused(nc, before)); err != nil {
		return nil, err
	}
	if err := checkAccess(ctx, nc, cfg, before); err != nil {
		return nil, err
	}
	return &natsLog[T]{nc: nc, js: js, cfg: cfg, prefix: cfg.prefix(), loaded: make(chan struct{})}, nil
}

// caughtUp records that a follower has applied everything the stream held.
func (l *natsLog[T]) caughtUp() {
	l.loadOnce.Do(func() { close(l.loaded) })
}

func (l *natsLog[T]) saveResume(p resumePoint) {
	l.mu.Lock()
	l.resume = p
	l.mu.Unlock()
}

// resumeID is the Nats-Msg-Id of the message at from, when the last Follow
// stopped exactly there.
func (l *natsLog[T]) resumeID(from bus.Position) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.resume.epoch == from.Epoch && l.resume.seq == from.Seq {
		return l.resume.id
	}
	return ""
}

// Epoch asks the stream which incarnation it is now (bus.LogEpoch): a
// node's bus may still be in the previous one for a moment after the
// stream was recreated, and a client that saw the new one elsewhere must
// not be answered from the old. One stream info request; an error when the
// stream cannot be reached or does not exist.
func (l *natsLog[T]) Epoch(ctx context.Context) (string, error) {
	info, err := streamInfo(ctx, l.js, l.cfg.stream)
	if err != nil {
		return "", fmt.Errorf("%w: stream %s: %w", ErrStream, quote(l.cfg.stream), err)
	}
	return epochOf(info), nil
}
