package bridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bus "github.com/whalesong/bus"
	"github.com/whalesong/bus/bridge"
)

// TestClientJSRefusalVerdicts runs the served client in Node 20 against
// every refusal of the handshake, through the refusal probe: each reaches
// its "error" handler with its code after the first attempt. A foreign
// Origin is told forbidden whatever its credentials (never unauthorized);
// expired credentials are unauthorized like refused ones; a bridge that is
// closed is an ordinary failure (no error: the client retries with its
// backoff).
func TestClientJSRefusalVerdicts(t *testing.T) {
	node, flags := findNode(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	b := bus.New[json.RawMessage]()
	defer b.Close()
	auth := func(r *http.Request) (any, error) {
		if r.URL.Query().Get("token") != "good" {
			return nil, errors.New("bad token")
		}
		return "someone", nil
	}
	bridges := map[string]*bridge.Bridge[json.RawMessage]{
		"/auth": bridge.New(b, bridge.WithAuthenticate(auth), bridge.WithAllowedOrigins("https://app.example.com")),
		"/expired": bridge.New(b, bridge.WithAuthenticate(auth),
			bridge.WithExpiry(func(any) time.Time { return time.Now().Add(-time.Second) })),
		"/closed": bridge.New(b),
	}
	mux := http.NewServeMux()
	mux.Handle("/whalesong.js", bridge.ClientJS())
	for path, br := range bridges {
		defer br.Close()
		mux.Handle(path, br)
	}
	bridges["/closed"].Close()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ws := "ws" + strings.TrimPrefix(srv.URL, "http")
	type tcase struct {
		Name   string `json:"name"`
		URL    string `json:"url"`
		Origin string `json:"origin,omitempty"`
		code   string
		status int
	}
	cases := []tcase{
		{Name: "good", URL: ws + "/auth?token=good", Origin: "https://app.example.com"},
		{Name: "bad token", URL: ws + "/auth?token=bad", Origin: "https://app.example.com", code: "unauthorized", status: 401},
		{Name: "no origin, bad token", URL: ws + "/auth?token=bad", code: "unauthorized", status: 401},
		{Name: "foreign", URL: ws + "/auth?token=good", Origin: "https://evil.example", code: "forbidden", status: 403},
		{Name: "foreign, bad token", URL: ws + "/auth?token=bad", Origin: "https://evil.example", code: "forbidden", status: 403},
		{Name: "expired", URL: ws + "/expired?token=good", code: "unauthorized", status: 401},
		{Name: "missing", URL: ws + "/missing", code: "not_found", status: 404},
		{Name: "closed", URL: ws + "/closed"}, // 503: not a refusal, no error
	}
	encoded, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	module := fetchClientJS(t, srv.URL+"/whalesong.js")
	script, err := filepath.Abs(filepath.Join("client", "test", "verdicts_it.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	env := []string{
		"WHALESONG_CASES=" + string(encoded),
		"WHALESONG_CLIENT_URL=" + (&url.URL{Scheme: "file", Path: filepath.ToSlash(module)}).String(),
	}
	js := startScript(t, ctx, node, append(slices.Clone(flags), script), env)
	for _, c := range cases {
		var seen struct {
			Name   string `json:"name"`
			Errors []struct {
				Code   string `json:"code"`
				Status int    `json:"status"`
			} `json:"errors"`
			States  []string `json:"states"`
			RetryIn *float64 `json:"retryIn"`
		}
		js.stepInto("case", &seen)
		switch {
		case seen.Name != c.Name:
			t.Fatalf("case %q, want %q", seen.Name, c.Name)
		case c.Name == "good":
			if len(seen.Errors) != 0 || !slices.Contains(seen.States, "open") {
				t.Errorf("%s: errors %+v, states %v; want open, no error", c.Name, seen.Errors, seen.States)
			}
		case c.code == "":
			if len(seen.Errors) != 0 || seen.RetryIn == nil || *seen.RetryIn > 30000 {
				t.Errorf("%s: errors %+v, retry in %v ms; want none, and the ordinary backoff", c.Name, seen.Errors, seen.RetryIn)
			}
		case len(seen.Errors) != 1 || seen.Errors[0].Code != c.code || seen.Errors[0].Status != c.status:
			t.Errorf("%s: errors %+v (states %v), want one %s (HTTP %d)", c.Name, seen.Errors, seen.States, c.code, c.status)
		}
	}
}
