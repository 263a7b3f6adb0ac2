package natsbus

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/whalesong/bus"
)

const (
	// defaultPublishTimeout bounds a publish whose ctx has no deadline.
	defaultPublishTimeout = 5 * time.Second
	// tryTimeout is how long one try waits for its ack before the same id
	// is sent again (a leader may have died with it).
	tryTimeout = time.Second
	// Pauses between tries that failed at once.
	pubRetryMin = 5 * time.Millisecond
	pubRetryMax = 200 * time.Millisecond
	// maxPlainID is the longest caller id used as it is in Nats-Msg-Id.
	maxPlainID = 128
)

// JetStream API error codes that Append treats specially.
const (
	errCodeInProcess = 10158 // duplicate message id is in process: clustered, still in flight
	errCodeMsgSize   = 10054 // message size exceeds maximum allowed
	errCodeNotMatch  = 10060 // expected stream does not match
	errCodeSealed    = 10109 // stream is sealed
)

// outcome is what one try of a publish tells.
type outcome int

const (
	acked        outcome = iota // stored (or stored before: a duplicate)
	refused                     // not stored by this try; another may succeed
	refusedAll                  // not stored, and no other try would be
	unanswered                  // may have been stored
	unanswerable                // may have been stored, and no other try can tell
)

// Append publishes one event to the stream with a Nats-Msg-Id, so that
// every try of one id is stored at most once within the dedup window, and
// returns its Seq. It tries again while ctx allows (5s without a deadline,
// never past half the dedup window). An error wraps ErrNotStored when no
// try can have been stored, and bus.ErrUncertain otherwise. Every try of a
// caller id asks the id ledger first, and the id is recorded there once
// stored (see ids.go): a publish that cannot read the ledger sends nothing.
func (l *natsLog[T]) Append(ctx context.Context, id, topic string, data T) (uint64, error) {
	msg, mid, err := l.message(id, topic, data)
	if err != nil {
		return 0, err
	}
	var report chan seenAt
	var ask func(time.Time) (uint64, idState, error)
	if id != "" { // a caller id may be a retry of one stored long ago (see ids.go)
		report = l.ids.expect(mid, topic, l.cfg.dedupWindow()) // until the ack: if it never comes, the follower tells
		ask = func(deadline time.Time) (uint64, idState, error) { return l.askID(ctx, mid, topic, deadline) }
	}
	seq, how, err := l.publish(ctx, msg, ask)
	switch {
	case id == "":
	case err != nil && errors.Is(err, bus.ErrUncertain):
		l.ids.handOver(mid, report) // the follower tells, if it was stored
	case err != nil || how == recorded:
		l.ids.settled(mid, report) // not stored, refused as another topic's, or recorded before
	}
	if err != nil {
		return 0, fmt.Errorf("%w (publish to %s, id %s)", err, quote(topic), quote(mid))
	}
	if id == "" || how == recorded {
		return seq, nil
	}
	if how == duplicate {
		if err := l.checkReuse(ctx, seq, msg.Subject); err != nil {
			l.ids.settled(mid, report)
			return 0, fmt.Errorf("%w: id %s (publish to %s)", err, quote(id), quote(topic))
		}
	}
	l.recordStored(ctx, mid, topic, seq, how == duplicate, report)
	return seq, nil
}

// message builds the stream message of one event, and its Nats-Msg-Id.
func (l *natsLog[T]) message(id, topic string, data T) (*nats.Msg, string, error) {
	payload, err := l.cfg.codec.Marshal(data)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w: encode an event for %s: %w", ErrNotStored, ErrCodec, quote(topic), err)
	}
	mid := msgID(id)
	return &nats.Msg{
		Subject: l.prefix + topic,
		Data:    payload,
		Header:  nats.Header{jetstream.MsgIDHeader: {mid}, jetstream.ExpectedStreamHeader: {l.cfg.stream}},
	}, mid, nil
}

