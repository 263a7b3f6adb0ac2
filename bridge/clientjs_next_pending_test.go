//go:build !whalesong_next

package bridge_test

// Stand-ins for the tests of clientjs_next_it_test.go, which use API the
// bridge does not have yet. TODO(issue 9: WithExpiry, Bridge.Kick,
// Bridge.Reauthorize): when it lands, delete this file and the build line of
// clientjs_next_it_test.go.

import "testing"

const skipUntilIssue9 = "TODO(issue 9: %s): the server side has not landed; the test is in clientjs_next_it_test.go " +
	"(go test -tags whalesong_next); delete clientjs_next_pending_test.go and that file's build line when it does"

func TestClientJSExpiry(t *testing.T)      { t.Skipf(skipUntilIssue9, "WithExpiry, close code 4002") }
func TestClientJSKick(t *testing.T)        { t.Skipf(skipUntilIssue9, "Bridge.Kick, close code 4003") }
func TestClientJSReauthorize(t *testing.T) { t.Skipf(skipUntilIssue9, "Bridge.Reauthorize") }
