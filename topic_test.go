package bus

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestTopicGrammar(t *testing.T) {
	tests := []struct {
		s              string
		topic, pattern bool
	}{
		{"orders.eu.created", true, true},
		{"a", true, true},
		{"ünïcode.topic", true, true},
		{"a-b_c:d/e", true, true},
		{strings.Repeat("a", 256), true, true},
		{strings.Repeat("a", 257), false, false},
		{"", false, false},
		{"orders..x", false, false},
		{".a", false, false},
		{"a.", false, false},
		{".", false, false},
		{"a b", false, false},
		{"a\tb", false, false},
		{"a\u00a0b", false, false}, // no-break space
		{"a\u2028b", false, false}, // line separator
		{"a\x00b", false, false},
		{"a\x7fb", false, false},
		{"a\u0085b", false, false}, // C1 control
		{"a\xffb", false, false},   // not UTF-8
		{"a.*", false, true},
		{"*", false, true},
		{"*.*", false, true},
		{"orders.*.created", false, true},
		{"orders.>", false, true},
		{">", false, true},
		{"*.>", false, true},
		{"orders.>.x", false, false},
		{"or*ders", false, false},
		{"orders.>>", false, false},
		{"orders.*>", false, false},
		{"orders.**", false, false},
		{"a>b", false, false},
		{"a.>.>", false, false},
	}
	for _, tt := range tests {
		if err := CheckTopic(tt.s); (err == nil) != tt.topic {
			t.Errorf("CheckTopic(%q) = %v, want valid=%v", tt.s, err, tt.topic)
		} else if err != nil && !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("CheckTopic(%q) = %v, want ErrInvalidTopic", tt.s, err)
		}
		if err := CheckPattern(tt.s); (err == nil) != tt.pattern {
			t.Errorf("CheckPattern(%q) = %v, want valid=%v", tt.s, err, tt.pattern)
		} else if err != nil && !errors.Is(err, ErrInvalidPattern) {
			t.Errorf("CheckPattern(%q) = %v, want ErrInvalidPattern", tt.s, err)
		}
	}
}

func TestPublicAPIRejectsBadSubjects(t *testing.T) {
	b := New[int]()
	defer b.Close()
	if _, err := b.Publish(t.Context(), "a..b", 1); !errors.Is(err, ErrInvalidTopic) {
		t.Errorf("Publish(a..b) = %v, want ErrInvalidTopic", err)
	}
	if _, err := b.Publish(t.Context(), "a.*", 1); !errors.Is(err, ErrInvalidTopic) {
		t.Errorf("Publish(a.*) = %v, want ErrInvalidTopic", err)
	}
	if _, err := b.Subscribe("a.>.b"); !errors.Is(err, ErrInvalidPattern) {
		t.Errorf("Subscribe(a.>.b) = %v, want ErrInvalidPattern", err)
	}
	if _, err := b.History("or*ders", 0, 0); !errors.Is(err, ErrInvalidPattern) {
		t.Errorf("History(or*ders) = %v, want ErrInvalidPattern", err)
	}
	if b.Seq() != 0 || b.Stats().Published != 0 {
		t.Errorf("a rejected publish moved Seq to %d", b.Seq())
	}
}

// matchCases is the wildcard semantics table: shared by the reference
// matcher and the subject tree, so both are held to the same answers.
var matchCases = []struct {
	pattern, topic string
	want           bool
}{
	{"a", "a", true},
	{"a", "b", false},
	{"a.b", "a.b", true},
	{"a.b", "a", false},
	{"a", "a.b", false},
	{"*", "a", true},
	{"*", "a.b", false},
	{"a.*", "a.b", true},
	{"a.*", "a", false},
	{"a.*", "a.b.c", false},
	{"*.b", "a.b", true},
	{"*.b", "a.c", false},
	{"a.*.c", "a.b.c", true},
	{"a.*.c", "a.b.d", false},
	{">", "a", true},
	{">", "a.b.c", true},
	{"a.>", "a", false},
	{"a.>", "a.b", true},
	{"a.>", "a.b.c", true},
	{"a.>", "b.c", false},
	{"*.>", "a", false},
	{"*.>", "a.b", true},
	{"a.*.>", "a.b", false},
	{"a.*.>", "a.b.c.d", true},
	{"orders.*.created", "orders.eu.created", true},
	{"orders.*.created", "orders.eu.paid", false},
}

func runMatchCases(t *testing.T, match func(pattern, topic string) bool) {
	t.Helper()
	for _, c := range matchCases {
		if got := match(c.pattern, c.topic); got != c.want {
			t.Errorf("match(%q, %q) = %v, want %v", c.pattern, c.topic, got, c.want)
		}
	}
}

func TestMatchReference(t *testing.T) {
	runMatchCases(t, matchSubject)
}

func TestMatchTree(t *testing.T) {
	runMatchCases(t, func(pattern, topic string) bool {
		var tree subjectTree[int]
		tree.insert(pattern, 1)
		return len(tree.match(topic, nil)) == 1
	})
}

func FuzzCheckSubject(f *testing.F) {
	for _, s := range []string{"a.b", "a..b", "a.*", ">", "a.>", "a b", "\xff", "ü.*.>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		topicErr, patternErr := CheckTopic(s), CheckPattern(s)
		if (topicErr == nil) != refValid(s, false) || (patternErr == nil) != refValid(s, true) {
			t.Fatalf("%q: checkTopic %v, checkPattern %v; reference says topic %v, pattern %v",
				s, topicErr, patternErr, refValid(s, false), refValid(s, true))
		}
		if topicErr == nil && patternErr != nil {
			t.Fatalf("%q is a valid topic but not a valid pattern: %v", s, patternErr)
		}
		if topicErr == nil && !isLiteral(s) {
			t.Fatalf("valid topic %q is not literal", s)
		}
		if topicErr == nil && !matchSubject(s, s) {
			t.Fatalf("topic %q does not match itself", s)
		}
		if topicErr == nil && !matchSubject(">", s) {
			t.Fatalf("> does not match %q", s)
		}
	})
}

// refValid is the grammar written as plainly as possible, for the fuzzer to
// hold the real checker to.
func refValid(s string, pattern bool) bool {
	if len(s) < 1 || len(s) > 256 || !utf8.ValidString(s) {
		return false
	}
	toks := strings.Split(s, ".")
	for i, tok := range toks {
		if pattern && (tok == "*" || (tok == ">" && i == len(toks)-1)) {
			continue
		}
		if tok == "" {
			return false
		}
		for _, r := range tok {
			if r == '*' || r == '>' || unicode.IsSpace(r) || unicode.IsControl(r) {
				return false
			}
		}
	}
	return true
}

func TestMatchExported(t *testing.T) {
	runMatchCases(t, Match)
	if Match("a.*", "a..b") || Match("a.>.b", "a.x.b") {
		t.Error("Match accepted an invalid topic or pattern")
	}
}

func TestErrorsQuoteLongInputClipped(t *testing.T) {
	long := strings.Repeat("x", 10_000) + " "
	if err := CheckTopic(long); err == nil || len(err.Error()) > 200 {
		t.Fatalf("error for a 10 kB topic is %d bytes long", len(err.Error()))
	}
}
