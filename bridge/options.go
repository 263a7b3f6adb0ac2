package bridge

import (
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"time"
)

// The defaults of every option, as PROTOCOL.md documents them.
const (
	DefaultMaxMessageSize   = 64 << 10         // bytes per client frame
	DefaultMaxSubscriptions = 128              // per connection
	DefaultPublishRate      = 50.0             // publishes per second per connection
	DefaultPublishBurst     = 100              // publishes at once per connection
	DefaultMaxBacklog       = 4096             // undelivered events per connection before 4000
	DefaultBadFrames        = 30               // malformed frames per DefaultBadFramePeriod before 4001
	DefaultBadFramePeriod   = time.Minute      // the period of DefaultBadFrames
	DefaultDedupSize        = 16384            // publish ids remembered
	DefaultDedupAge         = 5 * time.Minute  // how long a publish id is remembered
	DefaultWriteTimeout     = 10 * time.Second // a socket write blocked this long drops the connection
	DefaultPublishTimeout   = 5 * time.Second  // a client publish waiting for room on the bus
)

// The clamps of absurd option values, as the options document them.
const (
	MaxMessageSizeLimit = 1 << 30   // WithMaxMessageSize above it counts as it
	MaxPublishBurst     = 1 << 30   // WithPublishRate's burst above it counts as it
	MaxWriteTimeout     = time.Hour // WithWriteTimeout above it counts as it
)

const (
	hardCapFactor = 4  // frames above factor*MaxMessageSize close with 1009
	floodFactor   = 10 // publishing above factor*rate (and burst) spends the bad-frame budget
)

// fanoutBuffer is the events a shared bus subscription may hold unread:
// how far publishers may run ahead of a fanout starved of CPU before they
// wait. Every event in it waits there, so in a flood it is latency that
// every client pays; too small, and the fanout finds it empty between
// publishes and its clients' frames carry fewer events each. Measured with
// cmd/wsload (BENCHMARKS.md, "Bridge over WebSocket"; 1,000 clients, 2,000
// events as fast as possible), the fanout taking what waits in one batch:
// 128 gave the most deliveries/s but a p99 1.8x centrifuge's, 32 a p99
// near centrifuge's but only 2.0x its deliveries/s, 48 about 2.5x the
// deliveries/s at 1.2x the p99.
const fanoutBuffer = 48

// Option configures a Bridge made by New.
type Option func(*config)

// Codec turns event data into the JSON embedded in events frames and client
// publish data back into T. Marshal must produce JSON: it is embedded
// verbatim in the frame.
type Codec interface {
	Marshal(v any) ([]byte, error)      // an event's data to the JSON of its frame
	Unmarshal(data []byte, v any) error // a client publish's data back into a *T
}

// jsonCodec is the default Codec: encoding/json.
type jsonCodec struct{}

func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// errPublishDenied is the default authorizer's answer to every publish.
var errPublishDenied = errors.New("clients may not publish (no WithAuthorize)")

type config struct {
	authenticate   func(r *http.Request) (any, error)
	authorize      func(identity any, a Action, topicOrPattern string) error
	origins        []string // normalised; nil: same host
	anyOrigin      bool
	maxMessageSize int64
	maxSubs        int
	pubRate        float64
	pubBurst       int
	codec          Codec
	customCodec    bool
	maxBacklog     int
	badFrames      int
	badFramePeriod time.Duration
	dedupSize      int
	dedupAge       time.Duration
	writeTimeout   time.Duration
	publishTimeout time.Duration
	publishHook    any // a func(any, string, T) (T, error); New checks T
	expiry         func(identity any) time.Time
	logger         *slog.Logger
}

func newConfig(opts []Option) config {
	c := config{
		maxMessageSize: DefaultMaxMessageSize,
		maxSubs:        DefaultMaxSubscriptions,
		pubRate:        DefaultPublishRate,
		pubBurst:       DefaultPublishBurst,
		codec:          jsonCodec{},
		maxBacklog:     DefaultMaxBacklog,
		badFrames:      DefaultBadFrames,
		badFramePeriod: DefaultBadFramePeriod,
		dedupSize:      DefaultDedupSize,
		dedupAge:       DefaultDedupAge,
		writeTimeout:   DefaultWriteTimeout,
		publishTimeout: DefaultPublishTimeout,
	}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if c.authorize == nil {
		c.authorize = defaultAuthorize
	}
	return c
}

