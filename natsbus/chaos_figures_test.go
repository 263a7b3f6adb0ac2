package natsbus

// The figures of the chaos runs: publishes, connections, reconnect and
// resume times, fan-out stalls, and the timeline of what the chaos did.

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/whalesong/bus"
)

// logFigures logs what the run measured.
func (r *chaosRig) logFigures(specs []jsClientSpec, clients []jsClient, snaps ...*snapshot) {
	at := ids(snaps...)
	acked, uncertain, failed, slowest := r.goOutcomes()
	landed, example := 0, "none"
	r.mu.Lock()
	for _, p := range r.goPub {
		if p.err != nil && len(at[p.id]) > 0 {
			landed++
		}
		if example == "none" && errors.Is(p.err, bus.ErrUncertain) {
			example = fmt.Sprintf("%s on node %d after %v: %v", p.id, p.node, p.took.Round(time.Millisecond), p.err)
		}
	}
	r.mu.Unlock()
	resolved := 0
	for _, c := range clients {
		resolved += len(c.Pubs)
	}
	events := 0
	for _, s := range snaps {
		events += len(s.msgs)
	}
	lb := r.lb.Stats()
	f := r.figures(specs, clients)
	r.t.Logf("chaos figures (%d clients, %d events/s, %v):\n"+
		"stream: %d events (ids by kind and Nats-Msg-Id namespace: %v)\n"+
		"Go publishes: %d acked, %d uncertain, %d failed (%d of those stored), slowest %v; an uncertain one: %s\n"+
		"client publishes: %d resolved\n"+
		"balancer: %d connections (per node %v), %d sockets cut, %d reconnects moved to another node, %d stayed, %d refused\n"+
		"%v\ntimeline:\n%s",
		len(specs), r.size.rate, r.size.duration,
		events, streamIDKinds(snaps...),
		acked, uncertain, failed, landed, slowest.Round(time.Millisecond), example,
		resolved,
		lb.Accepted, lb.PerNode, lb.Cut, lb.Moved, lb.Stayed, lb.Refused,
		f, r.timeline())
}

// figures is what the run measured.
type figures struct {
	reconnectMs, resumeMs, resumeWideMs []int64
	serveMs, serveWideMs                []int64
	dropCodes, errors                   map[string]int
	opens, drops                        int
	stallWide, stallAll                 int64
	stallWideAt                         string
	topStalls                           []string // the longest stalls of ">" clients, with what the chaos did before
}

func (r *chaosRig) figures(specs []jsClientSpec, clients []jsClient) figures {
	f := figures{dropCodes: map[string]int{}, errors: map[string]int{}}
	var stalls []stall
	for i, c := range clients {
		f.reconnectMs = append(f.reconnectMs, c.ReconnectMs...)
		f.resumeMs = append(f.resumeMs, c.ResumeMs...)
		f.serveMs = append(f.serveMs, c.ServeMs...)
		f.opens += c.Opens
		f.drops += c.Drops
		for k, v := range c.DropCodes {
			f.dropCodes[k] += v
		}
		for k, v := range c.Errors {
			f.errors[k] += v
		}
		f.stallAll = max(f.stallAll, c.MaxStallMs)
		if specs[i].Pattern == ">" {
			f.resumeWideMs = append(f.resumeWideMs, c.ResumeMs...)
			f.serveWideMs = append(f.serveWideMs, c.ServeMs...)
			for _, st := range c.Stalls {
				stalls = append(stalls, stall{ms: st[0], end: st[1], k: c.K})
			}
			if c.MaxStallMs > f.stallWide {
				f.stallWide = c.MaxStallMs
				f.stallWideAt = fmt.Sprintf("client %d, ending at %.3fs", c.K, time.UnixMilli(c.MaxStallAt).Sub(r.start).Seconds())
			}
		}
	}
	f.topStalls = r.topStalls(stalls, 3)
	return f
}

// stall is a time without events on one client's connection.
type stall struct {
	ms, end int64 // its length and end (Unix ms)
	k       int   // the client
}

// topStalls describes the n longest stalls that began at different times
// (the clients of one node stall together), each with the node the client
// was on and the chaos action last noted before it began.
func (r *chaosRig) topStalls(stalls []stall, n int) []string {
	slices.SortFunc(stalls, func(a, b stall) int { return int(b.ms - a.ms) })
	var out []string
	var starts []int64
	for _, s := range stalls {
		start := s.end - s.ms
		if slices.ContainsFunc(starts, func(x int64) bool { return x-1000 < start && start < x+1000 }) {
			continue
		}
		starts = append(starts, start)
		node := -1
		for _, rt := range r.lb.Routes(strconv.Itoa(s.k)) {
			if rt.At.Before(time.UnixMilli(start)) {
				node = rt.Target
			}
		}
		out = append(out, fmt.Sprintf("%d ms from %.3fs on node %d, after %q", s.ms, time.UnixMilli(start).Sub(r.start).Seconds(), node, r.before(time.UnixMilli(start))))
		if len(out) == n {
			break
		}
	}
	return out
}

// before is the last chaos action noted before t.
func (r *chaosRig) before(t time.Time) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	last := "the start"
	for _, a := range r.log {
		if a.at.After(t) {
			break
		}
		last = a.what
	}
	return last
}

func (f figures) String() string {
	return fmt.Sprintf("client connections %d (%d drops of an open connection, by close code %v), client errors %v\n"+
		"reconnect (drop to hello, the client's backoff included): %s\n"+
		"resume (drop to the next event): all clients %s; \">\" clients %s\n"+
		"served (hello to the next event): all clients %s; \">\" clients %s\n"+
		"longest fan-out stall while the load runs (between two events on one connection): \">\" clients %d ms (%s), any client %d ms\n"+
		"longest stalls of \">\" clients: %s",
		f.opens, f.drops, f.dropCodes, f.errors, pct(f.reconnectMs), pct(f.resumeMs), pct(f.resumeWideMs),
		pct(f.serveMs), pct(f.serveWideMs),
		f.stallWide, f.stallWideAt, f.stallAll, strings.Join(f.topStalls, "; "))
}

// pct is "p50 x ms, p99 y ms, max z ms (n)".
func pct(v []int64) string {
	if len(v) == 0 {
		return "none"
	}
	s := slices.Clone(v)
	slices.Sort(s)
	at := func(p float64) int64 { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return fmt.Sprintf("p50 %d ms, p99 %d ms, max %d ms (%d)", at(0.5), at(0.99), s[len(s)-1], len(s))
}

// streamIDKinds counts the stream's events by publisher kind (the payload
// id's first letter: g for Go, c for clients) and Nats-Msg-Id namespace
// (g: an id natsbus made, i: the caller's, h: the caller's hashed).
func streamIDKinds(snaps ...*snapshot) map[string]int {
	kinds := make(map[string]int)
	for _, s := range snaps {
		for _, m := range s.msgs {
			ns, _, _ := strings.Cut(m.msgID, ".")
			kinds[fmt.Sprintf("%.1s:%s", m.id, ns)]++
		}
	}
	return kinds
}