// checkReuse refuses a duplicate whose first event went to another topic:
// the id was used for something else (bus.ErrIDReused; nothing stored). An
// event no longer retained cannot be checked and counts as the same.
func (l *natsLog[T]) checkReuse(ctx context.Context, seq uint64, subject string) error {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	got, _, ok := l.storedAt(rctx, seq)
	if !ok || got == subject {
		return nil // the event is stored; the check is best effort
	}
	return fmt.Errorf("%w: it went to %s, seq %d", bus.ErrIDReused, quote(topicOf(got, l.prefix)), seq)
}

// storedAt reads the message the stream holds at seq (STREAM.MSG.GET,
// answered by the stream leader): its subject and headers. ok is false
// without an answer, or when no message is there.
func (l *natsLog[T]) storedAt(ctx context.Context, seq uint64) (subject string, hdrs []byte, ok bool) {
	req := fmt.Appendf(nil, `{"seq":%d}`, seq)
	resp, err := l.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+l.cfg.stream, req)
	if err != nil {
		return "", nil, false
	}
	var got struct {
		Message *struct {
			Subject string `json:"subject"`
			Hdrs    []byte `json:"hdrs"`
		} `json:"message"`
	}
	if json.Unmarshal(resp.Data, &got) != nil || got.Message == nil {
		return "", nil, false
	}
	return got.Message.Subject, got.Message.Hdrs, true
}

// msgID is the Nats-Msg-Id of a publish: generated ids and caller ids live
// in separate namespaces ("g." and "i."), and a caller id that is long or
// holds bytes a header cannot carry is replaced by its SHA-256 ("h.").
func msgID(id string) string {
	switch {
	case id == "":
		return "g." + nuid.Next()
	case plainID(id):
		return "i." + id
	default:
		sum := sha256.Sum256([]byte(id))
		return "h." + base64.RawURLEncoding.EncodeToString(sum[:])
	}
}

