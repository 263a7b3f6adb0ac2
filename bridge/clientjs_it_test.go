package bridge_test

// Integration tests of the browser client: the copy served by ClientJS runs
// in node (client/test/*_it.mjs) against a real bridge on httptest. The
// harness (findNode, startScript) is in clientjs_test.go.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bus "github.com/whalesong/bus"
	"github.com/whalesong/bus/bridge"
	"github.com/whalesong/bus/bridge/internal/wstest"
)

// jsEvent is one event as the script saw it.
type jsEvent struct {
	Seq   uint64          `json:"seq"`
	Topic string          `json:"topic"`
	Data  json.RawMessage `json:"data"`
	Time  string          `json:"time"`
}

// jsStep is one line the script prints.
type jsStep struct {
	Step  string `json:"step"`
	Ready struct {
		Recovered bool `json:"recovered"`
	} `json:"ready"`
	Forbidden string    `json:"forbidden"`
	Pubs      []uint64  `json:"pubs"`
	Events    []jsEvent `json:"events"`
	States    []string  `json:"states"`
	Order     []string  `json:"order"`
	Errors    []string  `json:"errors"`
	LastSeq   uint64    `json:"lastSeq"`
	Ms        int       `json:"ms"`
	Epoch     string    `json:"epoch"`
	State     string    `json:"state"`
	Path      string    `json:"path"`
	Code      int       `json:"code"`
}

