package natsbus

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
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

// idsMismatch lists how an existing ledger differs from what it must be: a
// longer max_age or dedup window keeps ids longer, which is harmless.
func (c config) idsMismatch(got jetstream.StreamConfig) []string {
	want := c.idsStreamConfig()
	var d diffs
	d.limits(got, want)
	if got.MaxMsgsPerSubject != want.MaxMsgsPerSubject {
		d.add("max_msgs_per_subject", got.MaxMsgsPerSubject, want.MaxMsgsPerSubject)
	}
	if got.MaxAge != 0 && got.MaxAge < want.MaxAge {
		d.add("max_age", got.MaxAge, want.MaxAge)
	}
	if got.Duplicates < want.Duplicates {
		d.add("duplicate_window", got.Duplicates, want.Duplicates)
	}
	return d
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
	// The follower's epoch lags a recreated stream by up to a second: the
	// answer must be of the stream as it is now.
	now, err := l.Epoch(rctx)
	switch {
	case err != nil:
		return 0, idUnknown, err
	case now != e.Epoch:
		return 0, idAbsent, nil
	}
	if l.storedOther(rctx, e.Seq, mid) {
		return 0, idAbsent, nil // an entry mislabelled across a recreation: the seq holds another event
	}
	if e.Topic != topic {
		return 0, idFound, fmt.Errorf("%w: it went to %s, seq %d", bus.ErrIDReused, quote(e.Topic), e.Seq)
	}
	return e.Seq, idFound, nil
}

// storedOther reports whether the stream holds, at seq, an event of
// another Nats-Msg-Id than mid (one evicted, or not answered for, counts
// as mid's: the entry stands).
func (l *natsLog[T]) storedOther(ctx context.Context, seq uint64, mid string) bool {
	_, hdrs, ok := l.storedAt(ctx, seq)
	return ok && !strings.Contains(string(hdrs), "\r\n"+jetstream.MsgIDHeader+": "+mid+"\r\n")
}

// reportWait bounds how long Append waits for its follower to read its
// event (microseconds, when it is live) before it asks the stream instead.
const reportWait = 250 * time.Millisecond

// recordStored records an id Append has just stored at seq, under the
// epoch of the incarnation that stored it. This node's follower tells that
// epoch when it reads the event, which the bus waits for anyway (its own
// epoch may lag a recreated stream, but never for an event it has read in
// the new one). A duplicate, whose event the follower may have read long
// ago, a log nobody follows, and a follower that has not read the event
// within reportWait ask the stream for its epoch instead; without an
// answer, the follower's side records the id once it reads the event (see
// idBacklog).
func (l *natsLog[T]) recordStored(ctx context.Context, mid, topic string, seq uint64, dup bool, report chan seenAt) {
	if !dup && report != nil && l.followers.Load() > 0 {
		timer := time.NewTimer(min(time.Until(l.publishDeadline(ctx)), reportWait))
		defer timer.Stop()
		select {
		case at := <-report:
			if at.seq == seq && at.epoch != "" {
				l.ids.settled(mid, report)
				l.recordID(ctx, mid, idEntry{Epoch: at.epoch, Seq: seq, Topic: topic})
				return
			}
		case <-timer.C: // the follower is behind (a recreated stream, a catch-up): ask the stream
		case <-ctx.Done():
			l.ids.handOver(mid, report)
			return
		}
	}
	epoch, err := l.Epoch(ctx)
	if err != nil {
		l.ids.handOver(mid, report) // the follower's side records it
		return
	}
	l.ids.settled(mid, report)
	l.recordID(ctx, mid, idEntry{Epoch: epoch, Seq: seq, Topic: topic})
}