// defaultAuthorize lets clients subscribe to anything and publish nothing.
func defaultAuthorize(_ any, a Action, _ string) error {
	if a == Subscribe {
		return nil
	}
	return errPublishDenied
}

// WithAuthenticate runs fn on every connection request before the WebSocket
// upgrade. An error answers 401 and no socket is opened; otherwise the
// identity is kept for the connection's life and passed to the authorizer.
// fn also runs for the plain GET with which the JS client asks why a
// handshake failed (the probe, PROTOCOL.md): a refused browser's attempt
// calls it twice, so count or rate-limit logins on the request's Upgrade
// header (websocket.IsWebSocketUpgrade) if that matters.
func WithAuthenticate(fn func(r *http.Request) (identity any, err error)) Option {
	return func(c *config) { c.authenticate = fn }
}

// WithAuthorize decides every subscribe pattern and publish topic of a
// connection; a non-nil error refuses it with code forbidden. The error's
// text reaches the client, as the error frame's message (`subscribe to
// "admin.>" denied: <text>`): write it for the user, and keep secrets out of
// it. Without it clients may subscribe to any pattern and publish nothing.
// Patterns can hold wildcards: see PatternWithin and the package doc before
// writing one.
func WithAuthorize(fn func(identity any, a Action, topicOrPattern string) error) Option {
	return func(c *config) { c.authorize = fn }
}

// WithAllowedOrigins replaces the default origin check (the Origin's
// host:port must equal the request's Host) with an exact list of origins
// such as "https://app.example.com:8443" (scheme and host compared without
// case, default ports implied); "*" allows any origin; an entry that is not
// an origin is ignored. A request without an Origin header (not a browser)
// is always let through to authentication.
func WithAllowedOrigins(origins ...string) Option {
	return func(c *config) {
		c.origins = c.origins[:0:0]
		for _, o := range origins {
			if o == "*" {
				c.anyOrigin = true
				continue
			}
			if n, ok := normalizeOrigin(o); ok {
				c.origins = append(c.origins, n)
			}
		}
	}
}

// WithMaxMessageSize sets the largest client frame, in bytes (default 64
// KiB). A larger frame is answered with too_large and spends one unit of the
// bad-frame budget; one above 4*n closes the connection with 1009, so that a
// client cannot make the server buffer arbitrary amounts. n < 1 keeps the
// default; n above MaxMessageSizeLimit (1 GiB) counts as that limit.
func WithMaxMessageSize(n int64) Option {
	return func(c *config) {
		if n > 0 {
			c.maxMessageSize = min(n, MaxMessageSizeLimit)
		}
	}
}

// WithPublishRate limits each connection to perSecond publishes on average
// with bursts of burst (default 50/s, burst 100). Over it a publish is
// answered rate_limited and not published; only publishing beyond 10 times
// that (rate and burst) spends the bad-frame budget. perSecond <= 0 (or NaN)
// allows only the burst, ever; +Inf removes the limit. burst < 1 counts as
// 1, above MaxPublishBurst (about a billion) as MaxPublishBurst.
func WithPublishRate(perSecond float64, burst int) Option {
	return func(c *config) {
		if math.IsNaN(perSecond) || perSecond < 0 {
			perSecond = 0
		}
		c.pubRate = perSecond
		c.pubBurst = min(max(burst, 1), MaxPublishBurst)
	}
}

// WithCodec sets how event data is encoded for clients and how client
// publish data is decoded (default encoding/json). Marshal must produce
// JSON; its output is checked with json.Valid once per event.
func WithCodec(codec Codec) Option {
	return func(c *config) {
		if codec != nil {
			c.codec, c.customCodec = codec, true
		}
	}
}

// WithMaxSubscriptions caps the live subscriptions of one connection
// (default 128); more are answered too_many_subscriptions. n < 1 keeps the
// default; any larger n is taken as it is (math.MaxInt: no cap).
func WithMaxSubscriptions(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.maxSubs = n
		}
	}
}

// WithMaxBacklog caps the events waiting to be written to one connection
// (default 4096). A client that falls further behind is closed with 4000
// "resume needed" and its queue is released at once; it reconnects and
// resumes from the last seq it saw. Neither publishers nor other clients
// ever wait for it. n < 1 keeps the default; any larger n is taken as it is
// (math.MaxInt: a slow client is never cut off, and its queue grows with
// what it has not read).
func WithMaxBacklog(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.maxBacklog = n
		}
	}
}

