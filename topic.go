package bus

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxSubjectLen is the longest topic or pattern, in bytes.
const maxSubjectLen = 256

// CheckTopic returns nil if topic follows the topic grammar (1 to 256 bytes
// of valid UTF-8, tokens separated by '.', no empty token, no white space,
// no control character, no wildcard), or an error wrapping ErrInvalidTopic
// that says why. Publish checks the same; servers can check input early.
// It does not allocate unless it fails.
func CheckTopic(topic string) error {
	if why := subjectFault(topic, false); why != "" {
		return fmt.Errorf("%w %s: %s", ErrInvalidTopic, quoteClipped(topic), why)
	}
	return nil
}

// CheckPattern returns nil if pattern follows the pattern grammar (the
// topic grammar, except that a whole token may be '*' and the last token may
// be '>'), or an error wrapping ErrInvalidPattern that says why.
func CheckPattern(pattern string) error {
	if why := subjectFault(pattern, true); why != "" {
		return fmt.Errorf("%w %s: %s", ErrInvalidPattern, quoteClipped(pattern), why)
	}
	return nil
}

// Match reports whether topic matches pattern with NATS semantics: '*'
// stands for exactly one token, a final '>' for one or more. It is false if
// either breaks its grammar.
func Match(pattern, topic string) bool {
	return subjectFault(pattern, true) == "" && subjectFault(topic, false) == "" &&
		matchSubject(pattern, topic)
}

// quoteClipped quotes s for an error message, cut to a readable length:
// input can be long and hostile.
func quoteClipped(s string) string {
	const most = 64
	if len(s) <= most {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:most]) + "..."
}

// subjectFault returns why s breaks the grammar, or "" when it does not.
func subjectFault(s string, pattern bool) string {
	switch {
	case s == "":
		return "empty"
	case len(s) > maxSubjectLen:
		return "longer than 256 bytes"
	case !utf8.ValidString(s):
		return "not valid UTF-8"
	}
	for rest := s; ; {
		tok, tail, more := strings.Cut(rest, ".")
		if why := tokenFault(tok, pattern, !more); why != "" {
			return why
		}
		if !more {
			return ""
		}
		rest = tail
	}
}

// tokenFault returns why one token breaks the grammar, or "".
func tokenFault(tok string, pattern, last bool) string {
	if tok == "" {
		return "empty token"
	}
	if pattern && tok == "*" {
		return ""
	}
	if pattern && tok == ">" {
		if !last {
			return "'>' is not the last token"
		}
		return ""
	}
	for i := 0; i < len(tok); {
		c := tok[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '*' || c == '>':
				return "wildcard inside a token"
			case c <= ' ' || c == 0x7f:
				return "white space or control character"
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(tok[i:])
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return "white space or control character"
		}
		i += size
	}
	return ""
}

// isLiteral reports whether a valid pattern has no wildcard token, so that
// it names exactly one topic.
func isLiteral(pattern string) bool {
	for rest := pattern; ; {
		tok, tail, more := strings.Cut(rest, ".")
		if tok == "*" || tok == ">" {
			return false
		}
		if !more {
			return true
		}
		rest = tail
	}
}

// matchSubject is the reference matcher: it reports whether a valid topic
// matches a valid pattern, token by token. The subject tree gives the same
// answers faster; the fuzz tests hold the two together.
func matchSubject(pattern, topic string) bool {
	for {
		ptok, prest, pmore := strings.Cut(pattern, ".")
		ttok, trest, tmore := strings.Cut(topic, ".")
		if ptok == ">" {
			return true
		}
		if ptok != "*" && ptok != ttok {
			return false
		}
		if !pmore || !tmore {
			return pmore == tmore
		}
		pattern, topic = prest, trest
	}
}
