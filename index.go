package bus

import "strings"

// topicIndex holds the topics with retained events in a tree of tokens, so
// that the topics matching a wildcard pattern are found in O(matching
// topics + the nodes on their paths), not by scanning every topic. It is
// the mirror of subjectTree (which finds patterns matching a topic). It is
// not safe for concurrent use; the history guards it.
type topicIndex[T any] struct {
	root indexNode[T]
}

type indexNode[T any] struct {
	parent   *indexNode[T]
	token    string
	children map[string]*indexNode[T]
	log      *topicLog[T] // the topic that ends here, if retained
}

// insert adds t under its name.
func (x *topicIndex[T]) insert(t *topicLog[T]) {
	n := &x.root
	for rest := t.name; ; {
		tok, tail, more := strings.Cut(rest, ".")
		c := n.children[tok]
		if c == nil {
			if n.children == nil {
				n.children = make(map[string]*indexNode[T])
			}
			c = &indexNode[T]{parent: n, token: tok}
			n.children[tok] = c
		}
		n = c
		if !more {
			break
		}
		rest = tail
	}
	n.log = t
	t.node = n
}

// remove drops t and prunes the nodes left empty.
func (x *topicIndex[T]) remove(t *topicLog[T]) {
	n := t.node
	if n == nil || n.log != t {
		return
	}
	n.log, t.node = nil, nil
	for n.parent != nil && n.log == nil && len(n.children) == 0 {
		delete(n.parent.children, n.token)
		n = n.parent
	}
}

// match calls fn for every topic whose name matches the valid pattern.
func (x *topicIndex[T]) match(pattern string, fn func(*topicLog[T])) {
	x.root.match(pattern, fn)
}

func (n *indexNode[T]) match(pattern string, fn func(*topicLog[T])) {
	tok, rest, more := strings.Cut(pattern, ".")
	switch tok {
	case ">":
		for _, c := range n.children {
			c.each(fn)
		}
	case "*":
		for _, c := range n.children {
			c.matchRest(rest, more, fn)
		}
	default:
		if c := n.children[tok]; c != nil {
			c.matchRest(rest, more, fn)
		}
	}
}

func (n *indexNode[T]) matchRest(rest string, more bool, fn func(*topicLog[T])) {
	if !more {
		if n.log != nil {
			fn(n.log)
		}
		return
	}
	n.match(rest, fn)
}

// each calls fn for every topic at or below n.
func (n *indexNode[T]) each(fn func(*topicLog[T])) {
	if n.log != nil {
		fn(n.log)
	}
	for _, c := range n.children {
		c.each(fn)
	}
}
