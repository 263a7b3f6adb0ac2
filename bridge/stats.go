package bridge

import "sync/atomic"

// Stats describes a Bridge at one instant, for operators.
type Stats struct {
	// Clients is the number of open connections; Subscriptions the live
	// client subscriptions over all of them; Patterns the distinct patterns
	// they use, each served by one shared bus subscription.
	Clients, Subscriptions, Patterns int

	// FramesIn counts client frames received; FramesOut frames written to
	// clients; EventsOut event entries written (one per event per client,
	// however many of its subscriptions it was for).
	FramesIn, FramesOut, EventsOut uint64

	// Published counts client publishes that reached the bus (a retry that
	// the bus itself recognised by its id, past the bridge's window,
	// counts here too); Deduplicated retries answered from the bridge's
	// dedup window without publishing again (nor running the publish hook).
	Published, Deduplicated uint64

	// SlowDisconnects counts clients cut off with 4000 because their backlog
	// passed WithMaxBacklog; AbuseDisconnects clients closed with 4001 when
	// their bad-frame budget was spent.
	SlowDisconnects, AbuseDisconnects uint64

	// Kicked counts connections closed by Kick (4003); Expired those closed
	// at their WithExpiry time (4002); Revoked the subscriptions that
	// Reauthorize ended.
	Kicked, Expired, Revoked uint64

	// CodecErrors counts events the Codec could not encode (delivered with
	// "data":null and an "error").
	CodecErrors uint64

	// HandshakesRefused counts connection requests refused before the
	// upgrade, by reason: "unavailable" (503: the bridge or its bus is
	// closed), "origin" (403), "authentication" (401: WithAuthenticate) and
	// "expired" (401: WithExpiry had passed). All four are present. Refusal
	// probes (plain GETs) are not counted.
	HandshakesRefused map[string]uint64

	// Superseded counts queued events of subscriptions made with conflate
	// that a newer event of the same topic replaced while their client was
	// behind (each counted in the skipped of a later one it got).
	Superseded uint64

	// Rejected counts the error frames sent, by code ("forbidden",
	// "rate_limited", ...). Codes never sent are absent.
	Rejected map[string]uint64
}

type counters struct {
	clients, subscriptions                         atomic.Int64
	framesIn, framesOut, eventsOut                 atomic.Uint64
	published, deduplicated                        atomic.Uint64
	slowDisconnects, abuseDisconnects, codecErrors atomic.Uint64
	kicked, expired, revoked                       atomic.Uint64
	superseded                                     atomic.Uint64
	rejected                                       [numCodes]atomic.Uint64
	handshakesRefused                              [numRefusals]atomic.Uint64 // by refusal; admitted unused
}

// Stats returns the bridge's counters.
func (br *Bridge[T]) Stats() Stats {
	st := &br.stats
	br.fanMu.Lock()
	patterns := len(br.fans)
	br.fanMu.Unlock()
	out := Stats{
		Clients:           int(st.clients.Load()),
		Subscriptions:     int(st.subscriptions.Load()),
		Patterns:          patterns,
		FramesIn:          st.framesIn.Load(),
		FramesOut:         st.framesOut.Load(),
		EventsOut:         st.eventsOut.Load(),
		Published:         st.published.Load(),
		Deduplicated:      st.deduplicated.Load(),
		SlowDisconnects:   st.slowDisconnects.Load(),
		AbuseDisconnects:  st.abuseDisconnects.Load(),
		Kicked:            st.kicked.Load(),
		Expired:           st.expired.Load(),
		Revoked:           st.revoked.Load(),
		CodecErrors:       st.codecErrors.Load(),
		Superseded:        st.superseded.Load(),
		Rejected:          make(map[string]uint64),
		HandshakesRefused: make(map[string]uint64, numRefusals-1),
	}
	for v := refusedClosed; v < numRefusals; v++ {
		out.HandshakesRefused[v.reason()] = st.handshakesRefused[v].Load()
	}
	for c := range numCodes {
		if n := st.rejected[c].Load(); n > 0 {
			out.Rejected[c.String()] = n
		}
	}
	return out
}
