package bridge

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeFrame feeds arbitrary bytes to the frame decoder: it never
// panics, accepts only frames that follow PROTOCOL.md (valid UTF-8
// included), and its error frame is always valid JSON naming a request
// only by a valid id.
func FuzzDecodeFrame(f *testing.F) {
	for _, seed := range []string{
		`{"op":"sub","id":"r1","sub":"s1","pattern":"chat.>"}`,
		`{"op":"sub","id":"r1","sub":"s1","pattern":"chat.>","after":{"epoch":"0f8e2b1c-7d4a-4c2e-8f61-2a9d3c4b5e6f","seq":41}}`,
		`{"op":"sub","id":"r4","sub":"s2","pattern":"orders.*.created","last":50}`,
		`{"op":"sub","id":"r6","sub":"s3","pattern":"audit.>","since":"2026-11-27T17:00:00Z"}`,
		`{"op":"unsub","id":"r2","sub":"s1"}`,
		`{"op":"pub","id":"9f1d1f0a-63a3-4e52-9a8e-2f6a1c0f9b11","topic":"chat.lobby","data":{"text":"hi"}}`,
		`{"op":"ping","id":"r3"}`,
		`{"op":"sub","id":"r1","sub":"s","pattern":"a","last":1,"after":{"seq":1}}`,
		`{"op":"sub","id":"r1","sub":"s","pattern":"a","last":"x"}`,
		`{"op":"nope","id":"\u0000"}`,
		`{"op":`, `[]`, `null`, `""`, `{}`, "\xff\xfe",
		"{\"op\":\"pub\",\"id\":\"p\",\"topic\":\"a\xffb\",\"data\":{}}",
		`{"op":"pub","id":"p","topic":"a\ud800b","data":{"x":"\udc00"}}`,
		`{"op":"sub","id":"r","sub":"s\ud83d\ude00","pattern":"\ud83d\ude00.>"}`,
		"{\"op\":\"ping\",\"id\":\"r\",\"pad\":\"\xc3\"}",
		`{"op":"sub","id":"r","sub":"s","pattern":"a","after":{"epoch":"\ud800","seq":1}}`,
		`{"op":"sub","id":"r7","sub":"s4","pattern":"price.*","latest":true,"conflate":true}`,
		`{"op":"sub","id":"r8","sub":"s5","pattern":"chat.lobby","after":{"epoch":"0f8e2b1c-7d4a-4c2e-8f61-2a9d3c4b5e6f","seq":41},"fallback":{"last":50}}`,
		`{"op":"sub","id":"r","sub":"s","pattern":"a","after":{"seq":1},"fallback":{"since":"2026-11-27T17:00:00Z"}}`,
		`{"op":"sub","id":"r","sub":"s","pattern":"a","after":{"seq":1},"fallback":{"latest":true,"last":3}}`,
		`{"op":"sub","id":"r","sub":"s","pattern":"a","latest":true,"after":{"seq":1}}`,
		`{"op":"sub","id":"r","sub":"s","pattern":"a","fallback":{"last":1}}`,
		`{"op":"sub","id":"r","sub":"s","pattern":"a","after":{"seq":1},"fallback":{"since":"\udc00"}}`,
		`{"op":"sub","id":"r","sub":"s","pattern":"a","conflate":"yes"}`,
		`{"op":"history","id":"h1","pattern":"chat.lobby","before":318,"limit":50}`,
		`{"op":"history","id":"h1","pattern":"chat.>","limit":0}`,
		`{"op":"history","id":"h1","pattern":"a","before":0,"limit":1001}`,
		`{"op":"history","id":"h1","pattern":"\ud800"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, pe := decodeFrame(data)
		if (fr == nil) == (pe == nil) {
			t.Fatalf("frame %v and error %v", fr, pe)
		}
		if pe != nil {
			out := appendError(nil, pe)
			if !json.Valid(out) {
				t.Fatalf("error frame is not JSON: %s", out)
			}
			if pe.id != "" && !validID(pe.id) {
				t.Fatalf("error names invalid id %q", pe.id)
			}
			return
		}
		if !validID(fr.ID) {
			t.Fatalf("accepted id %q", fr.ID)
		}
		if !utf8.Valid(data) || !utf8.ValidString(fr.Op+fr.Sub+fr.Pattern+fr.Topic) {
			t.Fatalf("accepted a frame that is not valid UTF-8: %q", data)
		}
		if fr.After != nil && !utf8.ValidString(fr.After.Epoch) {
			t.Fatalf("accepted an epoch that is not valid UTF-8: %q", data)
		}
		switch fr.Op {
		case "sub":
			n := 0
			for _, set := range []bool{fr.After != nil, fr.Last != nil, fr.Since != nil, fr.Latest} {
				if set {
					n++
				}
			}
			if !validID(fr.Sub) || n > 1 || (fr.Last != nil && *fr.Last < 0) || (fr.After != nil && fr.After.Seq == nil) {
				t.Fatalf("accepted bad sub %+v", fr)
			}
			if fb := fr.Fallback; fb != nil {
				k := 0
				for _, set := range []bool{fb.last != nil, fb.latest, fb.since != nil} {
					if set {
						k++
					}
				}
				if fr.After == nil || k != 1 || (fb.last != nil && *fb.last < 0) {
					t.Fatalf("accepted bad fallback %+v in %q", fb, data)
				}
			}
		case "history":
			if fr.Limit < 1 || fr.Limit > maxPageLimit || !utf8.ValidString(fr.Pattern) {
				t.Fatalf("accepted bad history %+v", fr)
			}
		case "unsub":
			if !validID(fr.Sub) {
				t.Fatalf("accepted unsub without sub: %+v", fr)
			}
		case "pub", "ping":
		default:
			t.Fatalf("accepted op %q", fr.Op)
		}
	})
}

// FuzzAppendString holds the hand-written JSON string encoder to
// encoding/json: valid JSON that decodes to the input (invalid UTF-8 as
// U+FFFD, like encoding/json).
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "chat.lobby", `a"b\c`, "\x00\x1f\x7f", "é€😀", "\xff", "a\u2028b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := appendString(nil, s)
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("%q encodes as invalid JSON %s: %v", s, out, err)
		}
		want := s
		if !utf8.ValidString(s) {
			want = string([]rune(s))
		}
		if back != want {
			t.Fatalf("%q came back as %q", s, back)
		}
	})
}

