package bridge

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeFrame feeds arbitrary bytes to the frame decoder: it never
// panics, accepts only frames that follow PROTOCOL.md, and its error frame
// is always valid JSON naming a request only by a valid id.
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
		switch fr.Op {
		case "sub":
			n := 0
			for _, set := range []bool{fr.After != nil, fr.Last != nil, fr.Since != nil} {
				if set {
					n++
				}
			}
			if !validID(fr.Sub) || n > 1 || (fr.Last != nil && *fr.Last < 0) || (fr.After != nil && fr.After.Seq == nil) {
				t.Fatalf("accepted bad sub %+v", fr)
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
