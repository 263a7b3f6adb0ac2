package natsbus

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/whalesong/bus"
)

// The id ledger. JetStream deduplicates a Nats-Msg-Id only while it
// remembers the id, and after a restart it rebuilds what it remembers from
// the messages it still stores: an event that WithHistory already evicted
// takes its id with it, and a retry of that id after a restart would be
// stored a second time (SCALE-OUT.md, 1.4). So every caller id
// (Bus.PublishID, the bridge's client publishes) is also written, once its
// event is stored, to a small stream of its own, "<stream>_IDS": one message
// per id, kept for the dedup window whatever happens to the event. A publish
// with a caller id looks there first and answers a known id with its first
// seq. What is left: a publish whose ack was lost, whose event the history
// evicts and whose server restarts before its own retry, all within the few
// milliseconds of that retry (the ledger can only record a seq it knows).

// idsStream is the ledger's stream.
func (c config) idsStream() string { return c.stream + "_IDS" }

// idsPrefix turns a hashed id into its ledger subject.
func (c config) idsPrefix() string { return "_whalesong_ids." + c.stream + "." }

// idsStreamConfig keeps one message per id for the dedup window.
func (c config) idsStreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              c.idsStream(),
		Description:       "whalesong publish ids of stream " + c.stream + " (github.com/whalesong/bus/natsbus)",
		Subjects:          []string{c.idsPrefix() + ">"},
		Retention:         jetstream.LimitsPolicy,
		MaxConsumers:      -1,
		MaxMsgs:           -1,
		MaxBytes:          -1,
		Discard:           jetstream.DiscardOld,
		MaxAge:            c.dedupWindow(),
		MaxMsgsPerSubject: 1,
		MaxMsgSize:        -1,
		Storage:           jetstream.FileStorage,
		Replicas:          c.replicas,
		Duplicates:        c.dedupWindow(),
		DenyDelete:        true,
		DenyPurge:         true,
	}
}

// idsMismatch lists how an existing ledger differs from what it must be.
func (c config) idsMismatch(got jetstream.StreamConfig) []string {
	want := c.idsStreamConfig()
	var diffs []string
	diff := func(field string, g, w any) {
		diffs = append(diffs, fmt.Sprintf("%s is %v, want %v", field, g, w))
	}
	if !slices.Equal(got.Subjects, want.Subjects) {
		diff("subjects", got.Subjects, want.Subjects)
	}
	if got.MaxMsgsPerSubject != want.MaxMsgsPerSubject {
		diff("max_msgs_per_subject", got.MaxMsgsPerSubject, want.MaxMsgsPerSubject)
	}
	if got.MaxAge < want.MaxAge {
		diff("max_age", got.MaxAge, want.MaxAge)
	}
	if got.Replicas != want.Replicas {
		diff("num_replicas (WithReplicas)", got.Replicas, want.Replicas)
	}
	return append(diffs, deleters(got)...)
}

// idEntry is a ledger message: where an id's event was stored.
type idEntry struct {
	Epoch string `json:"epoch"`
	Seq   uint64 `json:"seq"`
	Topic string `json:"topic"`
}

// idSubject is the ledger subject of a Nats-Msg-Id (hashed: any id, one
// token).
func (l *natsLog[T]) idSubject(mid string) string {
	sum := sha256.Sum256([]byte(mid))
	return l.cfg.idsPrefix() + base64.RawURLEncoding.EncodeToString(sum[:])
}

// idState is what the ledger said of an id.
type idState int

const (
	idUnknown idState = iota // the ledger could not be asked
	idAbsent                 // no entry in this epoch: the id is new
	idFound                  // stored before, with that seq
)

// lookupID asks the ledger about mid until it answers or the lookup's
// share of the publish's time (half of it) is spent: a publish must not
// go ahead on a ledger it could not read, which is when, after a restart,
// JetStream's own dedup may have forgotten the id.
func (l *natsLog[T]) lookupID(ctx context.Context, mid, topic string) (uint64, error) {
	deadline := l.publishDeadline(ctx)
	deadline = time.Now().Add(time.Until(deadline) / 2)
	var last error
	for wait := pubRetryMin; ; wait = min(2*wait, pubRetryMax) {
		seq, st, err := l.askID(ctx, mid, topic, deadline)
		switch {
		case st == idFound || st == idAbsent:
			return seq, err
		case !time.Now().Before(deadline) || ctx.Err() != nil:
			return 0, fmt.Errorf("%w: cannot read the id ledger %s, nothing sent: %w", ErrNotStored, quote(l.cfg.idsStream()), errors.Join(err, last, expired(ctx)))
		}
		last = err
		if pause := min(wait, time.Until(deadline)); pause > 0 && !sleep(ctx, pause) {
			continue
		}
	}
}

