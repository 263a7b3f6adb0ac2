package bridge

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bus "github.com/whalesong/bus"
	"github.com/whalesong/bus/bridge/internal/wstest"
)

// countingAuth accepts ?token=ok and counts its calls.
type countingAuth struct{ calls atomic.Int64 }

func (a *countingAuth) authenticate(r *http.Request) (any, error) {
	a.calls.Add(1)
	if tok := r.URL.Query().Get("token"); tok != "ok" && tok != "old" {
		return nil, errors.New("bad token")
	}
	return r.URL.Query().Get("token"), nil
}

// expireOld makes the identity "old" expired an hour ago.
func expireOld(id any) time.Time {
	if id == "old" {
		return time.Now().Add(-time.Hour)
	}
	return time.Time{}
}

const (
	appOrigin  = "https://app.example.com"
	evilOrigin = "https://evil.example"
)

// probeAnswer is what a probe got.
type probeAnswer struct {
	status int
	header http.Header
	body   string
	code   string
}

// probe sends a plain request (no Upgrade) to br, as the client's fetch
// does, from origin ("" for none).
func probe(t *testing.T, br http.Handler, method, query, origin string) probeAnswer {
	t.Helper()
	r := httptest.NewRequest(method, "http://ws.example.com/ws"+query, nil)
	if origin != "" {
		r.Header.Set("Origin", origin)
	}
	w := httptest.NewRecorder()
	br.ServeHTTP(w, r)
	a := probeAnswer{status: w.Code, header: w.Header(), body: w.Body.String()}
	if method != http.MethodHead && strings.HasPrefix(a.header.Get("Content-Type"), "application/json") {
		var v struct{ Code, Message string }
		if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil || v.Message == "" {
			t.Fatalf("probe body %q: %v", a.body, err)
		}
		a.code = v.Code
	}
	return a
}

// TestProbeVerdicts: a plain GET is answered with the verdict the
// handshake would get, in the handshake's order, as JSON with CORS for the
// request's own Origin and no caching.
func TestProbeVerdicts(t *testing.T) {
	b := bus.New[msg]()
	defer b.Close()
	auth := &countingAuth{}
	br := New(b, WithAllowedOrigins(appOrigin), WithAuthenticate(auth.authenticate), WithExpiry(expireOld))
	defer br.Close()
	tests := []struct {
		name, query, origin string
		status              int
		code                string
		authRuns            bool
	}{
		{"foreign origin, good token", "?token=ok", evilOrigin, 403, "forbidden", false},
		{"foreign origin, bad token", "?token=bad", evilOrigin, 403, "forbidden", false},
		{"allowed origin, bad token", "?token=bad", appOrigin, 401, "unauthorized", true},
		{"allowed origin, expired", "?token=old", appOrigin, 401, "unauthorized", true},
		{"allowed origin, good token", "?token=ok", appOrigin, 426, "upgrade_required", true},
		{"no origin, bad token", "?token=bad", "", 401, "unauthorized", true},
		{"no origin, good token", "?token=ok", "", 426, "upgrade_required", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := auth.calls.Load()
			a := probe(t, br, http.MethodGet, tt.query, tt.origin)
			if a.status != tt.status || a.code != tt.code {
				t.Fatalf("got %d %q (%s), want %d %q", a.status, a.code, a.body, tt.status, tt.code)
			}
			if ran := auth.calls.Load() > before; ran != tt.authRuns {
				t.Fatalf("WithAuthenticate ran: %v, want %v", ran, tt.authRuns)
			}
			checkVerdictHeaders(t, a, tt.origin)
			if tt.status == 426 && a.header.Get("Upgrade") != "websocket" {
				t.Errorf("426 without Upgrade: websocket: %v", a.header)
			}
		})
	}
	if st := br.Stats(); st.Clients != 0 || st.HandshakesRefused["authentication"] != 0 {
		t.Errorf("probes counted as connections or refused handshakes: %+v", st)
	}
	br.Close()
	a := probe(t, br, http.MethodGet, "?token=ok", evilOrigin)
	if a.status != 503 || a.code != "unavailable" {
		t.Fatalf("closed bridge: %d %q, want 503 unavailable", a.status, a.code)
	}
	checkVerdictHeaders(t, a, evilOrigin)
}

func checkVerdictHeaders(t *testing.T, a probeAnswer, origin string) {
	t.Helper()
	h := a.header
	want := map[string]string{
		"Content-Type":                     "application/json",
		"Cache-Control":                    "no-store",
		"Vary":                             "Origin",
		"Access-Control-Allow-Origin":      origin,
		"Access-Control-Allow-Credentials": "",
	}
	if origin != "" {
		want["Access-Control-Allow-Credentials"] = "true"
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	for k := range h {
		if strings.HasPrefix(k, "Access-Control-") && want[k] == "" {
			t.Errorf("extra CORS header %s: %q", k, h.Get(k))
		}
	}
}

// TestProbeHeadAndOtherMethods: HEAD gets the verdict without a body;
// any other plain method gets 405 without running a check.
func TestProbeHeadAndOtherMethods(t *testing.T) {
	b := bus.New[msg]()
	defer b.Close()
	auth := &countingAuth{}
	br := New(b, WithAuthenticate(auth.authenticate))
	defer br.Close()
	a := probe(t, br, http.MethodHead, "?token=bad", "")
	if a.status != 401 || a.body != "" || a.header.Get("Content-Type") != "application/json" || a.header.Get("Content-Length") == "" {
		t.Fatalf("HEAD: %d %q %v", a.status, a.body, a.header)
	}
	for _, m := range []string{http.MethodPost, http.MethodOptions, http.MethodPut} {
		before := auth.calls.Load()
		a := probe(t, br, m, "?token=ok", appOrigin)
		if a.status != http.StatusMethodNotAllowed || a.header.Get("Allow") != "GET, HEAD" || auth.calls.Load() != before {
			t.Fatalf("%s: %d, Allow %q, authenticate ran %v", m, a.status, a.header.Get("Allow"), auth.calls.Load() != before)
		}
		if a.header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("%s answered with CORS", m)
		}
	}
}