// WithBadFrameBudget lets a connection send n bad frames (bad_frame,
// unknown_op, too_large, and publishes beyond 10 times WithPublishRate and
// its burst) per period, refilled continuously, before it is closed with
// 4001 (default 30 per minute). A single bad frame never closes a
// connection, nor does a client that merely flushes a queue of publishes
// into its rate limit. n < 1 or period <= 0 keeps the default; any larger
// values are taken as they are (a budget of math.MaxInt per nanosecond
// never closes anything, one per math.MaxInt64 never refills).
func WithBadFrameBudget(n int, period time.Duration) Option {
	return func(c *config) {
		if n > 0 && period > 0 {
			c.badFrames, c.badFramePeriod = n, period
		}
	}
}

// WithDedupWindow sets how many client publish ids the bridge remembers
// (default 16384) and for how long (default 5 minutes). A publish retried
// with a remembered id is answered with the first attempt's seq and not
// published again. size < 1 or age <= 0 keeps that default; larger values
// are taken as they are (memory grows with the ids actually remembered,
// about 200 bytes each).
func WithDedupWindow(size int, age time.Duration) Option {
	return func(c *config) {
		if size > 0 {
			c.dedupSize = size
		}
		if age > 0 {
			c.dedupAge = age
		}
	}
}

// WithWriteTimeout bounds one socket write (default 10 s): a client that
// does not read for that long while the server writes is dropped. It also
// bounds how long Bridge.Close can wait for a stalled client. d <= 0 keeps
// the default; d above MaxWriteTimeout (an hour) counts as MaxWriteTimeout.
func WithWriteTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.writeTimeout = min(d, MaxWriteTimeout)
		}
	}
}

// WithPublishTimeout bounds how long a client publish may wait for room on
// the bus (Block subscribers that are full); past it the client gets
// unavailable (default 5 s). d <= 0 keeps the default; any larger d is
// taken as it is (Bridge.Close ends a waiting publish whatever d is).
func WithPublishTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.publishTimeout = d
		}
	}
}

// WithPublishHook runs fn for every client publish that WithAuthorize
// allowed, after the rate limit and before the bus sees it. fn gets the
// connection's identity, the topic and the decoded data, and returns the
// data to publish (stamp the sender from the identity, normalise, validate)
// or an error, which refuses the publish: the client gets code forbidden
// with the error's text as the message, and nothing is published. A
// panicking fn refuses too (code internal).
//
// fn runs once per publish that reaches the bus: a retry answered from the
// bridge's dedup window (WithDedupWindow) gets the first attempt's seq
// without running fn again. A refused attempt is not remembered, so its
// retry runs fn again. (A retry that lands on another node of a shared log
// runs that node's hook; the log's own dedup then stores the first one
// only.) fn runs on the connection's read loop: a slow fn delays that
// client's next frames, nobody else's.
//
// T must be the bus's event type: New panics otherwise.
func WithPublishHook[T any](fn func(identity any, topic string, data T) (T, error)) Option {
	return func(c *config) {
		c.publishHook = nil
		if fn != nil {
			c.publishHook = fn
		}
	}
}

// WithExpiry tells when an identity's credentials end: fn runs once per
// connection request, after WithAuthenticate, with the identity it
// returned. The zero time means never. A time already past refuses the
// request like a failed WithAuthenticate (401, and the probe's verdict
// unauthorized). Otherwise, at that time the connection is closed with
// 4002 "credentials expired": the client fetches fresh credentials (its
// url function), reconnects at once and resumes every subscription with
// nothing missed. The bridge keeps one heap of deadlines served by one
// goroutine and one timer, not a timer per connection: a connection with an
// expiry costs an 8-byte slot in it. fn runs on the request's goroutine;
// without WithExpiry no goroutine runs.
func WithExpiry(fn func(identity any) time.Time) Option {
	return func(c *config) { c.expiry = fn }
}

// WithLogger logs the life of connections to l: at Info each connection
// and each disconnect (its close code, and who closed: server, client or
// network), Kick and Reauthorize; at Warn each refused connection request
// (the reason: unavailable, origin, authentication or expired), each
// request refused on a connection (its error code: forbidden, too_large,
// rate_limited, too_many_subscriptions, ...) and each cut-off (slow, 4000;
// abuse, 4001). Nothing is logged per event. Refusals of one connection are
// logged at most 10 at once and then one per second; the next line logged
// says how many were left out ("suppressed"). Without WithLogger (or with
// a nil l) nothing is logged, not even to slog.Default.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = l }
}
