package natsbus

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"

	"github.com/whalesong/bus"
)

const (
	defaultStream  = "WHALESONG"
	defaultHistory = 1024
	maxDedupWindow = 5 * time.Minute
	minTTL         = 100 * time.Millisecond // JetStream's smallest MaxAge
	maxReplicas    = 5                      // JetStream's largest stream
	maxStreamName  = 64                     // well under JetStream's limit: the name is also a subject token
)

// An Option configures New.
type Option func(*config)

type config struct {
	stream   string
	history  int
	ttl      time.Duration
	replicas int
	codec    Codec
	logger   *slog.Logger
	busOpts  []bus.Option
}

// WithStream names the JetStream stream (default "WHALESONG"). Its subjects
// are "<name>.>": topic t is subject "<name>.t". The name is also that
// subject's first token, so it must be a valid token: 1 to 64 bytes, no
// '.', '*', '>', '/', '\' or white space.
func WithStream(name string) Option { return func(c *config) { c.stream = name } }

// WithHistory keeps the newest n events of each topic, as bus.WithHistory
// (default 1024; a negative n counts as 0). It is the stream's
// MaxMsgsPerSubject; WithHistory(0) keeps one per subject in the stream
// (JetStream reads 0 as unlimited) and none in the bus.
func WithHistory(n int) Option { return func(c *config) { c.history = n } }

// WithHistoryTTL drops events older than d, as bus.WithHistoryTTL (default
// 0: no age limit). It is the stream's MaxAge and must be 0 or at least
// 100ms; the stream's deduplication window is then min(d, 5 minutes).
func WithHistoryTTL(d time.Duration) Option { return func(c *config) { c.ttl = d } }

// WithReplicas sets the stream's replicas (default 1; 1 to 5, 3 for a
// cluster that must survive the loss of a server).
func WithReplicas(n int) Option { return func(c *config) { c.replicas = n } }

// WithCodec sets how events are encoded in the stream (default JSON).
func WithCodec(c Codec) Option { return func(cf *config) { cf.codec = c } }

// WithLogger reports what the follower does that a user cannot see from
// the bus: events skipped because they do not decode (Warn, with a running
// count), a consumer recreated after a gap, a lost heartbeat or a reconnect
// (Info), a new epoch and a detected rewind (Warn). Default: no logging.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithBusOptions passes options to bus.New, such as bus.WithMaxRetained
// or bus.WithDedupWindow. The bus's history and TTL are natsbus's own
// WithHistory and WithHistoryTTL, whatever these say.
func WithBusOptions(opts ...bus.Option) Option {
	return func(c *config) { c.busOpts = append(c.busOpts, opts...) }
}

func newConfig(opts []Option) (config, error) {
	c := config{stream: defaultStream, history: defaultHistory, replicas: 1, codec: JSON{}}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	c.history = max(c.history, 0)
	c.ttl = max(c.ttl, 0)
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	return c, c.check()
}

func (c config) check() error {
	if err := checkStreamName(c.stream); err != nil {
		return err
	}
	if c.ttl > 0 && c.ttl < minTTL {
		return fmt.Errorf("%w: WithHistoryTTL(%v): JetStream's MaxAge is at least %v", ErrOption, c.ttl, minTTL)
	}
	if c.replicas < 1 || c.replicas > maxReplicas {
		return fmt.Errorf("%w: WithReplicas(%d): want 1 to %d", ErrOption, c.replicas, maxReplicas)
	}
	if c.codec == nil {
		return fmt.Errorf("%w: WithCodec(nil)", ErrOption)
	}
	return nil
}

func checkStreamName(name string) error {
	if name == "" || len(name) > maxStreamName {
		return fmt.Errorf("%w: WithStream(%s): want 1 to %d bytes", ErrOption, quote(name), maxStreamName)
	}
	if i := strings.IndexFunc(name, badNameRune); i >= 0 {
		return fmt.Errorf("%w: WithStream(%s): %q at byte %d", ErrOption, quote(name), name[i:i+1], i)
	}
	return nil
}

func badNameRune(r rune) bool {
	return strings.ContainsRune(".*>/\\", r) || unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar
}

// dedupWindow is the stream's Duplicates: how long a publish id is remembered.
func (c config) dedupWindow() time.Duration {
	if c.ttl > 0 {
		return min(c.ttl, maxDedupWindow)
	}
	return maxDedupWindow
}

// perSubject is the stream's MaxMsgsPerSubject: never 0, which JetStream
// reads as unlimited.
func (c config) perSubject() int64 { return int64(max(c.history, 1)) }

// prefix is what turns a topic into its subject.
func (c config) prefix() string { return c.stream + "." }

// livePrefix is what turns a topic into the subject on which the stream
// republishes it as it stores it (the followers' live feed).
func (c config) livePrefix() string { return "_whalesong." + c.stream + "." }
