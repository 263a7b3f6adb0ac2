package bridge

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	bus "github.com/whalesong/bus"
	"golang.org/x/time/rate"
)

// TestAbsurdOptionsAreClamped gives every numeric option its extremes: each
// ends at its documented value, never a panic or an overflow.
func TestAbsurdOptionsAreClamped(t *testing.T) {
	def := newConfig(nil)
	tests := []struct {
		name string
		opt  Option
		got  func(c config) any
		want any
	}{
		{"message size max", WithMaxMessageSize(math.MaxInt64), func(c config) any { return c.maxMessageSize }, int64(MaxMessageSizeLimit)},
		{"message size min", WithMaxMessageSize(math.MinInt64), func(c config) any { return c.maxMessageSize }, int64(DefaultMaxMessageSize)},
		{"rate NaN", WithPublishRate(math.NaN(), 5), func(c config) any { return c.pubRate }, 0.0},
		{"rate -Inf", WithPublishRate(math.Inf(-1), 5), func(c config) any { return c.pubRate }, 0.0},
		{"rate +Inf", WithPublishRate(math.Inf(1), 5), func(c config) any { return c.pubRate }, math.Inf(1)},
		{"burst max", WithPublishRate(1, math.MaxInt), func(c config) any { return c.pubBurst }, MaxPublishBurst},
		{"burst min", WithPublishRate(1, math.MinInt), func(c config) any { return c.pubBurst }, 1},
		{"subscriptions max", WithMaxSubscriptions(math.MaxInt), func(c config) any { return c.maxSubs }, math.MaxInt},
		{"subscriptions min", WithMaxSubscriptions(math.MinInt), func(c config) any { return c.maxSubs }, DefaultMaxSubscriptions},
		{"backlog max", WithMaxBacklog(math.MaxInt), func(c config) any { return c.maxBacklog }, math.MaxInt},
		{"backlog min", WithMaxBacklog(math.MinInt), func(c config) any { return c.maxBacklog }, DefaultMaxBacklog},
		{"bad frames max", WithBadFrameBudget(math.MaxInt, math.MaxInt64), func(c config) any { return [2]any{c.badFrames, c.badFramePeriod} }, [2]any{math.MaxInt, time.Duration(math.MaxInt64)}},
		{"bad frames min", WithBadFrameBudget(math.MinInt, math.MinInt64), func(c config) any { return [2]any{c.badFrames, c.badFramePeriod} }, [2]any{DefaultBadFrames, DefaultBadFramePeriod}},
		{"dedup max", WithDedupWindow(math.MaxInt, math.MaxInt64), func(c config) any { return [2]any{c.dedupSize, c.dedupAge} }, [2]any{math.MaxInt, time.Duration(math.MaxInt64)}},
		{"dedup min", WithDedupWindow(math.MinInt, math.MinInt64), func(c config) any { return [2]any{c.dedupSize, c.dedupAge} }, [2]any{DefaultDedupSize, DefaultDedupAge}},
		{"write timeout max", WithWriteTimeout(math.MaxInt64), func(c config) any { return c.writeTimeout }, MaxWriteTimeout},
		{"write timeout min", WithWriteTimeout(math.MinInt64), func(c config) any { return c.writeTimeout }, DefaultWriteTimeout},
		{"publish timeout max", WithPublishTimeout(math.MaxInt64), func(c config) any { return c.publishTimeout }, time.Duration(math.MaxInt64)},
		{"publish timeout min", WithPublishTimeout(math.MinInt64), func(c config) any { return c.publishTimeout }, DefaultPublishTimeout},
	}
	for _, tt := range tests {
		c := newConfig([]Option{tt.opt})
		if got := tt.got(c); fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
		if tt.name != "message size max" && tt.name != "message size min" && c.maxMessageSize != def.maxMessageSize {
			t.Errorf("%s changed the message size", tt.name)
		}
	}
	// The hard cap and the flood limit are multiples: they must not
	// overflow either.
	c := newConfig([]Option{WithMaxMessageSize(math.MaxInt64), WithPublishRate(math.MaxFloat64, math.MaxInt)})
	if hc := c.maxMessageSize * hardCapFactor; hc <= 0 || hc < c.maxMessageSize {
		t.Errorf("hard cap %d overflowed", hc)
	}
	if fb := floodFactor * c.pubBurst; fb <= 0 {
		t.Errorf("flood burst %d overflowed", fb)
	}
	huge := math.MaxFloat64
	for _, r := range []float64{huge, math.Inf(1), floodFactor * huge} {
		if l := perSecond(r); l != rate.Inf {
			t.Errorf("perSecond(%g) = %v, want rate.Inf", r, l)
		}
	}
}

