package natsbus

import (
	"errors"
	"strconv"
)

// The errors of package natsbus. They are returned wrapped with detail, so
// compare with errors.Is. A publish whose outcome is unknown wraps
// bus.ErrUncertain instead (see Publish in the package doc).
var (
	// ErrOption reports an option value that natsbus cannot use (a stream
	// name that is not a subject token, replicas outside 1..5, a history TTL
	// under 100ms, a nil codec or connection).
	ErrOption = errors.New("natsbus: invalid option")

	// ErrConnOption reports a *nats.Conn whose options can lose or
	// resurrect publishes, or that is closed. The error names the option;
	// ConnectOptions lists the ones to pass to nats.Connect.
	ErrConnOption = errors.New("natsbus: unsafe connection option")

	// ErrStreamMismatch reports an existing stream whose configuration
	// disagrees with the options given to New (another history size, TTL,
	// subjects, replicas, or a setting that deletes or adds messages).
	// natsbus never changes it: fix the options or the stream.
	ErrStreamMismatch = errors.New("natsbus: stream configuration mismatch")

	// ErrStream reports that the stream could not be created, read or
	// loaded (JetStream unreachable, not enabled, refused the request)
	// within the ctx given to New.
	ErrStream = errors.New("natsbus: stream unavailable")

	// ErrPermission reports that the NATS account refused this connection
	// a subject natsbus needs (see Permissions in the package doc); the
	// error names the subject. New checks every permission it needs, and
	// a publish the server refuses wraps it with ErrNotStored.
	ErrPermission = errors.New("natsbus: permission denied")

	// ErrNotStored reports a publish that was definitely not stored: the
	// server refused it, or it never left this process. Retrying is safe.
	ErrNotStored = errors.New("natsbus: not stored")

	// ErrCodec reports that the Codec could not encode an event (with
	// ErrNotStored). Events the codec cannot decode are skipped by every
	// node and logged (see the package doc).
	ErrCodec = errors.New("natsbus: codec")
)

// maxQuoted is how much of a hostile string an error message quotes.
const maxQuoted = 64

// quote quotes s for an error message, clipped to maxQuoted bytes.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	cut := maxQuoted
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
