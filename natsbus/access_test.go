package natsbus

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/whalesong/bus/natsbus/internal/natstest"
)

// The permissions the package doc lists are enough, and each one is
// needed: without it New fails with ErrPermission naming the subject
// (rather than timing out, or making a bus that silently goes without its
// live feed or its id ledger), and a publish to a subject the account
// refuses is ErrNotStored, not an uncertain outcome after its ctx.
func TestPermissions(t *testing.T) {
	noLeaks(t)
	pub := []string{defaultStream + ".>", "_whalesong_ids." + defaultStream + ".>", "$JS.API.>"}
	sub := []string{"_whalesong." + defaultStream + ".>", "_INBOX.>"}
	without := func(list []string, drop string) []string {
		return slices.DeleteFunc(slices.Clone(list), func(s string) bool { return s == drop })
	}
	cases := []struct {
		user     string
		pub, sub []string
		refused  string // the subject New names ("" : New succeeds)
	}{
		{"all", pub, sub, ""},
		{"no-api", without(pub, "$JS.API.>"), sub, "$JS.API."},
		{"no-inbox", pub, without(sub, "_INBOX.>"), "_INBOX."},
		{"no-live", pub, without(sub, sub[0]), "_whalesong." + defaultStream + ".>"},
		{"no-ledger", without(pub, pub[1]), sub, "_whalesong_ids." + defaultStream + "._probe"},
		{"no-events", without(pub, pub[0]), sub, ""},
	}
	s := natstest.StartWith(t, func(o *server.Options) {
		o.Users = []*server.User{{Username: "admin", Password: "a"}}
		for _, c := range cases {
			o.Users = append(o.Users, &server.User{Username: c.user, Password: "p", Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: c.pub},
				Subscribe: &server.SubjectPermission{Allow: c.sub},
			}})
		}
	})
	quiet := nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}) // the violations are expected
	adminConn := connect(t, s.URL(), nats.UserInfo("admin", "a"), quiet)
	admin := newBus(t, adminConn) // the streams exist
	defer admin.Close()
	if n := streamState(t, adminConn, defaultStream+"_IDS").State.Msgs; n != 0 {
		t.Fatalf("the ledger holds %d messages after New: its probe stored one", n)
	}
	for _, c := range cases {
		t.Run(c.user, func(t *testing.T) {
			nc := connect(t, s.URL(), nats.UserInfo(c.user, "p"), quiet)
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			b, err := New[int](ctx, nc)
			if c.refused != "" {
				if b != nil {
					_ = b.Close()
				}
				if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), c.refused) || ctx.Err() != nil {
					t.Fatalf("New without %s: %v; want ErrPermission naming it, before ctx ends", c.refused, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("New with the documented permissions: %v", err)
			}
			defer b.Close()
			pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer pcancel()
			_, perr := b.Publish(pctx, "t", 1)
			_, iderr := b.PublishID(pctx, "id-"+c.user, "t", 1)
			switch {
			case c.user == "no-events" && (!errors.Is(perr, ErrNotStored) || !errors.Is(perr, ErrPermission) || pctx.Err() != nil):
				t.Fatalf("Publish the account refuses: %v; want ErrNotStored and ErrPermission before its ctx ends", perr)
			case c.user == "no-events" && (!errors.Is(iderr, ErrNotStored) || !errors.Is(iderr, ErrPermission)):
				t.Fatalf("PublishID the account refuses: %v; want ErrNotStored and ErrPermission", iderr)
			case c.user != "no-events" && (perr != nil || iderr != nil):
				t.Fatalf("Publish, PublishID with the documented permissions: %v, %v", perr, iderr)
			}
			if c.user == "no-events" { // a refusal from before a call is not that call's
				all := func(string) bool { return true }
				if stale := nc.LastError(); refusedSince(nc, stale, all) != nil || refusedSince(nc, nil, all) == nil {
					t.Fatalf("refusedSince after %v: a refusal before the call counted, or a new one did not", stale)
				}
			}
		})
	}
}