// TestAbsurdOptionsServe runs a bridge with every numeric option at its
// largest, then at its smallest useful, and checks that it serves as each
// option's doc says.
func TestAbsurdOptionsServe(t *testing.T) {
	t.Run("largest", func(t *testing.T) {
		s := newServer(t, nil, WithAuthorize(allowAll),
			WithMaxMessageSize(math.MaxInt64), WithPublishRate(math.Inf(1), math.MaxInt),
			WithMaxSubscriptions(math.MaxInt), WithMaxBacklog(math.MaxInt),
			WithBadFrameBudget(math.MaxInt, 1), WithDedupWindow(math.MaxInt, math.MaxInt64),
			WithWriteTimeout(math.MaxInt64), WithPublishTimeout(math.MaxInt64))
		cl := s.dial(t)
		cl.sub("s", "t", map[string]any{"last": int64(math.MaxInt64)})
		// Frames above the default size, publishes far above the default
		// rate and burst.
		big := strings.Repeat("x", 2*DefaultMaxMessageSize)
		for i := range 300 {
			cl.send(fmt.Sprintf(`{"op":"pub","id":"p%d","topic":"t","data":{"text":%q}}`, i, big[:i%2*len(big)]))
			if f := cl.expect("published"); f.ID != fmt.Sprint("p", i) {
				t.Fatalf("publish %d: %+v", i, f)
			}
		}
		cl.send(`{"op":"pub","id":"p0","topic":"t","data":{}}`) // remembered for ~292 years
		if f := cl.expect("published"); f.Seq != 1 {
			t.Fatalf("retry: %+v", f)
		}
		for range 100 { // a budget of MaxInt per nanosecond never runs out
			cl.send(`junk`)
			cl.expect("error")
		}
		cl.ping()
		if n := len(cl.events(300)); n < 300 {
			t.Fatalf("%d events", n)
		}
	})
	t.Run("smallest", func(t *testing.T) {
		s := newServer(t, nil, WithAuthorize(allowAll),
			WithPublishRate(math.SmallestNonzeroFloat64, 1), WithBadFrameBudget(1, math.MaxInt64))
		cl := s.dial(t)
		cl.send(`{"op":"pub","id":"p1","topic":"t","data":{}}`)
		cl.expect("published")
		cl.send(`{"op":"pub","id":"p2","topic":"t","data":{}}`) // the burst is spent, for ~1e300 years
		if f := cl.read(); f.Code != "rate_limited" {
			t.Fatalf("second publish: %+v", f)
		}
		cl.send(`junk`) // the one bad frame of the budget
		cl.expect("error")
		cl.send(`junk`)
		if code := cl.closeCode(); code != closeAbuse {
			t.Fatalf("close code %d, want 4001", code)
		}
	})
	t.Run("NaN rate", func(t *testing.T) {
		s := newServer(t, nil, WithAuthorize(allowAll), WithPublishRate(math.NaN(), 1))
		cl := s.dial(t)
		cl.send(`{"op":"pub","id":"p1","topic":"t","data":{}}`)
		cl.expect("published")
		cl.send(`{"op":"pub","id":"p2","topic":"t","data":{}}`)
		if f := cl.read(); f.Code != "rate_limited" {
			t.Fatalf("a NaN rate let a second publish through: %+v", f)
		}
	})
}

// TestAbsurdClientNumbers sends the extremes of every number a client
// chooses: each is served or refused with bad_frame, and the connection
// lives on.
func TestAbsurdClientNumbers(t *testing.T) {
	s := newServer(t, bus.New[msg](bus.WithHistory(4)), WithBadFrameBudget(1000, time.Hour))
	for i := range 6 {
		s.publish("t", msg{N: i})
	}
	cl := s.dial(t)
	tests := []struct {
		extra     string
		code      string // "" for subscribed
		recovered bool
		from      uint64
	}{
		{`"last":9223372036854775807`, "", false, 2},
		{`"last":0`, "", true, 6},
		{`"last":-9223372036854775808`, "bad_frame", false, 0},
		{`"last":9223372036854775808`, "bad_frame", false, 0},
		{`"last":1e400`, "bad_frame", false, 0},
		{`"last":1.5`, "bad_frame", false, 0},
		{`"after":{"seq":18446744073709551615}`, "", false, 6},
		{`"after":{"seq":18446744073709551616}`, "bad_frame", false, 0},
		{`"after":{"seq":-1}`, "bad_frame", false, 0},
		{`"after":{"seq":0}`, "", false, 0},
		{`"since":"0001-01-01T00:00:00Z"`, "", false, 2},
		{`"since":"9999-12-31T23:59:59.999999999Z"`, "", true, 6},
	}
	for i, tt := range tests {
		cl.send(fmt.Sprintf(`{"op":"sub","id":"r%d","sub":"s%d","pattern":"t",%s}`, i, i, tt.extra))
		f := cl.read()
		switch {
		case tt.code != "":
			if f.Code != tt.code || f.ID != fmt.Sprint("r", i) {
				t.Errorf("%s: %+v, want %s", tt.extra, f, tt.code)
			}
		case f.Op != "subscribed" || *f.Recovered != tt.recovered || *f.From != tt.from:
			t.Errorf("%s: %+v, want subscribed recovered %v from %d", tt.extra, f, tt.recovered, tt.from)
		default:
			cl.send(fmt.Sprintf(`{"op":"unsub","id":"u","sub":"s%d"}`, i))
			cl.expect("unsubscribed")
		}
	}
	cl.ping()
}
