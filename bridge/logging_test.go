package bridge

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"
	"github.com/whalesong/bus/bridge/internal/wstest"
)

// recorder is a slog.Handler that keeps every record, with its attributes
// flattened to strings.
type recorder struct {
	mu   sync.Mutex
	recs []logRec // guarded by mu
}

type logRec struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	lr := logRec{level: rec.Level, msg: rec.Message, attrs: map[string]string{}}
	rec.Attrs(func(a slog.Attr) bool {
		lr.attrs[a.Key] = a.Value.String()
		return true
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, lr)
	return nil
}

func (r *recorder) all() []logRec {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.recs)
}

// find returns the records with message msg.
func (r *recorder) find(msg string) []logRec {
	var out []logRec
	for _, rec := range r.all() {
		if rec.msg == msg {
			out = append(out, rec)
		}
	}
	return out
}

// one returns the only record with message msg whose attributes include
// want, failing otherwise.
func (r *recorder) one(t *testing.T, level slog.Level, msg string, want map[string]string) logRec {
	t.Helper()
	var found []logRec
	for _, rec := range r.find(msg) {
		ok := rec.level == level
		for k, v := range want {
			ok = ok && rec.attrs[k] == v
		}
		if ok {
			found = append(found, rec)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d records %s %q with %v, want 1; all:\n%s", len(found), level, msg, want, r)
	}
	return found[0]
}

func (r *recorder) String() string {
	var b strings.Builder
	for _, rec := range r.all() {
		fmt.Fprintf(&b, "  %s %s %v\n", rec.level, rec.msg, rec.attrs)
	}
	return b.String()
}

// TestLogConnectAndDisconnect: one Info line when a connection opens and
// one when it ends, with the close code and who closed.
func TestLogConnectAndDisconnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		s := newMemServer(t, nil, WithLogger(slog.New(rec)), WithAuthorize(allowAll))
		bye := s.dial(t)
		stay := s.dial(t)
		bye.sub("s", "t", nil)
		for i := range 100 { // nothing per event, per frame or per publish
			s.publish("t", msg{N: i})
			bye.pub(fmt.Sprint("p", i), "t", `{}`)
		}
		_ = bye.c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "done"))
		_ = bye.closeCodeQuiet()
		synctest.Wait()
		c := rec.one(t, slog.LevelInfo, logConnected, map[string]string{"session": bye.hello.Session})
		rec.one(t, slog.LevelInfo, logConnected, map[string]string{"session": stay.hello.Session})
		d := rec.one(t, slog.LevelInfo, logDisconnected, map[string]string{"session": bye.hello.Session, "code": "1000", "by": "client"})
		if c.attrs["remote"] != "pipe" || d.attrs["duration"] != "0s" { // a net.Pipe; no time passes in the bubble
			t.Errorf("connect line %v, disconnect line %v", c.attrs, d.attrs)
		}
		if n := len(rec.all()); n != 3 {
			t.Fatalf("%d lines, want 3:\n%s", n, rec)
		}
		stay.c.Close() // the network: no close frame
		synctest.Wait()
		rec.one(t, slog.LevelInfo, logDisconnected, map[string]string{"session": stay.hello.Session, "code": "1006", "by": "network"})
	})
}

// TestLogRefusedConnections: each refused handshake is one Warn line with
// its reason (and the authenticator's error); a probe is not a refusal.
func TestLogRefusedConnections(t *testing.T) {
	rec := &recorder{}
	auth := &countingAuth{}
	s := newServer(t, nil, WithLogger(slog.New(rec)), WithAllowedOrigins(appOrigin),
		WithAuthenticate(auth.authenticate), WithExpiry(expireOld))
	dial := func(query, origin string) {
		t.Helper()
		if _, err := s.ws.Dial(t.Context(), "/"+query, wstest.DialOptions{Header: http.Header{"Origin": {origin}}}); err == nil {
			t.Fatalf("%s from %s was accepted", query, origin)
		}
	}
	dial("?token=ok", evilOrigin)
	dial("?token=bad", appOrigin)
	dial("?token=old", appOrigin)
	probe(t, s.br, http.MethodGet, "?token=bad", appOrigin)
	s.br.Close()
	dial("?token=ok", appOrigin)
	rec.one(t, slog.LevelWarn, logRefusedConn, map[string]string{"reason": "origin", "status": "403", "origin": evilOrigin})
	rec.one(t, slog.LevelWarn, logRefusedConn, map[string]string{"reason": "authentication", "status": "401", "error": "bad token"})
	rec.one(t, slog.LevelWarn, logRefusedConn, map[string]string{"reason": "expired", "status": "401"})
	rec.one(t, slog.LevelWarn, logRefusedConn, map[string]string{"reason": "unavailable", "status": "503"})
	rec.one(t, slog.LevelDebug, logProbe, map[string]string{"code": "unauthorized"})
	if n := len(rec.find(logRefusedConn)); n != 4 {
		t.Fatalf("%d refusal lines, want 4:\n%s", n, rec)
	}
}