func plainID(id string) bool {
	if len(id) > maxPlainID {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

// storedAs is how a publish found its event stored.
type storedAs int

const (
	fresh     storedAs = iota // this publish stored it
	duplicate                 // JetStream knew the id: stored before, by an earlier try or another publish
	recorded                  // the id ledger knew it: stored before, and nothing was sent
)

// publish sends msg until one try is acked, a try proves that none can be,
// or the deadline passes. With ask (a caller id), every try first asks the
// id ledger and sends only if the id is new there: a retry may come after
// a server restart that made JetStream forget the id while another node
// stored and recorded it meanwhile. A publish that has sent nothing by
// half its time because the ledger does not answer gives up: after a
// restart JetStream's own dedup may have forgotten the id.
func (l *natsLog[T]) publish(ctx context.Context, msg *nats.Msg, ask func(time.Time) (uint64, idState, error)) (uint64, storedAs, error) {
	deadline := l.publishDeadline(ctx)
	lookupBy := time.Now().Add(time.Until(deadline) / 2)
	sent, uncertain := false, false
	var last error
	for wait := pubRetryMin; ; wait = min(2*wait, pubRetryMax) {
		if err := ctx.Err(); err != nil || !time.Now().Before(deadline) {
			last = errors.Join(last, expired(ctx))
			break
		}
		if ask != nil {
			by := deadline
			if !sent {
				by = lookupBy
			}
			seq, st, err := ask(by)
			if st == idFound {
				return seq, recorded, err // err: it went to another topic
			}
			if st == idUnknown { // not sent: the ledger could not say
				last = err
				if !sent && !time.Now().Before(lookupBy) {
					return 0, fresh, fmt.Errorf("%w: cannot read the id ledger %s within half the publish's time, nothing sent: %w", ErrNotStored, quote(l.cfg.idsStream()), err)
				}
				pause(ctx, wait, deadline)
				continue
			}
		}
		seq, dup, out, err := l.try(ctx, msg, deadline)
		sent = true
		switch out {
		case acked:
			if dup {
				return seq, duplicate, nil
			}
			return seq, fresh, nil
		case unanswered, unanswerable:
			uncertain = true
		}
		last = err
		if out == refusedAll || out == unanswerable {
			break
		}
		pause(ctx, wait, deadline)
	}
	if uncertain {
		return 0, fresh, fmt.Errorf("%w: %w", bus.ErrUncertain, last)
	}
	return 0, fresh, fmt.Errorf("%w: %w", ErrNotStored, last)
}

// pause waits before the next try: wait, or until the deadline, or until
// ctx ends (which the loop's head reports).
func pause(ctx context.Context, wait time.Duration, deadline time.Time) {
	if d := min(wait, time.Until(deadline)); d > 0 {
		sleep(ctx, d)
	}
}

// expired is why a publish stopped trying: ctx's error, or its own bound.
func expired(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return fmt.Errorf("no ack within the publish bound: %w", context.DeadlineExceeded)
}

// publishDeadline ends the tries of one publish: ctx's deadline, or
// defaultPublishTimeout, and never later than half the dedup window, so
// that every try falls inside the window of the first one stored.
func (l *natsLog[T]) publishDeadline(ctx context.Context) time.Time {
	now := time.Now()
	d, ok := ctx.Deadline()
	if !ok {
		d = now.Add(defaultPublishTimeout)
	}
	return earliest(d, now.Add(l.cfg.dedupWindow()/2))
}

// try sends msg once and waits for its ack until tryTimeout or the deadline.
func (l *natsLog[T]) try(ctx context.Context, msg *nats.Msg, deadline time.Time) (uint64, bool, outcome, error) {
	closed, before := l.nc.IsClosed(), l.nc.LastError()
	tctx, cancel := context.WithDeadline(ctx, earliest(deadline, time.Now().Add(tryTimeout)))
	defer cancel()
	resp, err := l.nc.RequestMsgWithContext(tctx, msg)
	if err != nil {
		if perr := refusedSince(l.nc, before, func(s string) bool { return s == msg.Subject }); perr != nil {
			return 0, false, refusedAll, perr // the server dropped it: no try can be stored
		}
		return 0, false, requestOutcome(err, closed), err
	}
	return l.ackOutcome(resp.Data)
}

// requestOutcome classifies an error of nats.Conn.RequestMsgWithContext.
// Only the errors nats.go returns before it buffers the message, and a
// no-responders status (no stream took it), prove it was not stored; any
// other error came after it may have reached the server.
func requestOutcome(err error, closedBefore bool) outcome {
	switch {
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, nats.ErrReconnectBufExceeded):
		return refused
	case errors.Is(err, nats.ErrMaxPayload), errors.Is(err, nats.ErrBadSubject),
		errors.Is(err, nats.ErrHeadersNotSupported), errors.Is(err, nats.ErrInvalidConnection),
		errors.Is(err, nats.ErrConnectionDraining), errors.Is(err, nats.ErrInvalidMsg):
		return refusedAll
	case errors.Is(err, nats.ErrConnectionClosed):
		if closedBefore {
			return refusedAll
		}
		return unanswerable
	default:
		return unanswered
	}
}

type pubAck struct {
	Stream    string              `json:"stream"`
	Seq       uint64              `json:"seq"`
	Duplicate bool                `json:"duplicate"`
	Error     *jetstream.APIError `json:"error"`
}

// ackOutcome reads the stream's answer to one try.
func (l *natsLog[T]) ackOutcome(data []byte) (uint64, bool, outcome, error) {
	return ackFrom(data, l.cfg.stream)
}

// ackFrom reads a JetStream publish ack, which must come from stream.
func ackFrom(data []byte, stream string) (uint64, bool, outcome, error) {
	var a pubAck
	if err := json.Unmarshal(data, &a); err != nil {
		return 0, false, unanswered, fmt.Errorf("unreadable ack %s: %w", quote(string(data)), err)
	}
	if a.Error != nil {
		switch a.Error.ErrorCode {
		case errCodeInProcess:
			return 0, false, unanswered, a.Error
		case errCodeMsgSize, errCodeNotMatch, errCodeSealed:
			return 0, false, refusedAll, a.Error
		default:
			return 0, false, refused, a.Error
		}
	}
	if a.Stream != stream || a.Seq == 0 {
		return 0, false, unanswered, fmt.Errorf("unexpected ack %s", quote(string(data)))
	}
	return a.Seq, a.Duplicate, acked, nil
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
