package natsbus

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/whalesong/bus"
)

// New returns a bus whose events are the stream's: it creates the stream
// (or checks that the existing one fits the options), starts following it
// and returns once the bus holds everything the stream retains. ctx bounds
// New only. nc stays the caller's: closing the bus does not close it, and
// it must be made with ConnectOptions (New refuses, naming the option, a
// connection that can lose or resurrect publishes).
func New[T any](ctx context.Context, nc *nats.Conn, opts ...Option) (*bus.Bus[T], error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if err := checkConn(nc); err != nil {
		return nil, err
	}
	l, err := newLog[T](ctx, nc, cfg)
	if err != nil {
		return nil, err
	}
	b := bus.New[T](slices.Concat(cfg.busOpts, []bus.Option{bus.WithLog[T](l), bus.WithHistory(cfg.history), bus.WithHistoryTTL(cfg.ttl)})...)
	select {
	case <-l.loaded:
		return b, nil
	case <-ctx.Done():
		_ = b.Close()
		return nil, fmt.Errorf("%w: load stream %s: %w", ErrStream, quote(cfg.stream), ctx.Err())
	}
}

// ConnectOptions are the nats.Connect options a connection given to New
// needs: reconnect forever (the default gives up after 60 tries, about two
// minutes, and closes the connection for good), with no reconnect buffer (by
// default a publish made while disconnected is buffered and lands after the
// reconnect, even though it already returned an error), retrying quickly,
// and pinging often enough to notice a dead server in about 30 seconds.
// Add your own (servers, credentials, name) after them.
func ConnectOptions() []nats.Option {
	return []nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectBufSize(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.PingInterval(10 * time.Second),
		nats.MaxPingsOutstanding(3),
	}
}

// checkConn refuses a connection whose options can lose or resurrect
// publishes.
func checkConn(nc *nats.Conn) error {
	if nc == nil {
		return fmt.Errorf("%w: a nil *nats.Conn", ErrOption)
	}
	if nc.IsClosed() {
		return fmt.Errorf("%w: the connection is closed", ErrConnOption)
	}
	o := nc.Opts
	if !o.AllowReconnect {
		return fmt.Errorf("%w: NoReconnect: the connection closes for good at the first disconnect; use ConnectOptions", ErrConnOption)
	}
	if o.MaxReconnect >= 0 {
		return fmt.Errorf("%w: MaxReconnects is %d: the connection gives up after that many tries (about %v) and closes for good; pass nats.MaxReconnects(-1) (see ConnectOptions)",
			ErrConnOption, o.MaxReconnect, time.Duration(max(o.MaxReconnect, 1))*o.ReconnectWait)
	}
	if o.ReconnectBufSize != -1 {
		return fmt.Errorf("%w: ReconnectBufSize is %d: a publish made while reconnecting is buffered and can land after it returned an error; pass nats.ReconnectBufSize(-1) (see ConnectOptions)",
			ErrConnOption, o.ReconnectBufSize)
	}
	return nil
}
