package bus

import "strings"

// subjectTree indexes values by subject pattern so that the values whose
// pattern matches a topic are found in O(topic depth + matches), however many
// other patterns it holds. It is a trie over tokens: literal tokens in a map,
// '*' in its own branch, and values of patterns ending in '>' kept at the
// node before the '>'. It is not safe for concurrent use; the Bus guards it.
type subjectTree[V comparable] struct {
	root subjectNode[V]
}

type subjectNode[V comparable] struct {
	next map[string]*subjectNode[V] // literal tokens
	star *subjectNode[V]            // the '*' token
	tail []V                        // patterns that end with '>' after this node
	here []V                        // patterns that end at this node
}

// insert adds v under a valid pattern.
func (t *subjectTree[V]) insert(pattern string, v V) {
	n := &t.root
	for rest := pattern; ; {
		tok, tail, more := strings.Cut(rest, ".")
		if tok == ">" {
			n.tail = append(n.tail, v)
			return
		}
		n = n.child(tok, true)
		if !more {
			n.here = append(n.here, v)
			return
		}
		rest = tail
	}
}

// remove deletes v from under pattern and prunes the nodes left empty, so
// that patterns nobody holds cost no memory. It reports whether v was there.
func (t *subjectTree[V]) remove(pattern string, v V) bool {
	var path [maxSubjectLen/2 + 1]*subjectNode[V]
	var toks [maxSubjectLen/2 + 1]string
	depth := 0
	n := &t.root
	for rest := pattern; ; {
		tok, tail, more := strings.Cut(rest, ".")
		if tok == ">" {
			if !removeValue(&n.tail, v) {
				return false
			}
			break
		}
		path[depth], toks[depth] = n, tok
		depth++
		if n = n.child(tok, false); n == nil {
			return false
		}
		if !more {
			if !removeValue(&n.here, v) {
				return false
			}
			break
		}
		rest = tail
	}
	for i := depth - 1; i >= 0 && n.empty(); i-- {
		path[i].drop(toks[i])
		n = path[i]
	}
	return true
}

// match appends to out every value whose pattern matches the valid topic.
// Each value appears once per pattern it was inserted under.
func (t *subjectTree[V]) match(topic string, out []V) []V {
	return t.root.match(topic, out)
}

func (n *subjectNode[V]) match(topic string, out []V) []V {
	out = append(out, n.tail...) // '>' takes all of the one or more tokens left
	tok, rest, more := strings.Cut(topic, ".")
	if c := n.next[tok]; c != nil {
		out = c.matchRest(rest, more, out)
	}
	if n.star != nil {
		out = n.star.matchRest(rest, more, out)
	}
	return out
}

func (n *subjectNode[V]) matchRest(rest string, more bool, out []V) []V {
	if !more {
		return append(out, n.here...)
	}
	return n.match(rest, out)
}

func (n *subjectNode[V]) child(tok string, create bool) *subjectNode[V] {
	if tok == "*" {
		if n.star == nil && create {
			n.star = new(subjectNode[V])
		}
		return n.star
	}
	c := n.next[tok]
	if c == nil && create {
		if n.next == nil {
			n.next = make(map[string]*subjectNode[V])
		}
		c = new(subjectNode[V])
		n.next[tok] = c
	}
	return c
}

func (n *subjectNode[V]) drop(tok string) {
	if tok == "*" {
		n.star = nil
		return
	}
	delete(n.next, tok)
}

func (n *subjectNode[V]) empty() bool {
	return len(n.here) == 0 && len(n.tail) == 0 && len(n.next) == 0 && n.star == nil
}

// removeValue deletes one v from *vs, not keeping order (it does not matter).
func removeValue[V comparable](vs *[]V, v V) bool {
	s := *vs
	for i := range s {
		if s[i] == v {
			last := len(s) - 1
			s[i] = s[last]
			var zero V
			s[last] = zero
			*vs = s[:last]
			if len(*vs) == 0 {
				*vs = nil
			}
			return true
		}
	}
	return false
}