// TestLogRefusedRequests: an error frame is a Warn line with its code
// (limits included); a connection's refusals are logged ten at once and
// then one per second, and the next line says how many were left out.
func TestLogRefusedRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		s := newMemServer(t, nil, WithLogger(slog.New(rec)), WithMaxMessageSize(100), WithMaxSubscriptions(1),
			WithPublishRate(0, 1), WithAuthorize(allowAll), WithBadFrameBudget(1000, time.Hour))
		cl := s.dial(t)
		cl.sub("a", "t", nil)
		cl.send(`{"op":"sub","id":"r2","sub":"b","pattern":"t"}`)
		cl.read()
		cl.send(`{"op":"pub","id":"p1","topic":"t","data":"` + strings.Repeat("x", 200) + `"}`)
		cl.read()
		cl.pub("p2", "t", `{}`)
		cl.pub("p3", "t", `{}`) // rate_limited
		for _, code := range []string{"too_many_subscriptions", "too_large", "rate_limited"} {
			rec.one(t, slog.LevelWarn, logRefused, map[string]string{"code": code, "session": cl.hello.Session})
		}
		for i := range 20 { // 7 more fill the burst of 10, 13 are left out
			cl.pub(fmt.Sprint("q", i), "t", `{}`)
		}
		if n := len(rec.find(logRefused)); n != 10 {
			t.Fatalf("%d refusal lines, want the burst of 10", n)
		}
		time.Sleep(time.Second)
		cl.pub("late", "t", `{}`)
		rec.one(t, slog.LevelWarn, logRefused, map[string]string{"id": "late", "suppressed": "13"})
		cl.pub("later", "t", `{}`) // left out: counted on the disconnect line
		cl.c.Close()
		synctest.Wait()
		rec.one(t, slog.LevelInfo, logDisconnected, map[string]string{"session": cl.hello.Session, "suppressed": "1"})
	})
}

// TestLogCutOffs: a slow cut-off (4000) and an abuse one (4001) are Warn
// lines, and the disconnect lines name the code and the server.
func TestLogCutOffs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		s := newMemServer(t, nil, WithLogger(slog.New(rec)), WithMaxBacklog(4), WithBadFrameBudget(2, time.Hour))
		slow := s.dial(t)
		slow.sub("s", "t", nil)
		s.ws.Last().Stall()
		for i := range 10 {
			s.publish("t", msg{N: i})
		}
		synctest.Wait()
		abusive := s.dial(t)
		for range 3 {
			abusive.send(`not json`)
		}
		synctest.Wait()
		rec.one(t, slog.LevelWarn, logCutOff, map[string]string{"session": slow.hello.Session, "code": "4000", "reason": "slow"})
		rec.one(t, slog.LevelWarn, logCutOff, map[string]string{"session": abusive.hello.Session, "code": "4001", "reason": "abuse"})
		s.ws.Conns()[0].Unstall()
		slow.closeCodeQuiet()
		abusive.closeCodeQuiet()
		synctest.Wait()
		rec.one(t, slog.LevelInfo, logDisconnected, map[string]string{"session": slow.hello.Session, "code": "4000", "by": "server", "reason": "resume needed"})
		rec.one(t, slog.LevelInfo, logDisconnected, map[string]string{"session": abusive.hello.Session, "code": "4001", "by": "server"})
	})
}

// TestLogKickExpiryReauthorize: Kick and Reauthorize are Info lines; the
// disconnects of a kick and an expiry name 4003 and 4002.
func TestLogKickExpiryReauthorize(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		auth := ttlAuth{start: time.Now()}
		rules := &teamRules{}
		s := newMemServer(t, nil, WithLogger(slog.New(rec)), WithAuthenticate(auth.authenticate),
			WithExpiry(auth.expiry), WithAuthorize(rules.authorize))
		kicked, _ := s.dialTTL(t, 0)
		expiring, _ := s.dialTTL(t, 5)
		kicked.sub("red", "team.red.>", nil)
		rules.redRevoked.Store(true)
		s.br.Reauthorize(func(any) bool { return true })
		rec.one(t, slog.LevelInfo, logRevoked, map[string]string{"session": kicked.hello.Session, "sub": "red", "pattern": "team.red.>", "code": "forbidden"})
		s.br.Kick(func(id any) bool { return id == 0 }, "go away")
		rec.one(t, slog.LevelInfo, logKicked, map[string]string{"session": kicked.hello.Session, "reason": "go away"})
		time.Sleep(5 * time.Second)
		kicked.closeCodeQuiet()
		expiring.closeCodeQuiet()
		synctest.Wait()
		rec.one(t, slog.LevelInfo, logDisconnected, map[string]string{"session": kicked.hello.Session, "code": "4003", "by": "server", "reason": "kicked"})
		rec.one(t, slog.LevelInfo, logDisconnected, map[string]string{"session": expiring.hello.Session, "code": "4002", "by": "server", "reason": "credentials expired"})
		if n := len(rec.find(logRefused)); n != 0 {
			t.Fatalf("a revocation logged as a refused request:\n%s", rec)
		}
	})
}

// TestNoLoggerLogsNothing: without WithLogger nothing reaches any logger,
// slog.Default included.
func TestNoLoggerLogsNothing(t *testing.T) {
	rec := &recorder{}
	old := slog.Default()
	slog.SetDefault(slog.New(rec))
	defer slog.SetDefault(old)
	s := newServer(t, nil, WithAllowedOrigins(appOrigin), WithMaxSubscriptions(1))
	if _, err := s.tryDial(http.Header{"Origin": {evilOrigin}}); err == nil {
		t.Fatal("foreign origin accepted")
	}
	cl := s.dial(t)
	cl.sub("a", "t", nil)
	cl.send(`{"op":"sub","id":"r","sub":"b","pattern":"t"}`)
	cl.read()
	s.br.Kick(func(any) bool { return true }, "bye")
	cl.closeCodeQuiet()
	s.br.Close()
	if n := len(rec.all()); n != 0 {
		t.Fatalf("%d lines logged without WithLogger:\n%s", n, rec)
	}
}
