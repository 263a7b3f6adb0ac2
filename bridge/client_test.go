package bridge

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestClientJS(t *testing.T) {
	h := ClientJS()
	js, _ := clientFiles.ReadFile("client/whalesong.js")
	dts, _ := clientFiles.ReadFile("client/whalesong.d.ts")
	tests := []struct {
		method, path string
		status       int
		ctype        string
		body         []byte
	}{
		{"GET", "/whalesong.js", 200, "text/javascript; charset=utf-8", js},
		{"GET", "/static/any/name", 200, "text/javascript; charset=utf-8", js},
		{"GET", "/whalesong.d.ts", 200, "application/typescript; charset=utf-8", dts},
		{"HEAD", "/whalesong.js", 200, "text/javascript; charset=utf-8", nil},
		{"POST", "/whalesong.js", 405, "", nil},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
		res := rec.Result()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != tt.status {
			t.Fatalf("%s %s: status %d", tt.method, tt.path, res.StatusCode)
		}
		if tt.status != 200 {
			continue
		}
		if ct := res.Header.Get("Content-Type"); ct != tt.ctype {
			t.Errorf("%s %s: Content-Type %q", tt.method, tt.path, ct)
		}
		if tt.method == "GET" && !bytes.Equal(body, tt.body) {
			t.Errorf("%s %s: wrong body", tt.method, tt.path)
		}
		if res.Header.Get("ETag") == "" || res.Header.Get("Cache-Control") == "" {
			t.Errorf("%s %s: no caching headers", tt.method, tt.path)
		}
	}

	for p, want := range map[string]string{"/whalesong/whalesong.js": "./whalesong.d.ts", "/js/client.js": "./client.d.ts", "/any": "./whalesong.d.ts"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
		if got := rec.Header().Get("X-TypeScript-Types"); got != want {
			t.Errorf("GET %s: X-TypeScript-Types %q, want %q", p, got, want)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/whalesong/whalesong.d.ts", nil))
	if rec.Header().Get("X-TypeScript-Types") != "" || rec.Header().Get("Content-Type") != "application/typescript; charset=utf-8" {
		t.Errorf("the declarations next to the module: %v", rec.Header())
	}

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/whalesong.js", nil))
	etag := rec.Header().Get("ETag")
	req := httptest.NewRequest("GET", "/whalesong.js", nil)
	req.Header.Set("If-None-Match", `"other", `+etag)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
		t.Fatalf("revalidation: %d with %d bytes, want 304", rec.Code, rec.Body.Len())
	}
}
