package bus

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestTreeManyPatterns(t *testing.T) {
	patterns := []string{"a", "a.b", "a.*", "a.>", "*.b", ">", "*", "a.b.c", "a.*.c", "*.*.*"}
	topics := []string{"a", "b", "a.b", "a.c", "x.b", "a.b.c", "a.x.c", "a.b.d", "q.r.s"}
	var tree subjectTree[string]
	for _, p := range patterns {
		tree.insert(p, p)
	}
	for _, topic := range topics {
		got := tree.match(topic, nil)
		var want []string
		for _, p := range patterns {
			if matchSubject(p, topic) {
				want = append(want, p)
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("match(%q) = %v, want %v", topic, got, want)
		}
	}
	for _, p := range patterns {
		if !tree.remove(p, p) {
			t.Errorf("remove(%q) found nothing", p)
		}
	}
	if tree.remove("a", "a") {
		t.Error("second remove found something")
	}
	if !tree.root.empty() {
		t.Errorf("tree not pruned after removing everything: %+v", tree.root)
	}
}

// FuzzTree holds the subject tree to the reference matcher: insert random
// patterns, match random topics, remove them again and check the tree is
// empty (memory is bounded).
func FuzzTree(f *testing.F) {
	f.Add(uint64(1), uint64(2))
	f.Add(uint64(42), uint64(7))
	f.Fuzz(func(t *testing.T, seed1, seed2 uint64) {
		r := rand.New(rand.NewPCG(seed1, seed2))
		var tree subjectTree[int]
		patterns := make([]string, 1+r.IntN(20))
		for i := range patterns {
			patterns[i] = randomSubject(r, true)
			tree.insert(patterns[i], i)
		}
		for range 20 {
			topic := randomSubject(r, false)
			got := tree.match(topic, nil)
			var want []int
			for i, p := range patterns {
				if matchSubject(p, topic) {
					want = append(want, i)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("patterns %q: match(%q) = %v, want %v", patterns, topic, got, want)
			}
		}
		for i, p := range patterns {
			if !tree.remove(p, i) {
				t.Fatalf("remove(%q, %d) found nothing", p, i)
			}
		}
		if !tree.root.empty() {
			t.Fatal("tree not empty after removing every pattern")
		}
	})
}

// randomSubject makes a valid topic, or pattern, from a small alphabet so
// that matches are frequent.
func randomSubject(r *rand.Rand, pattern bool) string {
	n := 1 + r.IntN(4)
	toks := make([]string, n)
	for i := range toks {
		toks[i] = []string{"a", "b", "c"}[r.IntN(3)]
		if pattern && r.IntN(4) == 0 {
			toks[i] = "*"
		}
	}
	if pattern && r.IntN(4) == 0 {
		toks[n-1] = ">"
	}
	return strings.Join(toks, ".")
}
