package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/whalesong/bus"
	"github.com/whalesong/bus/bridge"
)

// refusalPage is a small page that loads the served client and lets the
// test try one connection: tryConnect resolves with what the page's
// "error" and "state" handlers saw, once the first error came (or the
// connection opened, or 15 s passed).
const refusalPage = `<!doctype html>
<meta charset="utf-8">
<title>whalesong refusals</title>
<script type="module">
import { connect } from "/whalesong.js";
window.tryConnect = (url) => new Promise((resolve) => {
  const client = connect(url, { connectTimeout: 15000 });
  const seen = { errors: [], states: [] };
  const done = () => { client.close(); resolve(seen); };
  client.on("error", (e) => { seen.errors.push({ code: e.code, status: e.status || 0 }); done(); });
  client.on("state", (s) => { seen.states.push(s); if (s === "open") done(); });
  setTimeout(done, 15000);
});
window.ready = true;
</script>`

// TestBrowserRefusalsReachTheErrorHandler: in real Chromium, where a
// refused WebSocket handshake shows only as close code 1006, each refusal
// reaches the page's "error" handler with its code, through the bridge's
// refusal probe: unauthorized (WithAuthenticate refused, or WithExpiry
// past), forbidden (a foreign origin), not_found (nothing at the path). A
// foreign page learns only forbidden, never whether the user would have
// authenticated; a page of an allowed other origin reads its 401.
func TestBrowserRefusalsReachTheErrorHandler(t *testing.T) {
	b := bus.New[Message]()
	t.Cleanup(func() { b.Close() })
	auth := func(r *http.Request) (any, error) {
		if r.URL.Query().Get("token") != "good" {
			return nil, errors.New("bad token")
		}
		return "someone", nil
	}
	mux := http.NewServeMux()
	app := httptest.NewServer(mux)
	other := httptest.NewServer(mux) // another port: another origin
	t.Cleanup(other.Close)
	t.Cleanup(app.Close)
	bridges := map[string]*bridge.Bridge[Message]{
		"/auth": bridge.New(b, bridge.WithAuthenticate(auth)),
		"/expired": bridge.New(b, bridge.WithAuthenticate(auth),
			bridge.WithExpiry(func(any) time.Time { return time.Now().Add(-time.Minute) })),
		"/cors": bridge.New(b, bridge.WithAuthenticate(auth), bridge.WithAllowedOrigins(other.URL)),
	}
	for path, br := range bridges {
		t.Cleanup(func() { br.Close() })
		mux.Handle(path, br)
	}
	mux.Handle("/whalesong.js", bridge.ClientJS())
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(refusalPage))
	})
	ws := "ws" + strings.TrimPrefix(app.URL, "http")

	tests := []struct {
		name, page, url string
		code            string
		status          int
	}{
		{"good token", app.URL, ws + "/auth?token=good", "", 0},
		{"bad token", app.URL, ws + "/auth?token=bad", "unauthorized", 401},
		{"expired", app.URL, ws + "/expired?token=good", "unauthorized", 401},
		{"wrong path", app.URL, ws + "/missing", "not_found", 404},
		{"foreign page", other.URL, ws + "/auth?token=good", "forbidden", 403},
		{"foreign page, bad token", other.URL, ws + "/auth?token=bad", "forbidden", 403},
		{"allowed other origin, bad token", other.URL, ws + "/cors?token=bad", "unauthorized", 401},
		{"allowed other origin, good token", other.URL, ws + "/cors?token=good", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab, closeTab := chromedp.NewContext(browser(t))
			defer closeTab()
			ctx, cancel := context.WithTimeout(tab, pageDeadline)
			defer cancel()
			type seen struct {
				Errors []struct {
					Code   string `json:"code"`
					Status int    `json:"status"`
				} `json:"errors"`
				States []string `json:"states"`
			}
			err := chromedp.Do(ctx,
				chromedp.Navigate(tt.page+"/"),
				chromedp.Poll[chromedp.Void](`window.ready === true`, chromedp.WithPollingTimeout(pollDeadline)))
			if err != nil {
				t.Fatalf("page: %v", err)
			}
			got, err := chromedp.Run(ctx, chromedp.Evaluate[seen](`tryConnect(`+jsString(tt.url)+`)`, chromedp.EvalAwaitPromise))
			if err != nil {
				t.Fatalf("page: %v", err)
			}
			if tt.code == "" {
				if len(got.Errors) != 0 || !slices.Contains(got.States, "open") {
					t.Fatalf("errors %+v, states %v; want the connection open and no error", got.Errors, got.States)
				}
				return
			}
			if len(got.Errors) != 1 || got.Errors[0].Code != tt.code || got.Errors[0].Status != tt.status {
				t.Fatalf("the page's error handler got %+v (states %v), want one %s (HTTP %d)", got.Errors, got.States, tt.code, tt.status)
			}
		})
	}
}
