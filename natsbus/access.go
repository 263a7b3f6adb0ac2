package natsbus

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A subject the account does not allow this connection is not an error
// that nats.go returns from the call: the server drops the message (or the
// subscription) and sends a permissions violation, which nats.go keeps as
// the connection's last error, while a request waits for its timeout. So
// New checks each permission it needs once (a denial fails New with
// ErrPermission, naming the subject, rather than a timeout or a bus that
// silently goes without its live feed or its id ledger), and a publish
// that times out checks whether the server refused its subject meanwhile.

// refusedSince returns the connection's last error, wrapped in
// ErrPermission, if it is a permissions violation for a subject that
// names says is one of the caller's, and it is not before (the last
// error when the caller began: an older one is not this call's).
func refusedSince(nc *nats.Conn, before error, names func(subject string) bool) error {
	le := nc.LastError()
	if le == nil || le == before || !errors.Is(le, nats.ErrPermissionViolation) {
		return nil
	}
	if subject := violated(le.Error()); names(subject) {
		return fmt.Errorf("%w: the server refused %s (see Permissions in the package doc): %w", ErrPermission, quote(subject), le)
	}
	return nil
}

// under names the subjects that start with one of prefixes.
func under(prefixes ...string) func(string) bool {
	return func(subject string) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(subject, p) {
				return true
			}
		}
		return false
	}
}

// violated is the subject a permissions violation names ("... Publish to
// \"subject\"" or "Subscription to \"subject\"").
func violated(msg string) string {
	i := strings.Index(msg, ` to "`)
	if i < 0 {
		return ""
	}
	rest := msg[i+len(` to "`):]
	if j := strings.IndexByte(rest, '"'); j >= 0 {
		return rest[:j]
	}
	return rest
}

// apiRefused is what ensure checks after a failed request: the JetStream
// API, and the inbox its answers come to.
func apiRefused(nc *nats.Conn, before error) func() error {
	inbox := nats.InboxPrefix
	if nc.Opts.InboxPrefix != "" {
		inbox = nc.Opts.InboxPrefix + "."
	}
	names := under(jetstream.DefaultAPIPrefix, inbox)
	return func() error { return refusedSince(nc, before, names) }
}

// checkAccess checks the two permissions New's requests do not need: to
// subscribe to the live copies, and to publish to the id ledger (a probe
// that the ledger refuses, so that nothing is stored).
func checkAccess(ctx context.Context, nc *nats.Conn, cfg config, before error) error {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	sub, err := nc.SubscribeSync(cfg.livePrefix() + ">")
	if err != nil {
		return fmt.Errorf("%w: subscribe to the live copies: %w", ErrStream, err)
	}
	err = nc.FlushWithContext(rctx) // the server answers the subscription before the flush
	_ = sub.Unsubscribe()
	if perr := refusedSince(nc, before, under(cfg.livePrefix())); perr != nil {
		return perr
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrStream, err)
	}
	probe := &nats.Msg{Subject: cfg.idsPrefix() + "_probe", Header: nats.Header{
		jetstream.ExpectedStreamHeader:      {cfg.idsStream()},
		jetstream.ExpectedLastSubjSeqHeader: {"18446744073709551615"}, // never true: nothing is stored
	}}
	if _, err := nc.RequestMsgWithContext(rctx, probe); err != nil {
		if perr := refusedSince(nc, before, under(cfg.idsPrefix())); perr != nil {
			return perr
		}
	}
	return nil
}
