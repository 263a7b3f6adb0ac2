package bridge

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"path"
	"strconv"
	"strings"
)

//go:embed client/whalesong.js client/whalesong.d.ts
var clientFiles embed.FS

// asset is one embedded file with its validator.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

func loadAsset(name, contentType string) asset {
	body, err := clientFiles.ReadFile(name)
	if err != nil {
		panic("bridge: embedded " + name + " missing: " + err.Error()) // impossible: go:embed checked it at build time
	}
	sum := sha256.Sum256(body)
	return asset{body: body, contentType: contentType, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
}

// ClientJS serves the browser client, an ES module embedded in the binary,
// with Content-Type text/javascript; mount it at any path, e.g.
// http.Handle("/whalesong.js", bridge.ClientJS()). A request whose path ends
// in ".d.ts" gets the TypeScript declarations (application/typescript)
// instead, so that mounted at a directory, http.Handle("/whalesong/",
// bridge.ClientJS()), it serves the module at /whalesong/whalesong.js and its
// types next to it at /whalesong/whalesong.d.ts (the module's
// X-TypeScript-Types header, and its @ts-self-types comment, name them
// there). Responses carry an ETag and ask caches to revalidate, so that a
// new build is picked up at once while unchanged files cost a 304.
func ClientJS() http.Handler {
	js := loadAsset("client/whalesong.js", "text/javascript; charset=utf-8")
	dts := loadAsset("client/whalesong.d.ts", "application/typescript; charset=utf-8")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		a := &js
		h := w.Header()
		if strings.HasSuffix(r.URL.Path, ".d.ts") {
			a = &dts
		} else {
			h.Set("X-TypeScript-Types", typesNextTo(r.URL.Path))
		}
		h.Set("Content-Type", a.contentType)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", a.etag)
		h.Set("X-Content-Type-Options", "nosniff")
		if etagMatch(r.Header.Get("If-None-Match"), a.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Length", strconv.Itoa(len(a.body)))
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(a.body)
	})
}

// typesNextTo names the declarations next to the module served at p:
// "./x.d.ts" for ".../x.js", "./whalesong.d.ts" otherwise.
func typesNextTo(p string) string {
	if base := path.Base(p); strings.HasSuffix(base, ".js") {
		return "./" + strings.TrimSuffix(base, ".js") + ".d.ts"
	}
	return "./whalesong.d.ts"
}

// etagMatch reports whether an If-None-Match header names etag (or "*").
func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}