// recordID writes where mid's event was stored, trying again (a leader
// election, a duplicate still in flight from a concurrent writer of the
// same id) until it is acknowledged or the publish's time is spent: the
// event is stored either way, and a failure is logged (a later retry of
// the id is then protected by JetStream's own dedup alone). The entry's
// Nats-Msg-Id names the epoch too, so that the id used again in a new
// epoch is recorded again.
func (l *natsLog[T]) recordID(ctx context.Context, mid string, e idEntry) {
	msg := l.idMessage(mid, e)
	deadline := l.publishDeadline(ctx)
	var err error
	for wait := pubRetryMin; ; wait = min(2*wait, pubRetryMax) {
		if err = l.recordOnce(ctx, msg, deadline); err == nil {
			return
		}
		if pause := min(wait, time.Until(deadline)); pause <= 0 || !sleep(ctx, pause) {
			break
		}
	}
	l.cfg.logger.Warn("natsbus: publish id not recorded yet; retrying in the background", "stream", l.cfg.stream, "seq", e.Seq, "err", err)
	l.ids.later(mid, e)
}

// idMessage is the ledger message of an entry.
func (l *natsLog[T]) idMessage(mid string, e idEntry) *nats.Msg {
	data, _ := json.Marshal(e)
	return &nats.Msg{
		Subject: l.idSubject(mid),
		Data:    data,
		Header:  nats.Header{jetstream.MsgIDHeader: {mid + "@" + e.Epoch}, jetstream.ExpectedStreamHeader: {l.cfg.idsStream()}},
	}
}

func (l *natsLog[T]) recordOnce(ctx context.Context, msg *nats.Msg, deadline time.Time) error {
	rctx, cancel := context.WithDeadline(ctx, earliest(deadline, time.Now().Add(tryTimeout)))
	defer cancel()
	resp, err := l.nc.RequestMsgWithContext(rctx, msg)
	if err != nil {
		return err
	}
	_, _, out, err := ackFrom(resp.Data, l.cfg.idsStream())
	if out != acked && err == nil {
		err = errors.New("not acknowledged")
	}
	return err
}

// ensureIDs creates the ledger or checks the existing one.
func ensureIDs(ctx context.Context, js jetstream.JetStream, c config, refused func() error) error {
	return ensure(ctx, js, c.idsStreamConfig(), c.idsMismatch, refused)
}

// The ledger's backlog: ids that Append could not record, and ids whose
// publish ended uncertain, whose seq only the follower can tell once it
// reads their event. A goroutine of each Follow call records them (see
// recordLoop), so an id whose ack was lost is protected too, once this
// node has read its event. An Append still waiting for its ack, or for the
// follower to read its event, is told by the follower instead (expect).
type idBacklog struct {
	mu      sync.Mutex
	pending []pendingID          // mu: to record, oldest first
	inDoubt map[string]inDoubtID // mu: by Nats-Msg-Id, publishes not settled yet
	changed chan struct{}        // mu: closed and replaced when pending grows
}

type pendingID struct {
	mid string
	e   idEntry
}

type inDoubtID struct {
	topic  string
	until  time.Time   // forgotten after the dedup window
	report chan seenAt // the waiting Append's (room for one); nil once it left the id to the backlog
	told   bool        // report holds the follower's, or had it
}

// seenAt is where the follower read an event: its seq, in its epoch.
type seenAt struct {
	epoch string
	seq   uint64
}

// maxIDBacklog bounds both lists: past it the oldest pending entry is dropped, and no new doubt is kept.
const maxIDBacklog = 4096

// later queues an entry Append could not write.
func (b *idBacklog) later(mid string, e idEntry) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pushLocked(pendingID{mid, e})
}

func (b *idBacklog) pushLocked(p pendingID) {
	if len(b.pending) >= maxIDBacklog {
		b.pending = b.pending[1:]
	}
	b.pending = append(b.pending, p)
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
}

// expect remembers a publish about to be sent, until the window ends: the
// follower reports where it read its event to the channel returned, until
// the Append settles it or hands it over (both name the channel, so that
// one Append never ends another's wait); after a hand-over the follower
// queues its entry itself. It returns nil when the backlog is full, or
// another Append of the same id is waiting already.
func (b *idBacklog) expect(mid, topic string, window time.Duration) chan seenAt {
	ch := make(chan seenAt, 1)
	b.mu.Lock()
	defer b.mu.Unlock()
	if d, ok := b.inDoubt[mid]; ok && d.report != nil {
		return nil
	}
	if !b.doubtLocked(mid, inDoubtID{topic: topic, until: time.Now().Add(window), report: ch}) {
		return nil
	}
	return ch
}

