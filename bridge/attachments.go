package bridge

import "sync/atomic"

// attachments is a fanout's list of attachments. Its goroutine reads it on
// every event without a lock; attach and detach change it under fanout.mu.
//
//   - add appends in place while the array has room: every slice a reader
//     holds ends before the new slot, so no reader sees it being written.
//     Otherwise it doubles the array.
//   - remove only marks the attachment, which readers skip from then on,
//     and once marked ones are half of the list it compacts the rest into a
//     fresh array (readers of the old one go on reading an array that
//     nothing writes to any more).
//
// So n sessions attaching and leaving cost O(n) in all. Copying the list on
// every change cost O(n²): 20 KB of garbage per connection when 5,000 clients
// subscribe to one pattern, and 800 KB copied for the 100,000th.
type attachments[T any] struct {
	list  atomic.Pointer[[]*attachment[T]]
	stale int // fanout.mu: removed ones still in list
}

// load returns the list now. Entries that are gone (a.gone) are to be
// skipped.
func (l *attachments[T]) load() []*attachment[T] {
	if p := l.list.Load(); p != nil {
		return *p
	}
	return nil
}

// add appends a. Called with fanout.mu held.
func (l *attachments[T]) add(a *attachment[T]) {
	old := l.load()
	next := old
	if len(old) == cap(old) {
		next = make([]*attachment[T], len(old), max(4, 2*len(old)))
		copy(next, old)
	}
	next = append(next, a)
	l.list.Store(&next)
}

// remove marks a gone, once, and compacts the list when half of it is.
// Called with fanout.mu held.
func (l *attachments[T]) remove(a *attachment[T]) {
	if a.gone.Swap(true) {
		return
	}
	old := l.load()
	if l.stale++; l.stale*2 <= len(old) {
		return
	}
	next := make([]*attachment[T], 0, len(old)-l.stale)
	for _, x := range old {
		if !x.gone.Load() {
			next = append(next, x)
		}
	}
	l.stale = 0
	l.list.Store(&next)
}
