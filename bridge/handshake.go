package bridge

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// refusal is the verdict on a connection request, before the upgrade
// (PROTOCOL.md, "Connecting").
type refusal uint8

const (
	admitted       refusal = iota
	refusedClosed          // the bridge or its bus is closed
	refusedOrigin          // the Origin is not allowed
	refusedAuth            // WithAuthenticate refused
	refusedExpired         // WithExpiry says the identity's credentials have ended
	numRefusals
)

var refusalInfo = [numRefusals]struct {
	status        int
	code, message string // the probe's answer
	reason, plain string // the log's and Stats' name; the handshake's plain-text body
}{
	admitted:       {http.StatusUpgradeRequired, "upgrade_required", "a WebSocket endpoint: connect with a WebSocket", "", ""},
	refusedClosed:  {http.StatusServiceUnavailable, "unavailable", "the server is shutting down", "unavailable", "whalesong bridge closed"},
	refusedOrigin:  {http.StatusForbidden, "forbidden", "origin not allowed", "origin", "origin not allowed"},
	refusedAuth:    {http.StatusUnauthorized, "unauthorized", "authentication refused", "authentication", "unauthorized"},
	refusedExpired: {http.StatusUnauthorized, "unauthorized", "credentials expired", "expired", "unauthorized"},
}

func (v refusal) status() int     { return refusalInfo[v].status }
func (v refusal) code() string    { return refusalInfo[v].code }
func (v refusal) reason() string  { return refusalInfo[v].reason }
func (v refusal) message() string { return refusalInfo[v].message }

// admission is what the checks before the upgrade found.
type admission struct {
	refusal refusal
	ident   any   // WithAuthenticate's identity
	expires int64 // WithExpiry's deadline, Unix nanoseconds (0: never)
	err     error // WithAuthenticate's error, for the log
}

// admit runs the checks of a connection request after the closed check,
// in PROTOCOL.md's order: the Origin first (a foreign page learns nothing
// more), then WithAuthenticate, then WithExpiry. The handshake and the
// probe share it, so that the probe's verdict is the handshake's.
func (br *Bridge[T]) admit(r *http.Request) admission {
	if !br.cfg.originAllowed(r) {
		return admission{refusal: refusedOrigin}
	}
	var a admission
	if br.cfg.authenticate != nil {
		ident, err := br.cfg.authenticate(r)
		if err != nil {
			return admission{refusal: refusedAuth, err: err}
		}
		a.ident = ident
	}
	at, past := br.expiresAt(a.ident)
	if past {
		return admission{refusal: refusedExpired}
	}
	a.expires = at
	return a
}

// ServeHTTP is the WebSocket endpoint. Before upgrading it answers 503 once
// the bridge or its bus is closed, 403 to a disallowed Origin and 401 when
// WithAuthenticate fails or WithExpiry has passed; then the connection
// lives until either side closes it. A plain GET or HEAD (no Upgrade:
// websocket) is the refusal probe: it is answered with the verdict a
// handshake would get, as JSON a page may read (PROTOCOL.md, "Refusals a
// browser can see"); any other plain request gets 405.
func (br *Bridge[T]) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := br.newSession(w, r)
	if s == nil {
		return
	}
	defer br.conns.Done()
	// The upgrader answers a bad handshake itself. This frame stays small:
	// it is under the connection's read loop for the connection's life,
	// whose stack must stay within 4 KB through the handshake (a stack
	// that grew once does not shrink back: see onSideStack). Measured:
	// with the checks inline here, and Hijack through a
	// ResponseController, an idle connection's stacks took 12.4 KB
	// instead of 8.3 KB.
	_ = br.m.HandleRequestWithKeys(hijacker[T]{w, s}, r, map[string]any{sessionKey: s})
}

// newSession runs the checks before the upgrade and returns the session
// of an admitted WebSocket request, which holds br.conns: the caller
// releases it once the connection ends. Otherwise it answers the request
// (a refusal, the probe's verdict, 405) and returns nil.
func (br *Bridge[T]) newSession(w http.ResponseWriter, r *http.Request) (s *session[T]) {
	probe := !wantsWebSocket(r)
	if probe && r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "a WebSocket endpoint", http.StatusMethodNotAllowed)
		return nil
	}
	if !br.enter() {
		br.refuse(w, r, probe, admission{refusal: refusedClosed})
		return nil
	}
	defer func() { // also when WithAuthenticate or the logger panics
		if s == nil {
			br.conns.Done()
		}
	}()
	a := br.admit(r)
	if probe || a.refusal != admitted {
		br.refuse(w, r, probe, a)
		return nil
	}
	return &session[T]{br: br, id: uuid.NewString(), ident: a.ident, exp: expiryEntry{at: a.expires}}
}

// refuse answers a handshake that failed a check with its plain status and
// no socket, or a probe with its verdict.
func (br *Bridge[T]) refuse(w http.ResponseWriter, r *http.Request, probe bool, a admission) {
	if probe {
		br.logProbeAnswer(r, a)
		writeVerdict(w, r, a.refusal)
		return
	}
	br.stats.handshakesRefused[a.refusal].Add(1)
	br.logRefusedConn(r, a)
	http.Error(w, refusalInfo[a.refusal].plain, a.refusal.status())
}

// writeVerdict answers a probe: the status, and {"code","message"} that
// the page which asked may read (CORS with credentials, for the request's
// own Origin). It says nothing but the verdict: the checks ran in the
// handshake's order, so a foreign Origin gets its 403 before
// authentication runs.
func writeVerdict(w http.ResponseWriter, r *http.Request, v refusal) {
	h := w.Header()
	if origin := r.Header.Get("Origin"); origin != "" {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	h.Add("Vary", "Origin")
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if v == admitted {
		h.Set("Upgrade", "websocket") // RFC 9110: a 426 names the protocol to upgrade to
	}
	b := append(getBuf(), `{"code":`...)
	b = appendString(b, v.code())
	b = append(b, `,"message":`...)
	b = appendString(b, v.message())
	b = append(b, '}', '\n')
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(v.status())
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
	putBuf(b)
}

// wantsWebSocket reports whether r asks for the WebSocket upgrade: its
// Upgrade header lists the token "websocket" (any case), as gorilla's
// upgrader checks.
func wantsWebSocket(r *http.Request) bool {
	for _, v := range r.Header.Values("Upgrade") {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "websocket") {
				return true
			}
		}
	}
	return false
}
