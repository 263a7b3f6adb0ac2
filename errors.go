package bus

import "errors"

// The errors of package bus. They are returned wrapped with detail
// ("bus: invalid topic: \"a..b\": empty token"), so compare with errors.Is.
var (
	// ErrClosed reports that the bus was closed: by Publish, Subscribe,
	// History and Replay after Bus.Close, and by a subscription that Bus.Close
	// ended.
	ErrClosed = errors.New("bus: closed")

	// ErrSubscriptionClosed reports that the subscription was closed by its
	// owner with Subscription.Close.
	ErrSubscriptionClosed = errors.New("bus: subscription closed")

	// ErrSlowConsumer reports that the subscription was ended by the
	// Disconnect policy because its buffer was full. Resubscribe with
	// After(last seen Seq) to get what was missed.
	ErrSlowConsumer = errors.New("bus: slow consumer")

	// ErrInvalidTopic reports a publish topic that breaks the topic grammar.
	ErrInvalidTopic = errors.New("bus: invalid topic")

	// ErrInvalidPattern reports a subscribe pattern that breaks the pattern
	// grammar.
	ErrInvalidPattern = errors.New("bus: invalid pattern")

	// ErrUncertain reports a publish whose outcome is unknown: the shared
	// log (see Log) may or may not have stored the event. Publish again with
	// the same id (PublishID) to find out; the log stores it at most once.
	// The in-process bus never returns it.
	ErrUncertain = errors.New("bus: publish outcome unknown")

	// ErrIDReused reports a PublishID whose id was used, within the
	// deduplication window, for another topic.
	ErrIDReused = errors.New("bus: publish id already used for another topic")
)
