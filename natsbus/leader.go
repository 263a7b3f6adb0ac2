package natsbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// A catch-up consumer has one replica, which the meta leader may place on
// any server of the stream, and a replica that has just restarted lacks the
// newest events for a while: its NumPending and idle heartbeats say
// "nothing more" where the stream holds more. So a consumer that stops
// short of upTo is checked with the stream leader before the seqs it did
// not deliver are taken for deleted.

// errNoLeaderAnswer marks a check with the stream leader that got no
// usable answer: the follower tries again, it never takes a seq for
// deleted on it.
var errNoLeaderAnswer = errors.New("no answer from the stream leader")

// errCodeNoMessage is JetStream's "no message found" (a 404).
const errCodeNoMessage = 10037

// leaderNext asks the stream leader for the first message after seq: a
// STREAM.MSG.GET request, which only the leader answers in a cluster
// (unlike a direct get, which any replica may answer, and which
// jetstream.Stream.GetMsg uses when the stream allows it). found is false
// when the leader holds no message after seq.
func (f *follower[T]) leaderNext(seq uint64) (next uint64, found bool, err error) {
	body := fmt.Appendf(nil, `{"seq":%d,"next_by_subj":%q,"no_hdr":true}`, seq+1, f.l.prefix+">")
	ctx, cancel := context.WithTimeout(f.ctx, requestTimeout)
	defer cancel()
	m, err := f.l.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+f.l.cfg.stream, body)
	if err != nil {
		return 0, false, fmt.Errorf("%w: the message after %d: %w", errNoLeaderAnswer, seq, err)
	}
	next, found, err = parseMsgGet(m.Data)
	if err != nil {
		return 0, false, fmt.Errorf("the message after %d: %w", seq, err)
	}
	return next, found, nil
}

// msgGetResponse is the part of a STREAM.MSG.GET response that leaderNext
// reads.
type msgGetResponse struct {
	Error *struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
	Message *struct {
		Seq uint64 `json:"seq"`
	} `json:"message"`
}

// parseMsgGet reads a STREAM.MSG.GET response: the message's seq, or found
// false for "no message found". Anything else (another error, a response
// without a message or with seq 0, bad JSON) wraps errNoLeaderAnswer.
func parseMsgGet(data []byte) (seq uint64, found bool, err error) {
	var r msgGetResponse
	if err := json.Unmarshal(data, &r); err != nil {
		return 0, false, fmt.Errorf("%w: a response that does not parse (%s): %w", errNoLeaderAnswer, quote(string(data)), err)
	}
	switch {
	case r.Error != nil && r.Error.ErrCode == errCodeNoMessage:
		return 0, false, nil
	case r.Error != nil:
		return 0, false, fmt.Errorf("%w: error %d (%d) %s", errNoLeaderAnswer, r.Error.Code, r.Error.ErrCode, quote(r.Error.Description))
	case r.Message == nil || r.Message.Seq == 0:
		return 0, false, fmt.Errorf("%w: a response without a message (%s)", errNoLeaderAnswer, quote(string(data)))
	}
	return r.Message.Seq, true, nil
}

// stoppedShort handles a consumer that says it has nothing more while the
// cursor is below upTo. It asks the stream leader: when the leader holds a
// message up to upTo, the consumer was behind (a lagging replica) and
// another one reads on; otherwise the seqs up to upTo are deleted. done
// reports that the catch-up may end. An error (no answer) ends the session:
// the next one starts over from the cursor, and nothing is taken for
// deleted on it.
func (f *follower[T]) stoppedShort(st *stage) (done bool, err error) {
	next, found, err := f.leaderNext(f.cursor)
	if err != nil {
		return false, err
	}
	if !found || next > st.upTo {
		return true, nil
	}
	f.logCatchUp("the consumer stopped at %d below %d, the stream leader holds %d", f.cursor, st.upTo, next)
	st.cons.stop()
	if st.retried && f.cursor == st.shortAt {
		st.wait = min(max(2*st.wait, retryMin), retryMax) // no progress since the last one: back off
		if !sleep(f.ctx, st.wait) {
			return false, f.ctx.Err()
		}
	} else {
		st.wait = 0
	}
	st.retried, st.shortAt = true, f.cursor
	_, err = f.catchUp(st, st.upTo)
	return false, err
}
