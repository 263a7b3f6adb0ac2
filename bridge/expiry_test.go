package bridge

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/whalesong/bus/bridge/internal/wstest"
)

// ttlAuth makes ?ttl=<seconds> the identity: credentials that end that
// many seconds after the bubble's start (0: never).
type ttlAuth struct{ start time.Time }

func (a ttlAuth) authenticate(r *http.Request) (any, error) {
	n, err := strconv.Atoi(r.URL.Query().Get("ttl"))
	if err != nil {
		return nil, errors.New("no ttl")
	}
	return n, nil
}

func (a ttlAuth) expiry(id any) time.Time {
	if n := id.(int); n > 0 {
		return a.start.Add(time.Duration(n) * time.Second)
	}
	return time.Time{}
}

func (s *server) dialTTL(t *testing.T, ttl int) (*client, *wstest.Conn) {
	t.Helper()
	c, err := s.ws.Dial(t.Context(), "/?ttl="+strconv.Itoa(ttl), wstest.DialOptions{})
	if err != nil {
		t.Fatalf("dial ttl %d: %v", ttl, err)
	}
	return newClient(t, c), s.ws.Last()
}

// closeOf returns the close frame the server wrote on c, if any.
func closeOf(c *wstest.Conn) (code int, reason string, ok bool) {
	cf := c.CloseFrames()
	if len(cf) == 0 {
		return 0, "", false
	}
	return cf[0].CloseCode(), cf[0].CloseReason(), true
}

// TestExpiryClosesOnTime runs in a bubble: each connection is closed with
// 4002 exactly at its identity's expiry, in deadline order whatever the
// order of connecting, and one that never expires stays open.
func TestExpiryClosesOnTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		auth := ttlAuth{start: time.Now()}
		s := newMemServer(t, nil, WithAuthenticate(auth.authenticate), WithExpiry(auth.expiry))
		ttls := []int{5, 3, 0, 4, 3}
		conns := make([]*wstest.Conn, len(ttls))
		clients := make([]*client, len(ttls))
		for i, ttl := range ttls {
			clients[i], conns[i] = s.dialTTL(t, ttl)
		}
		for _, at := range []int{3, 4, 5} {
			time.Sleep(time.Until(auth.start.Add(time.Duration(at)*time.Second)) - time.Nanosecond)
			synctest.Wait()
			for i, c := range conns {
				if _, _, closed := closeOf(c); closed && ttls[i] >= at {
					t.Fatalf("connection %d (ttl %d s) closed before %d s", i, ttls[i], at)
				}
			}
			time.Sleep(time.Nanosecond)
			synctest.Wait()
			for i, c := range conns {
				code, reason, closed := closeOf(c)
				if due := ttls[i] != 0 && ttls[i] <= at; closed != due || (due && (code != closeExpired || reason != "credentials expired")) {
					t.Fatalf("at %d s connection %d (ttl %d s): closed %v with %d %q; want closed %v with 4002", at, i, ttls[i], closed, code, reason, due)
				}
			}
		}
		for i, cl := range clients {
			if ttls[i] == 0 {
				cl.ping()
				continue
			}
			if code := cl.closeCode(); code != closeExpired {
				t.Fatalf("client %d closed with %d, want 4002", i, code)
			}
		}
		synctest.Wait()
		if st := s.br.Stats(); st.Expired != 4 || st.Clients != 1 {
			t.Fatalf("stats: %d expired, %d clients; want 4 and 1", st.Expired, st.Clients)
		}
		if n := s.br.expiries.len(); n != 0 {
			t.Fatalf("%d sessions left in the expiry heap, want 0", n)
		}
	})
}

// TestExpiryForgetsClosedConnections: a connection that ends before its
// expiry leaves the heap at once (no memory held until the deadline), and
// the deadline passing later closes nothing.
func TestExpiryForgetsClosedConnections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		auth := ttlAuth{start: time.Now()}
		s := newMemServer(t, nil, WithAuthenticate(auth.authenticate), WithExpiry(auth.expiry))
		early, _ := s.dialTTL(t, 30)
		later, lc := s.dialTTL(t, 40)
		synctest.Wait()
		if n := s.br.expiries.len(); n != 2 {
			t.Fatalf("%d sessions in the heap, want 2", n)
		}
		early.c.Close()
		synctest.Wait()
		if n := s.br.expiries.len(); n != 1 {
			t.Fatalf("%d sessions in the heap after one left, want 1", n)
		}
		time.Sleep(35 * time.Second)
		synctest.Wait()
		if _, _, closed := closeOf(lc); closed || s.br.Stats().Expired != 0 {
			t.Fatal("a connection was expired at the deadline of one that had left")
		}
		later.ping()
	})
}

// TestExpiredAtHandshake: an identity whose expiry has passed is refused
// like a failed WithAuthenticate: 401, no socket, and the probe says
// unauthorized.
func TestExpiredAtHandshake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		auth := ttlAuth{start: time.Now().Add(-time.Hour)} // every ttl ended long ago
		s := newMemServer(t, nil, WithAuthenticate(auth.authenticate), WithExpiry(auth.expiry))
		_, err := s.ws.Dial(t.Context(), "/?ttl=5", wstest.DialOptions{})
		var se *wstest.StatusError
		if !errors.As(err, &se) || se.Status != http.StatusUnauthorized {
			t.Fatalf("dial with expired credentials: %v, want 401", err)
		}
		if a := probe(t, s.br, http.MethodGet, "?ttl=5", ""); a.status != 401 || a.code != "unauthorized" {
			t.Fatalf("probe: %d %q, want 401 unauthorized", a.status, a.code)
		}
		cl, _ := s.dialTTL(t, 0) // never expires
		cl.ping()
		if st := s.br.Stats(); st.HandshakesRefused["expired"] != 1 || st.Clients != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
}

// TestExpiryAndCloseRace: Close while deadlines are due closes every
// connection once, with one close frame each, and leaves no goroutine.
func TestExpiryAndCloseRace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		auth := ttlAuth{start: time.Now()}
		s := newMemServer(t, nil, WithAuthenticate(auth.authenticate), WithExpiry(auth.expiry))
		var conns []*wstest.Conn
		for range 10 {
			cl, c := s.dialTTL(t, 2)
			wstest.Drain(cl.c)
			conns = append(conns, c)
		}
		time.Sleep(2 * time.Second) // the deadline and Close at the same instant
		s.br.Close()
		for i, c := range conns {
			if n := len(c.CloseFrames()); n != 1 {
				t.Fatalf("connection %d got %d close frames, want 1", i, n)
			}
		}
	})
}
