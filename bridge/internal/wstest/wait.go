package wstest

import (
	"testing"
	"time"
)

// WaitTimeout bounds WaitFor.
const WaitTimeout = 10 * time.Second

// WaitFor polls cond until it holds, failing the test after WaitTimeout.
// It is for states that nothing signals (a counter kept by another
// goroutine, a socket closed by the server); inside a testing/synctest
// bubble, synctest.Wait is exact and needs no polling.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
