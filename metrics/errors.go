package metrics

import (
	"errors"
	"unicode/utf8"
)

// The errors of package metrics. They are returned wrapped with detail, so
// compare with errors.Is.
var (
	// ErrNilSource reports a nil bus, bridge or subscription given to a
	// collector. A collector made with a nil source fails to register.
	ErrNilSource = errors.New("metrics: nil source")

	// ErrInvalidName reports a Watch name, or a watched subscription's
	// pattern, that cannot be a label value: empty or not valid UTF-8.
	ErrInvalidName = errors.New("metrics: invalid subscription name")
)

// maxQuoted is how much of a caller's string an error message repeats.
const maxQuoted = 64

// clip shortens a caller's string for an error message, on a rune boundary
// when it is valid UTF-8.
func clip(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	for i := maxQuoted; i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i] + "..."
		}
	}
	return s[:maxQuoted] + "..."
}