// askID asks the ledger once. An entry of another epoch (the stream was
// recreated since) counts as absent; one for another topic is an error.
func (l *natsLog[T]) askID(ctx context.Context, mid, topic string, deadline time.Time) (uint64, idState, error) {
	rctx, cancel := context.WithDeadline(ctx, earliest(deadline, time.Now().Add(tryTimeout)))
	defer cancel()
	epoch := l.epochNow()
	if epoch == "" { // no follower has read the stream yet: ask it
		e, err := l.Epoch(rctx)
		if err != nil {
			return 0, idUnknown, err
		}
		epoch = e
	}
	req, _ := json.Marshal(map[string]string{"last_by_subj": l.idSubject(mid)})
	resp, err := l.nc.RequestWithContext(rctx, "$JS.API.STREAM.MSG.GET."+l.cfg.idsStream(), req)
	if err != nil {
		return 0, idUnknown, err
	}
	var got struct {
		Message *struct {
			Data []byte `json:"data"`
		} `json:"message"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &got); err != nil {
		return 0, idUnknown, fmt.Errorf("unreadable answer %s: %w", quote(string(resp.Data)), err)
	}
	switch {
	case got.Error != nil && got.Error.ErrorCode == errCodeNoMessage:
		return 0, idAbsent, nil
	case got.Error != nil:
		return 0, idUnknown, got.Error
	case got.Message == nil:
		return 0, idUnknown, fmt.Errorf("an answer without a message: %s", quote(string(resp.Data)))
	}
	var e idEntry
	if err := json.Unmarshal(got.Message.Data, &e); err != nil || e.Epoch != epoch {
		return 0, idAbsent, nil // not ours, or of an earlier incarnation
	}
	if e.Topic != topic {
		return 0, idFound, fmt.Errorf("%w: it went to %s, seq %d", bus.ErrIDReused, quote(e.Topic), e.Seq)
	}
	return e.Seq, idFound, nil
}

// recordID writes where mid's event was stored, once; a failure is
// logged (the event is stored: only a later retry of it is less safe).
func (l *natsLog[T]) recordID(ctx context.Context, mid string, e idEntry) {
	data, _ := json.Marshal(e)
	msg := &nats.Msg{
		Subject: l.idSubject(mid),
		Data:    data,
		Header:  nats.Header{jetstream.MsgIDHeader: {mid}, jetstream.ExpectedStreamHeader: {l.cfg.idsStream()}},
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := l.nc.RequestMsgWithContext(rctx, msg)
	if err == nil {
		if _, _, out, aerr := l.ackOutcome(resp.Data); out != acked {
			err = errors.Join(aerr, errors.New("not acked"))
		}
	}
	if err != nil {
		l.cfg.logger.Warn("natsbus: publish id not recorded", "stream", l.cfg.stream, "seq", e.Seq, "err", err)
	}
}

// ensureIDs creates the ledger or checks the existing one, retrying
// transient failures until ctx ends.
func ensureIDs(ctx context.Context, js jetstream.JetStream, c config) error {
	var last error
	for wait := retryMin; ; wait = min(2*wait, retryMax) {
		err := ensureIDsOnce(ctx, js, c)
		if err == nil || errors.Is(err, ErrStreamMismatch) || !transient(err) {
			return err
		}
		last = err
		if !sleep(ctx, wait) {
			return fmt.Errorf("%w: stream %s: %w (last error: %w)", ErrStream, quote(c.idsStream()), ctx.Err(), last)
		}
	}
}

func ensureIDsOnce(ctx context.Context, js jetstream.JetStream, c config) error {
	info, err := streamInfo(ctx, js, c.idsStream())
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		_, err = js.CreateStream(rctx, c.idsStreamConfig())
		cancel()
		if err == nil || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			info, err = streamInfo(ctx, js, c.idsStream())
		}
	}
	if err != nil {
		return fmt.Errorf("%w: stream %s: %w", ErrStream, quote(c.idsStream()), err)
	}
	if diffs := c.idsMismatch(info.Config); len(diffs) > 0 {
		return fmt.Errorf("%w: stream %s: %s", ErrStreamMismatch, quote(c.idsStream()), strings.Join(diffs, "; "))
	}
	return nil
}
