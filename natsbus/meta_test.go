package natsbus

import (
	"strconv"
	"strings"
	"testing"
)

func TestParseDelivery(t *testing.T) {
	for _, tc := range []struct {
		reply string
		want  delivery
		ok    bool
	}{
		{"$JS.ACK.S.C.1.42.7.1700000000000000000.3", delivery{42, 7, 1700000000000000000, 3}, true},
		{"$JS.ACK._.hash.S.C.1.42.7.1700000000000000000.3", delivery{42, 7, 1700000000000000000, 3}, true},
		{"$JS.ACK.dom.hash.S.C.1.42.7.1700000000000000000.0.tok", delivery{42, 7, 1700000000000000000, 0}, true},
		{"$JS.ACK.S.C.1.42.7.1700000000000000000", delivery{}, false},   // 8 tokens
		{"$JS.ACK.a.b.S.C.1.42.7.1.0.tok.more", delivery{}, false},      // 13 tokens
		{"$JS.ACK.S.C.1.-1.7.1.3", delivery{}, false},                   // not a number
		{"$JS.ACK.S.C.1.18446744073709551616.7.1.3", delivery{}, false}, // overflows
		{"$JS.ACK.S.C.1.1.7.9223372036854775808.3", delivery{}, false},  // time overflows int64
		{"_INBOX.x.S.C.1.42.7.1.3", delivery{}, false},                  // not an ack subject
		{"$JS.ACK.S.C.1..7.1.3", delivery{}, false},                     // empty token
		{"", delivery{}, false},
	} {
		got, ok := parseDelivery(tc.reply)
		if ok != tc.ok || got != tc.want {
			t.Errorf("parseDelivery(%q) = %+v, %v; want %+v, %v", tc.reply, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzParseDelivery: never a panic, and what it accepts round-trips.
func FuzzParseDelivery(f *testing.F) {
	f.Add("$JS.ACK.S.C.1.42.7.1700000000000000000.3")
	f.Add("$JS.ACK._.hash.S.C.1.42.7.1700000000000000000.3.tok")
	f.Add("$JS.ACK.....")
	f.Fuzz(func(t *testing.T, reply string) {
		d, ok := parseDelivery(reply)
		if !ok {
			return
		}
		toks := strings.Split(strings.TrimPrefix(reply, "$JS.ACK."), ".")
		i := 3
		if len(toks) > 7 {
			i = 5
		}
		for k, v := range []uint64{d.stream, d.consumer, uint64(d.time), d.pending} {
			if n, err := strconv.ParseUint(toks[i+k], 10, 64); err != nil || n != v {
				t.Fatalf("%q: token %q parsed as %d", reply, toks[i+k], v)
			}
		}
	})
}

func TestQuoteClips(t *testing.T) {
	long := strings.Repeat("é", 100)
	q := quote(long)
	if len(q) > 2*maxQuoted || !strings.Contains(q, "200 bytes") {
		t.Fatalf("quote of 200 bytes: %s", q)
	}
	if quote("a\nb") != `"a\nb"` {
		t.Fatal(quote("a\nb"))
	}
}