// TestClientJSResume runs the served client against a real bridge: the
// server cuts the TCP connection while events are published on the bus and
// the client publishes too; the client reconnects and hands every event to
// its handler exactly once, in order, and its publishes land once. Then the
// server restarts with a new bus: the client emits gap before the new
// epoch's event.
func TestClientJSResume(t *testing.T) {
	node, flags := findNode(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	authorize := bridge.WithAuthorize(func(_ any, a bridge.Action, subject string) error {
		if strings.HasPrefix(subject, "deny.") {
			return errors.New("denied by the test")
		}
		return nil
	})
	b1 := bus.New[json.RawMessage]()
	defer b1.Close()
	var current atomic.Pointer[bridge.Bridge[json.RawMessage]]
	br1 := bridge.New(b1, authorize)
	defer br1.Close()
	current.Store(br1)
	mux := http.NewServeMux()
	mux.Handle("/whalesong.js", bridge.ClientJS())
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		current.Load().ServeHTTP(w, r)
	})
	srv := wstest.NewServer(t, mux, wstest.Options{}) // remembers the sockets, to cut them

	module := fetchClientJS(t, srv.HTTP+"/whalesong.js")
	script, err := filepath.Abs(filepath.Join("client", "test", "resume_it.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	env := []string{
		"WHALESONG_WS_URL=" + srv.URL + "/ws",
		"WHALESONG_CLIENT_URL=" + (&url.URL{Scheme: "file", Path: filepath.ToSlash(module)}).String(),
	}
	js := startScript(t, ctx, node, append(slices.Clone(flags), script), env)

	ready := js.step("ready")
	if !ready.Ready.Recovered || ready.Forbidden != "forbidden" || len(ready.Pubs) != 3 {
		t.Fatalf("ready step: recovered %v, forbidden publish code %q, pubs %v", ready.Ready.Recovered, ready.Forbidden, ready.Pubs)
	}

	// Drop: cut the socket, publish on the bus while the client is away.
	if n := srv.Cut(); n != 1 {
		t.Fatalf("cut %d connections, want 1", n)
	}
	for i := range 5 {
		if _, err := b1.Publish(ctx, "it.go", json.RawMessage(fmt.Sprintf(`{"from":"go","n":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	js.send("drop")
	resumed := js.step("resumed")
	checkResumed(t, b1, resumed)

	// Restart: a new bus (new epoch) behind a new bridge; the old one goes away.
	b2 := bus.New[json.RawMessage]()
	defer b2.Close()
	if _, err := b2.Publish(ctx, "it.new", json.RawMessage(`{"from":"b2"}`)); err != nil {
		t.Fatal(err)
	}
	br2 := bridge.New(b2, authorize)
	defer br2.Close()
	current.Store(br2)
	if err := br1.Close(); err != nil {
		t.Fatal(err)
	}
	js.send("restart")
	restarted := js.step("restarted")
	if len(restarted.Events) != 1 || restarted.Events[0].Seq != 1 || restarted.Events[0].Topic != "it.new" {
		t.Fatalf("after the restart the handler got %+v, want the new bus's event seq 1", restarted.Events)
	}
	if restarted.Epoch != b2.Epoch() {
		t.Errorf("client epoch %q, want the new bus's %q", restarted.Epoch, b2.Epoch())
	}
	if tail := restarted.Order[len(restarted.Order)-2:]; !slices.Equal(tail, []string{"gap:it.>", "ev:it.new:1"}) {
		t.Errorf("order ends %v, want gap before the new epoch's event", tail)
	}
	if n := strings.Count(strings.Join(restarted.Order, " "), "gap:"); n != 1 {
		t.Errorf("%d gaps, want exactly 1 (the restart): %v", n, restarted.Order)
	}
	closed := js.step("closed")
	if closed.State != "closed" || closed.States[len(closed.States)-1] != "closed" {
		t.Errorf("after close(): state %q, states %v", closed.State, closed.States)
	}
}

// fetchClientJS downloads the client as ClientJS serves it into a temp dir
// as an .mjs file (an ES module for every Node version) and returns its path.
func fetchClientJS(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/javascript") {
		t.Fatalf("GET whalesong.js: %s, Content-Type %q", resp.Status, ct)
	}
	path := filepath.Join(t.TempDir(), "whalesong.mjs")
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkResumed verifies the drop: the handler saw every event of the bus
// exactly once and in order, and each client publish landed once.
func checkResumed(t *testing.T, b *bus.Bus[json.RawMessage], st jsStep) {
	t.Helper()
	want := b.Seq()
	if want != 10 {
		t.Fatalf("bus seq %d, want 10 (3 + 5 + 2 publishes, each once)", want)
	}
	var seqs []uint64
	for _, ev := range st.Events {
		seqs = append(seqs, ev.Seq)
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("handler saw seqs %v, want 1..%d each once in order", seqs, want)
		}
	}
	if uint64(len(seqs)) != want || st.LastSeq != want {
		t.Fatalf("handler saw %d events (lastSeq %d), want %d: %v", len(seqs), st.LastSeq, want, seqs)
	}
	history, err := b.History("it.>", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	fromJS := map[string]int{}
	for i, ev := range history {
		if !bytes.Equal(compact(t, ev.Data), compact(t, st.Events[i].Data)) || ev.Topic != st.Events[i].Topic {
			t.Errorf("event %d: bus has %s %s, client saw %s %s", ev.Seq, ev.Topic, ev.Data, st.Events[i].Topic, st.Events[i].Data)
		}
		if ev.Topic == "it.js" {
			fromJS[string(compact(t, ev.Data))]++
		}
	}
	if len(fromJS) != 5 || len(st.Pubs) != 5 {
		t.Errorf("client publishes on the bus %v, promises %v: want 5 distinct, each once", fromJS, st.Pubs)
	}
	for data, n := range fromJS {
		if n != 1 {
			t.Errorf("publish %s landed %d times", data, n)
		}
	}
	i := slices.Index(st.States, "open")
	if i < 0 || !slices.Contains(st.States[i:], "connecting") || st.States[len(st.States)-1] != "open" {
		t.Errorf("states %v: want open, connecting after the cut, open again", st.States)
	}
	if len(st.Errors) != 0 || slices.ContainsFunc(st.Order, func(s string) bool { return strings.HasPrefix(s, "gap:") }) {
		t.Errorf("errors %v, order %v: want no error and no gap after a drop within one epoch", st.Errors, st.Order)
	}
}

func compact(t *testing.T, raw []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		t.Fatalf("bad JSON %q: %v", raw, err)
	}
	return buf.Bytes()
}

// TestClientJSRateLimit publishes from the served client much faster than
// the bridge allows: every publish lands exactly once, and
// the client's backoff keeps the connection from being closed for abuse.
func TestClientJSRateLimit(t *testing.T) {
	node, flags := findNode(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	const publishes = 150
	b := bus.New[json.RawMessage]()
	defer b.Close()
	br := bridge.New(b, bridge.WithPublishRate(100, 50), bridge.WithAuthorize(func(any, bridge.Action, string) error { return nil }))
	defer br.Close()
	mux := http.NewServeMux()
	mux.Handle("/whalesong.js", bridge.ClientJS())
	mux.Handle("/ws", br)
	srv := wstest.NewServer(t, mux, wstest.Options{})

	module := fetchClientJS(t, srv.HTTP+"/whalesong.js")
	script, err := filepath.Abs(filepath.Join("client", "test", "ratelimit_it.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	env := []string{
		"WHALESONG_WS_URL=" + srv.URL + "/ws",
		"WHALESONG_CLIENT_URL=" + (&url.URL{Scheme: "file", Path: filepath.ToSlash(module)}).String(),
		"WHALESONG_PUBLISHES=" + strconv.Itoa(publishes),
	}
	js := startScript(t, ctx, node, append(slices.Clone(flags), script), env)
	st := js.step("published")
	t.Logf("%d publishes at 100/s (burst 50) took %d ms", publishes, st.Ms)

	history, err := b.History("rl.x", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(history) != publishes || len(st.Pubs) != publishes {
		t.Fatalf("bus holds %d events, client got %d seqs; want %d each", len(history), len(st.Pubs), publishes)
	}
	// A refusal may let a later publish that was already in flight land
	// first, so the check is by content: publish i landed once, as the seq
	// its promise resolved to.
	seqOf := map[string]uint64{}
	for _, ev := range history {
		seqOf[string(compact(t, ev.Data))] = ev.Seq
	}
	for i, seq := range st.Pubs {
		data := fmt.Sprintf(`{"n":%d}`, i)
		if got, ok := seqOf[data]; !ok || got != seq {
			t.Fatalf("publish %d resolved to seq %d; the bus has %s at seq %d (present %v)", i, seq, data, got, ok)
		}
	}
	if len(seqOf) != publishes {
		t.Fatalf("%d distinct publishes on the bus, want %d (each once)", len(seqOf), publishes)
	}
	if slices.Contains(st.States, "connecting") || len(st.Errors) != 0 {
		t.Errorf("states %v, errors %v: want one connection throughout, no error", st.States, st.Errors)
	}
}

// statusWriter records the status a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// jsAttempt is one refused attempt as refused_it.mjs saw it.
type jsAttempt struct {
	Ms      int     `json:"ms"`
	Code    int     `json:"code"`
	RetryIn float64 `json:"retryIn"`
	Errors  []struct {
		Code   string `json:"code"`
		Status int    `json:"status"`
	} `json:"errors"`
}

// TestClientJSRefusedHandshake runs the served client in node against
// handshakes a real bridge refuses: 401 (WithAuthenticate), 403 (a foreign
// Origin) and 404 (nothing at the path). Node 20 fires error and never close
// on them; the client must end each attempt when the refusal comes, not at
// its connect timeout (a minute here), and report the drop once. Its probe
// (a plain GET of the same URL, which the bridge answers with the
// handshake's verdict) must turn each into the error code the page sees,
// followed by the long abuse delay, which reconnect() skips. /auth is dialed
// through a url function: each attempt, and its probe, carries that
// attempt's token.
func TestClientJSRefusedHandshake(t *testing.T) {
	node, flags := findNode(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	b := bus.New[json.RawMessage]()
	defer b.Close()
	brAuth := bridge.New(b, bridge.WithAuthenticate(func(*http.Request) (any, error) { return nil, errors.New("no credentials") }))
	defer brAuth.Close()
	brOrigin := bridge.New(b, bridge.WithAllowedOrigins("https://app.example.com"))
	defer brOrigin.Close()
	mux := http.NewServeMux()
	mux.Handle("/whalesong.js", bridge.ClientJS())
	mux.Handle("/auth", brAuth)
	mux.Handle("/origin", brOrigin)
	var mu sync.Mutex
	type answer struct {
		status  int
		upgrade bool
		query   string
	}
	answers := map[string][]answer{} // path -> requests answered, guarded by mu
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		mux.ServeHTTP(sw, r)
		mu.Lock()
		defer mu.Unlock()
		a := answer{status: sw.status, upgrade: strings.EqualFold(r.Header.Get("Upgrade"), "websocket"), query: r.URL.RawQuery}
		answers[r.URL.Path] = append(answers[r.URL.Path], a)
	}))
	defer srv.Close()

	module := fetchClientJS(t, srv.URL+"/whalesong.js")
	script, err := filepath.Abs(filepath.Join("client", "test", "refused_it.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	env := []string{
		"WHALESONG_WS_BASE=ws" + strings.TrimPrefix(srv.URL, "http"),
		"WHALESONG_CLIENT_URL=" + (&url.URL{Scheme: "file", Path: filepath.ToSlash(module)}).String(),
	}
	js := startScript(t, ctx, node, append(slices.Clone(flags), script), env)
	type refused struct {
		Path   string    `json:"path"`
		First  jsAttempt `json:"first"`
		Again  jsAttempt `json:"again"`
		States []string  `json:"states"`
	}
	want := map[string]struct {
		status int
		code   string
	}{
		"/auth":    {http.StatusUnauthorized, "unauthorized"},
		"/origin":  {http.StatusForbidden, "forbidden"},
		"/missing": {http.StatusNotFound, "not_found"},
	}
	for _, path := range []string{"/auth", "/origin", "/missing"} {
		var st refused
		js.stepInto("refused", &st)
		w := want[path]
		if st.Path != path || !slices.Equal(st.States, []string{"connecting", "connecting"}) {
			t.Errorf("%s: got path %q, states %v; want %s, connecting with a retry twice", path, st.Path, st.States, path)
		}
		for i, a := range []jsAttempt{st.First, st.Again} {
			if a.Code != 1006 || len(a.Errors) != 1 || a.Errors[0].Code != w.code || a.Errors[0].Status != w.status {
				t.Errorf("%s attempt %d: close code %d, errors %+v; want 1006 and one error %s (HTTP %d)", path, i+1, a.Code, a.Errors, w.code, w.status)
			}
			if a.Ms > 5000 {
				t.Errorf("%s attempt %d ended after %d ms; want it to end at the refusal, not at the 60 s connect timeout, nor after the abuse delay", path, i+1, a.Ms)
			}
			if a.RetryIn < 60000 || a.RetryIn > 120000 {
				t.Errorf("%s attempt %d: retry in %.0f ms, want the abuse delay (60-120 s)", path, i+1, a.RetryIn)
			}
		}
		t.Logf("%s: refused attempt ended after %d ms, the one reconnect() started after %d ms", path, st.First.Ms, st.Again.Ms)
	}
	srv.Close() // waits for the handlers: answers is complete
	mu.Lock()
	defer mu.Unlock()
	for path, w := range want {
		var got []answer
		for _, a := range answers[path] {
			got = append(got, answer{status: a.status, upgrade: a.upgrade})
		}
		hs, probe := answer{status: w.status, upgrade: true}, answer{status: w.status}
		if !slices.Equal(got, []answer{hs, probe, hs, probe}) {
			t.Errorf("%s answered %+v; want two attempts, each a handshake and its probe, answered %d", path, answers[path], w.status)
		}
	}
	var queries []string
	for _, a := range answers["/auth"] {
		queries = append(queries, a.query)
	}
	if !slices.Equal(queries, []string{"token=1", "token=1", "token=2", "token=2"}) {
		t.Errorf("/auth saw queries %v; want the url function called once per attempt, its probe at that attempt's URL", queries)
	}
}
