package bridge_test

// Integration tests of the browser client against issue 9's server side:
// WithExpiry (close 4002), Bridge.Kick (close 4003) and Bridge.Reauthorize.
// The served client runs in node (client/test/lifecycle_it.mjs).

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bus "github.com/whalesong/bus"
	"github.com/whalesong/bus/bridge"
)

// tokenAuth accepts ?token=<n>, records every n it saw, and makes n the
// identity.
type tokenAuth struct {
	mu     sync.Mutex
	tokens []int // guarded by mu
}

func (a *tokenAuth) authenticate(r *http.Request) (any, error) {
	n, err := strconv.Atoi(r.URL.Query().Get("token"))
	if err != nil {
		return nil, errors.New("no token")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tokens = append(a.tokens, n)
	return n, nil
}

func (a *tokenAuth) seen() []int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.tokens)
}

// jsError is an "error" event as lifecycle_it.mjs prints it.
type jsError struct {
	Code    string `json:"code"`
	Pattern string `json:"pattern"`
	Message string `json:"message"`
}

var allowAll = bridge.WithAuthorize(func(any, bridge.Action, string) error { return nil })

// TestClientJSExpiry: the first two tokens expire 400 ms after their
// handshake (close 4002) while the bus and the client publish; the client
// calls its url function for a fresh token, reconnects at once each time and
// resumes: every event is handed over once, in order, with no gap, and its
// publishes land once.
func TestClientJSExpiry(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	b := bus.New[json.RawMessage]()
	defer b.Close()
	auth := &tokenAuth{}
	issued := sync.Map{} // token -> expiry
	br := bridge.New(b, allowAll,
		bridge.WithAuthenticate(func(r *http.Request) (any, error) {
			id, err := auth.authenticate(r)
			if err == nil && id.(int) <= 2 {
				issued.LoadOrStore(id, time.Now().Add(400*time.Millisecond))
			}
			return id, err
		}),
		bridge.WithExpiry(func(id any) time.Time {
			if exp, ok := issued.Load(id); ok {
				return exp.(time.Time)
			}
			return time.Time{}
		}),
	)
	defer br.Close()
	js := serveScript(t, ctx, br, "lifecycle_it.mjs", "WHALESONG_MODE=expiry")
	// Publish through both expiries: one event per 5 ms for 1.5 s (pacing, not synchronisation).
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if _, err := b.Publish(ctx, "x.go", json.RawMessage(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	js.send("done " + strconv.FormatUint(b.Seq(), 10))
	var done struct {
		Seqs       []uint64  `json:"seqs"`
		Pubs       []uint64  `json:"pubs"`
		Reconnects []int     `json:"reconnects"`
		States     []string  `json:"states"`
		Errors     []jsError `json:"errors"`
		Gaps       []any     `json:"gaps"`
	}
	js.stepInto("done", &done)
	if want := seqRange(1, b.Seq()); !slices.Equal(done.Seqs, want) {
		t.Errorf("handed %d events, want 1..%d each once in order (first differences: %v)", len(done.Seqs), b.Seq(), firstDiff(done.Seqs, want))
	}
	if got := auth.seen(); !slices.Equal(got, []int{1, 2, 3}) {
		t.Errorf("tokens seen %v; want 1, 2, 3: the url function called once per attempt, no attempt wasted", got)
	}
	if len(done.Reconnects) != 2 || slices.Max(done.Reconnects) > 1000 {
		t.Errorf("reconnects after 4002 took %v ms; want two, each at once", done.Reconnects)
	}
	if !slices.Equal(done.States, []string{"open", "connecting", "open", "connecting", "open"}) || len(done.Errors) != 0 || len(done.Gaps) != 0 {
		t.Errorf("states %v, errors %v, gaps %v; want two quiet reconnects", done.States, done.Errors, done.Gaps)
	}
	history, err := b.History("x.js", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var onBus []uint64
	for _, ev := range history {
		onBus = append(onBus, ev.Seq)
	}
	if !slices.Equal(onBus, done.Pubs) || len(onBus) != 10 {
		t.Errorf("the client's publishes are at %v on the bus, its promises say %v; want 10, each once", onBus, done.Pubs)
	}
}

// TestClientJSKick: Kick closes the connection with 4003; the client emits
// error kicked with the reason, goes to state closed and does not reconnect
// by itself; reconnect() connects it again and it resumes with nothing
// missed.
func TestClientJSKick(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	b := bus.New[json.RawMessage]()
	defer b.Close()
	auth := &tokenAuth{}
	br := bridge.New(b, allowAll, bridge.WithAuthenticate(auth.authenticate))
	defer br.Close()
	js := serveScript(t, ctx, br, "lifecycle_it.mjs", "WHALESONG_MODE=kick")
	js.stepInto("ready", &struct{}{})
	publishN(t, ctx, b, "x.before", 3)
	if n := br.Kick(func(any) bool { return true }, "banned for the test"); n != 1 {
		t.Fatalf("Kick closed %d connections, want 1", n)
	}
	var kicked struct {
		State  string    `json:"state"`
		Errors []jsError `json:"errors"`
	}
	js.stepInto("kicked", &kicked)
	if kicked.State != "closed" || len(kicked.Errors) != 1 || kicked.Errors[0].Code != "kicked" || !strings.Contains(kicked.Errors[0].Message, "banned for the test") {
		t.Errorf("at the kick: state %q, errors %+v; want closed and one error kicked with the reason", kicked.State, kicked.Errors)
	}
	publishN(t, ctx, b, "x.while", 5)
	// A window for a reconnect that must not come (nothing signals an
	// absence): the client's first retry would come within 200 ms.
	time.Sleep(time.Second)
	if got := auth.seen(); len(got) != 1 || br.Clients() != 0 {
		t.Fatalf("after the kick: %d attempts, %d clients; want no reconnect by itself", len(got), br.Clients())
	}
	js.send("reconnect")
	js.send("done " + strconv.FormatUint(b.Seq(), 10))
	var done struct {
		Seqs   []uint64  `json:"seqs"`
		States []string  `json:"states"`
		Errors []jsError `json:"errors"`
		Gaps   []any     `json:"gaps"`
	}
	js.stepInto("done", &done)
	if want := seqRange(1, b.Seq()); !slices.Equal(done.Seqs, want) {
		t.Errorf("handed %v, want %v: resumed with nothing missed", done.Seqs, want)
	}
	if !slices.Equal(done.States, []string{"open", "closed", "connecting", "open"}) || len(done.Errors) != 1 || len(done.Gaps) != 0 {
		t.Errorf("states %v, errors %+v, gaps %v", done.States, done.Errors, done.Gaps)
	}
	if got := auth.seen(); len(got) != 2 {
		t.Errorf("%d attempts, want 2: the first, and the one reconnect() made", len(got))
	}
}

// TestClientJSReauthorize: a subscription no longer allowed is ended by
// Reauthorize while events flow: the client emits error forbidden with its
// pattern, its handler gets nothing more, the other subscription and the
// connection go on.
func TestClientJSReauthorize(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	b := bus.New[json.RawMessage]()
	defer b.Close()
	var redAllowed atomic.Bool
	redAllowed.Store(true)
	br := bridge.New(b, bridge.WithAuthorize(func(_ any, a bridge.Action, subject string) error {
		if a == bridge.Subscribe && strings.HasPrefix(subject, "team.red.") && !redAllowed.Load() {
			return errors.New("not a member any more")
		}
		return nil
	}))
	defer br.Close()
	js := serveScript(t, ctx, br, "lifecycle_it.mjs", "WHALESONG_MODE=reauthorize")
	js.stepInto("ready", &struct{}{})
	red1 := publishN(t, ctx, b, "team.red.x", 3)
	blue1 := publishN(t, ctx, b, "team.blue.x", 3)
	redAllowed.Store(false)
	if n := br.Reauthorize(func(any) bool { return true }); n != 1 {
		t.Fatalf("Reauthorize ended %d subscriptions, want 1", n)
	}
	red2 := publishN(t, ctx, b, "team.red.x", 3)
	blue2 := publishN(t, ctx, b, "team.blue.x", 3)
	js.send("done " + strconv.FormatUint(blue2[len(blue2)-1], 10))
	var done struct {
		Red      []uint64  `json:"red"`
		Blue     []uint64  `json:"blue"`
		RedState string    `json:"redState"`
		States   []string  `json:"states"`
		Errors   []jsError `json:"errors"`
		Gaps     []any     `json:"gaps"`
	}
	js.stepInto("done", &done)
	if len(done.Red) > len(red1) || !slices.Equal(done.Red, red1[:len(done.Red)]) || slices.ContainsFunc(done.Red, func(s uint64) bool { return slices.Contains(red2, s) }) {
		t.Errorf("red handler got %v; want at most %v (published before Reauthorize), nothing of %v", done.Red, red1, red2)
	}
	if want := append(slices.Clone(blue1), blue2...); !slices.Equal(done.Blue, want) {
		t.Errorf("blue handler got %v, want %v", done.Blue, want)
	}
	if done.RedState != "ended" || len(done.Errors) != 1 || done.Errors[0].Code != "forbidden" || done.Errors[0].Pattern != "team.red.>" {
		t.Errorf("red state %q, errors %+v; want ended and one error forbidden for team.red.>", done.RedState, done.Errors)
	}
	if !slices.Equal(done.States, []string{"open"}) || len(done.Gaps) != 0 {
		t.Errorf("states %v, gaps %v: the connection stays open", done.States, done.Gaps)
	}
}

// firstDiff describes where two seq lists part, for a short message.
func firstDiff(got, want []uint64) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return "at index " + strconv.Itoa(i) + ": got " + strconv.FormatUint(got[i], 10) + ", want " + strconv.FormatUint(want[i], 10)
		}
	}
	return "lengths " + strconv.Itoa(len(got)) + " and " + strconv.Itoa(len(want))
}
