package bridge

// onSideStack runs fn, a client frame's work, on a goroutine of its own
// and waits for it, so that the connection's read loop keeps a small
// stack.
//
// Decoding a frame (encoding/json), subscribing and replaying need several
// KB of stack. A goroutine's stack that grew once stays grown while the
// goroutine lives: the GC halves it only while under a quarter of it is in
// use, and the read loop, parked in its socket read under net/http and
// melody, uses about 2.8 KB. Run on the read loop, the first frame would
// leave every connection's read loop at 8 KB for the connection's life;
// run here, the deep stack goes with the short-lived goroutine and an idle
// connection's read loop stays at the 4 KB that raw melody's has (see
// BENCHMARKS.md, "Bridge over WebSocket"). Frames are still handled one at
// a time and in order: the read loop reads the next one only once fn has
// returned. A panic in fn is raised again on the read loop, where net/http
// recovers a handler's panic as before.
func onSideStack(fn func()) {
	var (
		p        any
		panicked = true
		done     = make(chan struct{})
	)
	go func() {
		defer close(done)
		defer func() {
			if panicked {
				p = recover()
			}
		}()
		fn()
		panicked = false
	}()
	<-done
	if panicked && p != nil {
		panic(p)
	}
}
