package bridge

import (
	"bytes"
	"unicode/utf16"
	"unicode/utf8"
)

// unquote decodes one JSON value that encoding/json accepted (a
// json.RawMessage) as a string, strictly: it reports ok false unless the
// value is a string or null (null is ""). Where encoding/json would put
// U+FFFD, unquote keeps the input's fault as invalid UTF-8: invalid bytes
// stay as they are, and an unpaired surrogate escape such as "\ud800"
// becomes the three bytes that would encode that surrogate (which no valid
// UTF-8 holds). So utf8.ValidString(s) says whether the client sent valid
// text, and the caller refuses it instead of acting on a replacement that
// different inputs share. On valid input it returns what encoding/json
// returns (FuzzUnquote holds the two together).
func unquote(raw []byte) (s string, ok bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", true
	}
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	body := raw[1 : len(raw)-1]
	if bytes.IndexByte(body, '\\') < 0 {
		return string(body), true
	}
	b := make([]byte, 0, len(body))
	for i := 0; i < len(body); {
		c := body[i]
		if c != '\\' {
			b = append(b, c)
			i++
			continue
		}
		if i+1 == len(body) {
			return "", false
		}
		if e := body[i+1]; e != 'u' {
			r, ok := unescape(e)
			if !ok {
				return "", false
			}
			b = append(b, r)
			i += 2
			continue
		}
		r, ok := hex4(body[i+2:])
		if !ok {
			return "", false
		}
		i += 6
		if !utf16.IsSurrogate(r) {
			b = utf8.AppendRune(b, r)
			continue
		}
		if r2, ok := lowSurrogate(body[i:]); ok && r < 0xdc00 {
			b = utf8.AppendRune(b, utf16.DecodeRune(r, r2))
			i += 6
			continue
		}
		b = append(b, 0xe0|byte(r>>12), 0x80|byte(r>>6)&0x3f, 0x80|byte(r)&0x3f)
	}
	return string(b), true
}

// unescape returns the byte of a one-letter JSON escape.
func unescape(e byte) (byte, bool) {
	switch e {
	case '"', '\\', '/':
		return e, true
	case 'b':
		return '\b', true
	case 'f':
		return '\f', true
	case 'n':
		return '\n', true
	case 'r':
		return '\r', true
	case 't':
		return '\t', true
	}
	return 0, false
}

// lowSurrogate reads a `\uXXXX` escape of a low surrogate at the start of b.
func lowSurrogate(b []byte) (rune, bool) {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return 0, false
	}
	r, ok := hex4(b[2:])
	return r, ok && r >= 0xdc00 && r <= 0xdfff
}

// hex4 reads four hex digits.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