// FuzzUnquote holds the strict unquoter to encoding/json: for every value
// encoding/json reads as a string, unquote reads it too, and gets exactly
// encoding/json's string whenever the input is valid text; it reports
// invalid UTF-8 only for input with invalid bytes or a surrogate escape,
// and whatever else encoding/json reads (numbers, objects) is not a string.
func FuzzUnquote(f *testing.F) {
	for _, s := range []string{
		`""`, `"chat.lobby"`, `"a\"b\\c\/d"`, `"\b\f\n\r\t"`, `"\u00e9\u20ac"`, `"\ud83d\ude00"`,
		`"\ud800"`, `"\udc00"`, `"\ud800\ud800"`, `"\ud800\udc00"`, `"\uDBFF\uDFFF"`, `"\udc00\ud800"`,
		`"\ud800x"`, `"\\ud800"`, "\"\xff\"", "\"\xed\xa0\x80\"", `null`, `5`, `{}`, `[]`, `true`, ` "x" `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var want string
		jerr := json.Unmarshal(data, &want)
		raw := bytes.TrimSpace(data)
		got, ok := unquote(raw)
		if jerr != nil {
			var v any
			if json.Unmarshal(data, &v) == nil && ok {
				t.Fatalf("unquote took %q, which encoding/json reads as %T, for a string", data, v)
			}
			return
		}
		if !ok {
			t.Fatalf("unquote refused %q, which encoding/json reads as %q", data, want)
		}
		if utf8.ValidString(got) {
			if got != want {
				t.Fatalf("unquote(%q) = %q, encoding/json %q", data, got, want)
			}
			return
		}
		if utf8.Valid(raw) && !surrogateEscape.Match(raw) {
			t.Fatalf("unquote(%q) = %q is not valid UTF-8, but the input has neither invalid bytes nor surrogate escapes", data, got)
		}
		if !strings.ContainsRune(want, utf8.RuneError) {
			t.Fatalf("unquote(%q) found invalid text, encoding/json no replacement: %q", data, want)
		}
	})
}

// surrogateEscape matches an escape in the surrogate range (possibly after
// an escaped backslash, which only makes the check looser).
var surrogateEscape = regexp.MustCompile(`\\u[dD][89abcdefABCDEF][0-9a-fA-F]{2}`)
