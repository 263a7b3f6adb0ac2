package bus

import (
	"sync/atomic"
	"time"
)

// clock stamps events. time.Now reads two clocks, wall and monotonic, and on
// some virtual machines each read costs as much as the rest of a Publish.
// clock reads only the monotonic one and adds it to a base time taken by
// time.Now, which it renews every second, so an event's Time carries the
// same monotonic reading time.Now would give and a wall reading that drifts
// from time.Now's by no more than the system clock is slewed in a second.
type clock struct {
	base atomic.Pointer[time.Time]
}

// renewAfter is how long a base time serves.
const renewAfter = time.Second

func (c *clock) now() time.Time {
	base := c.base.Load()
	if base != nil {
		if d := time.Since(*base); d < renewAfter { // one monotonic read
			return base.Add(d)
		}
	}
	t := time.Now()
	c.base.Store(&t)
	return t
}