func (b *idBacklog) doubtLocked(mid string, d inDoubtID) bool {
	if b.inDoubt == nil {
		b.inDoubt = map[string]inDoubtID{}
	}
	if len(b.inDoubt) >= maxIDBacklog {
		now := time.Now()
		for k, old := range b.inDoubt {
			if now.After(old.until) {
				delete(b.inDoubt, k)
			}
		}
	}
	if len(b.inDoubt) >= maxIDBacklog {
		return false
	}
	b.inDoubt[mid] = d
	return true
}

// handOver leaves the id Append expected with report to the backlog:
// Append stops waiting (its ack was lost, or the follower did not read the
// event in time). One the follower has already reported is queued at once.
func (b *idBacklog) handOver(mid string, report chan seenAt) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, ok := b.inDoubt[mid]
	if !ok || report == nil || d.report != report {
		return
	}
	if d.told {
		delete(b.inDoubt, mid)
		select {
		case at := <-d.report:
			b.pushLocked(pendingID{mid, idEntry{Epoch: at.epoch, Seq: at.seq, Topic: d.topic}})
		default: // Append took it, and records it itself
		}
		return
	}
	d.report = nil
	b.inDoubt[mid] = d
}

// seen is the follower's: an event it read, with its Nats-Msg-Id and the
// epoch it read it in. A waiting Append is told (once); one whose publish
// ended uncertain here is queued for the ledger.
func (b *idBacklog) seen(mid, epoch string, seq uint64, topic string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, ok := b.inDoubt[mid]
	if !ok || d.topic != topic {
		return
	}
	if d.report != nil {
		if !d.told {
			d.report <- seenAt{epoch: epoch, seq: seq} // room for one, and only one is sent
			d.told = true
			b.inDoubt[mid] = d
		}
		return // until the Append settles it or hands it over
	}
	delete(b.inDoubt, mid)
	b.pushLocked(pendingID{mid, idEntry{Epoch: epoch, Seq: seq, Topic: topic}})
}

// next returns the oldest entry to record, or a channel closed when there
// is one.
func (b *idBacklog) next() (pendingID, bool, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.pending) > 0 {
		p := b.pending[0]
		b.pending = b.pending[1:]
		return p, true, nil
	}
	if b.changed == nil {
		b.changed = make(chan struct{})
	}
	return pendingID{}, false, b.changed
}

// recordLoop records the backlog until ctx ends, then what is left of it
// once more (a bus that closes for a deploy still records what its
// follower read); Follow runs it on a goroutine it waits for.
func (l *natsLog[T]) recordLoop(ctx context.Context) {
	defer l.drainIDs()
	for {
		p, ok, changed := l.ids.next()
		if !ok {
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return
			}
		}
		if !l.recordOnceBounded(ctx, p) {
			l.ids.later(p.mid, p.e) // at the back: the others get their turn
			if !sleep(ctx, pubRetryMax) {
				return
			}
		}
	}
}

// drainIDs tries each entry left in the backlog once, within
// requestTimeout in all, and stops at the first that fails.
func (l *natsLog[T]) drainIDs() {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	for !l.nc.IsClosed() {
		p, ok, _ := l.ids.next()
		if !ok {
			return
		}
		if !l.recordOnceBounded(ctx, p) {
			l.ids.later(p.mid, p.e) // for a Follow that starts again
			return
		}
	}
}

// recordOnceBounded tries one entry of the backlog once.
func (l *natsLog[T]) recordOnceBounded(ctx context.Context, p pendingID) bool {
	msg := l.idMessage(p.mid, p.e)
	return l.recordOnce(ctx, msg, time.Now().Add(requestTimeout)) == nil
}

// settled forgets the doubt of the Append that expected with report (nil:
// one left to the backlog): the id is recorded, or refused.
func (b *idBacklog) settled(mid string, report chan seenAt) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if d, ok := b.inDoubt[mid]; ok && d.report == report {
		delete(b.inDoubt, mid)
	}
}