// TestHandshakeRefusalsStayPlain: the WebSocket handshake itself is still
// refused with a plain status and no socket (API.md: "an error answers 401
// and no socket is opened"), no JSON and no CORS; a probe of the same
// request gets the same status. Each refusal is counted by reason.
func TestHandshakeRefusalsStayPlain(t *testing.T) {
	auth := &countingAuth{}
	s := newServer(t, nil, WithAllowedOrigins(appOrigin), WithAuthenticate(auth.authenticate), WithExpiry(expireOld))
	tests := []struct {
		query, origin string
		status        int
		reason        string
	}{
		{"?token=ok", evilOrigin, 403, "origin"},
		{"?token=bad", appOrigin, 401, "authentication"},
		{"?token=old", appOrigin, 401, "expired"},
	}
	for _, tt := range tests {
		h := http.Header{"Origin": {tt.origin}}
		_, err := s.ws.Dial(t.Context(), "/"+tt.query, wstest.DialOptions{Header: h})
		var se *wstest.StatusError
		if !errors.As(err, &se) || se.Status != tt.status {
			t.Fatalf("%s from %s: %v, want status %d", tt.query, tt.origin, err, tt.status)
		}
		// The raw answer: plain text, no CORS.
		r := httptest.NewRequest(http.MethodGet, "http://ws.example.com/"+tt.query, nil)
		r.Header.Set("Origin", tt.origin)
		r.Header.Set("Upgrade", "websocket")
		r.Header.Set("Connection", "Upgrade")
		w := httptest.NewRecorder()
		s.br.ServeHTTP(w, r)
		if w.Code != tt.status || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") || w.Header().Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("handshake %s: %d %v, want plain %d without CORS", tt.query, w.Code, w.Header(), tt.status)
		}
		if a := probe(t, s.br, http.MethodGet, tt.query, tt.origin); a.status != tt.status {
			t.Fatalf("probe %s: %d, want the handshake's %d", tt.query, a.status, tt.status)
		}
	}
	st := s.br.Stats()
	for _, tt := range tests {
		if st.HandshakesRefused[tt.reason] != 2 { // the dial and the raw request
			t.Errorf("refused for %s: %d, want 2 (%v)", tt.reason, st.HandshakesRefused[tt.reason], st.HandshakesRefused)
		}
	}
	if st.Clients != 0 {
		t.Errorf("%d clients after refusals", st.Clients)
	}
	s.br.Close()
	if _, err := s.tryDial(nil); err == nil {
		t.Fatal("dial after Close succeeded")
	} else if se := (*wstest.StatusError)(nil); !errors.As(err, &se) || se.Status != 503 {
		t.Fatalf("dial after Close: %v, want 503", err)
	}
	if n := s.br.Stats().HandshakesRefused["unavailable"]; n != 1 {
		t.Fatalf("unavailable refusals %d, want 1", n)
	}
}

// FuzzProbeForeignOrigin: whatever the request carries, a page
// of a foreign origin can only ever read 403 forbidden: never 401 (which
// would tell it whether the user's cookies authenticate), never 426.
func FuzzProbeForeignOrigin(f *testing.F) {
	f.Add("?token=ok", "https://evil.example")
	f.Add("?token=bad", "null")
	f.Add("", "https://app.example.com.evil.example")
	f.Add("?token=ok", "HTTPS://APP.EXAMPLE.COM:443")
	b := bus.New[msg]()
	defer b.Close()
	auth := &countingAuth{}
	br := New(b, WithAllowedOrigins(appOrigin), WithAuthenticate(auth.authenticate))
	defer br.Close()
	f.Fuzz(func(t *testing.T, query, origin string) {
		r, err := http.NewRequest(http.MethodGet, "http://ws.example.com/ws", nil)
		if err != nil || origin == "" || strings.ContainsAny(origin, "\r\n\x00") {
			t.Skip()
		}
		r.URL.RawQuery = strings.TrimPrefix(query, "?")
		r.Header.Set("Origin", origin)
		allowed := br.cfg.originAllowed(r)
		before := auth.calls.Load()
		w := httptest.NewRecorder()
		br.ServeHTTP(w, r)
		switch {
		case !allowed && (w.Code != 403 || auth.calls.Load() != before):
			t.Fatalf("foreign origin %q: %d, authenticate ran %v; want 403 before authentication", origin, w.Code, auth.calls.Load() != before)
		case allowed && w.Code == 403:
			t.Fatalf("allowed origin %q answered 403", origin)
		}
		if got := w.Header().Get("Access-Control-Allow-Origin"); got != origin {
			t.Fatalf("ACAO %q for origin %q", got, origin)
		}
	})
}
