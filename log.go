package bus

import "context"

// A Log is a shared, ordered record of events that several buses, in one
// process or in many, read in the same order: the seam through which an
// engine such as NATS JetStream (module github.com/whalesong/bus/natsbus)
// gives them one sequence space. A Bus made WithLog numbers nothing itself:
// the log assigns every event its Seq and Time, and the bus applies the log's
// records, whoever published them, to its history and its subscribers, in log
// order. Without WithLog a bus keeps its own in-memory history, as always.
//
// Implementations are called by the bus only: Append from any goroutine,
// concurrently; Follow from one goroutine that the bus owns and waits for.
type Log[T any] interface {
	// Append stores one event and returns its Seq once the log has stored it.
	//
	// id names the publish: appending an id that the log stored within its
	// deduplication window stores nothing and returns the Seq the event got
	// then. An empty id asks the log to make a unique one (it still retries
	// that id itself while ctx allows).
	//
	// An error wrapping ErrUncertain says that the event may have been
	// stored: appending the same id again tells which. Any other error means
	// that it was not stored. The topic is valid (the bus checked it).
	Append(ctx context.Context, id, topic string, data T) (uint64, error)

	// Follow calls apply, from the calling goroutine, with the log's records
	// in order until ctx ends, and then returns ctx.Err().
	//
	// Its first record, and the first after every reconnect, is a mark (a
	// Record with Event.Seq 0) giving the log's epoch and its head, the Seq
	// of the newest event it holds. Then come the events stored after
	// from.Seq, in increasing Seq, then new ones as they are stored; when
	// from.Epoch is not the log's epoch (or empty), every event the log
	// retains, from the oldest. Once it has handed over everything up to the
	// head, Follow sends a mark with Caught set (and may send more later):
	// a bus counts the Seqs up to Head that it did not get as deleted, and
	// an idle log whose newest events were deleted still lets it know where
	// it stands. A Seq that Follow skips was deleted before it could be read:
	// the bus treats it as lost. When the log is recreated (a new epoch),
	// Follow sends a mark of the new epoch and goes on with its events from
	// the oldest.
	//
	// Follow reconnects by itself after outages and resumes after the last
	// record it handed to apply. It returns early only with an error it
	// cannot recover from; the bus then calls it again after a pause, from
	// the last record it applied. apply never blocks on subscribers.
	Follow(ctx context.Context, from Position, apply func(Record[T])) error
}

// A Position is a place in a log: an epoch and the Seq of a record in it.
type Position struct {
	Epoch string // the log's sequence space (the incarnation of the stream)
	Seq   uint64 // the Seq of a record in it (0: before its first)
}

// A Record is one entry that Log.Follow hands to the bus.
type Record[T any] struct {
	// Epoch names the log's sequence space (the incarnation of the stream).
	// Every record carries it. A value other than the bus's current one
	// means that the log was recreated: the bus ends every subscription with
	// ErrSlowConsumer, forgets its history and goes on in the new epoch.
	Epoch string

	// Event is the stored event: Seq as the log numbered it, Topic, Time as
	// the log stamped it (the bus keeps Time non-decreasing in Seq) and the
	// decoded Data. Event.Seq 0 means no event: the record only announces
	// Epoch and Head.
	Event Event[T]

	// Head, in a mark, is the Seq of the newest event the log holds, or held
	// before deleting it (0: none ever). From the first mark of an epoch
	// until it has everything up to that mark's Head, a bus is loading
	// history, and a skipped Seq is an event the log had evicted before this
	// bus ever ran; after that, a skipped Seq is an event this bus missed,
	// and it ends its subscriptions rather than deliver a silent hole.
	Head uint64

	// Caught, in a mark, says that every event up to Head has been handed
	// over (those that were not are deleted).
	Caught bool

	// Lost, with an event, says that the log holds this event but its Data
	// cannot be used (it does not decode): the bus counts it as lost on its
	// topic (ending the subscriptions that match it, so that none has a
	// silent hole) and goes on. An event whose Topic breaks the grammar
	// matches no subscription and is passed over.
	Lost bool
}

// WithLog makes the bus apply the records of a shared Log instead of
// numbering and keeping events by itself (see Log); natsbus.New is the usual
// way to get one. The history options still size the bus's copy of the log
// and must match the log's own retention. New panics if l is not a Log of
// the bus's type T.
func WithLog[T any](l Log[T]) Option {
	return func(c *busConfig) { c.log = l }
}
