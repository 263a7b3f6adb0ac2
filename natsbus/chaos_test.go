package natsbus

// The chaos runs of issue 7, end to end with real components on 127.0.0.1:
// an R3 NATS cluster in this process; three bridge nodes, each its own
// *nats.Conn, natsbus bus on one stream and bridge.Bridge on an HTTP server,
// behind a balancer that sends each client's next connection to another
// node and cuts sockets; the project's JS client under Node, all clients in
// one node process (testdata/chaos_clients.mjs). The rig is in
// chaos_rig_test.go, the Node side in chaos_clients_test.go, the stream's
// contents in chaos_stream_test.go, the checks in chaos_check_test.go and
// the figures in chaos_figures_test.go.

import (
	"testing"
	"time"
)

// chaosSize is the load of a run.
type chaosSize struct {
	clients    int           // JS clients, one subscription each
	wideEvery  int           // every wideEvery-th client subscribes to ">", the others to one topic
	pubEvery   int           // every pubEvery-th client also publishes
	rate       int           // events a second in all: half Go Publish on the buses, half client publishes
	duration   time.Duration // of the load and the chaos (the epoch run: of each epoch)
	topics     int
	seed       int     // events in the stream before the clients start
	history    int     // per topic: more than a run publishes, so that every resume can be complete
	cut        float64 // fraction of the open sockets cut every second
	serverDown time.Duration
}

// The sizes. The full one is issue 7's: 300 clients, 1,000 events/s, 10%
// of the sockets cut every second, for a minute. -short makes it small;
// under the race detector (5 to 10 times slower, and CI runs the tests both
// ways) it is smaller, so that the race run looks at the same paths
// without starving two cores.
var (
	chaosFull  = chaosSize{clients: 300, wideEvery: 20, pubEvery: 3, rate: 1000, duration: 60 * time.Second, topics: 20, seed: 1000, history: 50000, cut: 0.10, serverDown: 2 * time.Second}
	chaosSmall = chaosSize{clients: 30, wideEvery: 10, pubEvery: 3, rate: 200, duration: 12 * time.Second, topics: 5, seed: 200, history: 50000, cut: 0.10, serverDown: time.Second}
	chaosRace  = chaosSize{clients: 60, wideEvery: 10, pubEvery: 3, rate: 200, duration: 40 * time.Second, topics: 10, seed: 500, history: 50000, cut: 0.10, serverDown: 2 * time.Second}
)

func mainSize() chaosSize {
	switch {
	case testing.Short():
		return chaosSmall
	case raceEnabled:
		return chaosRace
	}
	return chaosFull
}

// epochSize is the epoch run's: shorter, without server restarts.
func epochSize() chaosSize {
	s := mainSize()
	s.clients = max(s.clients/3, 20)
	s.rate /= 2
	s.duration = max((s.duration / 6).Round(time.Second), 5*time.Second)
	return s
}

// TestChaos is issue 7's chaos run. Under load, with a tenth of the sockets
// cut every second (each client's next connection lands on another node),
// one NATS server restarted every quarter of the run, one bus node crashed
// and restarted, and one node's link to NATS stalled for 1.5 s (clients
// that saw later events elsewhere come to it while it is behind), every JS
// client gets every event of its pattern from its first position to the
// end, in increasing seq, nothing lost, nothing twice, without a gap; every
// client publish is stored once, at the seq its promise gave; every acked
// Go Publish is stored once and in every node's History; no goroutine is
// left behind.
func TestChaos(t *testing.T) {
	noLeaks(t)
	findNode(t) // skip before starting anything
	size := mainSize()
	r := newChaosRig(t, size)
	specs := r.clientSpecs()
	js := r.startJS(specs)
	ep := r.epoch()

	d := size.duration
	r.phase(js, []timedAction{
		{d * 15 / 100, func() { r.stall(2, 1500*time.Millisecond) }},
		{d / 4, func() { r.restartServer(0, size.serverDown) }},
		{d * 37 / 100, func() { r.crash(1) }},
		{d / 2, func() { r.restartServer(2, size.serverDown) }},
		{d * 60 / 100, func() { r.restart(1) }},
		{d * 3 / 4, func() { r.restartServer(1, size.serverDown) }},
	})
	snap := r.settle(js, ep, specs)
	clients, ran, cpu := js.report(len(specs))
	r.note("node process: %d ms of CPU in %d ms", cpu, ran)

	fl := newFailLog(t)
	for i, c := range clients {
		r.checkOneEpoch(fl, specs[i], c, snap)
	}
	r.checkPublishes(fl, clients, snap)
	r.checkHistories(snap)
	fl.summary()
	r.logFigures(specs, clients, snap)
}

// TestChaosEpoch: the stream deleted and recreated in the middle of a run
// gives every client exactly one gap ("reset", before any event of the new
// epoch), and then nothing lost or twice in either epoch. Between the two
// phases (while the operator deletes and recreates the stream and the
// nodes notice, within about a second) nothing is published or cut: a
// client that reached the new epoch on one node and was then sent to a
// node still in the old one would be told of a reset twice.
func TestChaosEpoch(t *testing.T) {
	noLeaks(t)
	findNode(t)
	size := epochSize()
	r := newChaosRig(t, size)
	specs := r.clientSpecs()
	js := r.startJS(specs)

	e1 := r.epoch()
	r.phase(js, nil)
	s1 := r.settle(js, e1, specs)
	e2 := r.recreateStream()
	r.phase(js, nil)
	s2 := r.settle(js, e2, specs)
	clients, ran, cpu := js.report(len(specs))
	r.note("node process: %d ms of CPU in %d ms", cpu, ran)

	fl := newFailLog(t)
	for i, c := range clients {
		r.checkTwoEpochs(fl, specs[i], c, s1, s2)
	}
	r.checkPublishes(fl, clients, s1, s2)
	r.checkHistories(s2)
	fl.summary()
	r.logFigures(specs, clients, s1, s2)
}

// clientSpecs: every wideEvery-th client on ">", the others on one topic;
// of every five, one resumes from a position with an epoch and one from a
// seq without; every pubEvery-th also publishes, so that the clients
// publish half the rate together.
func (r *chaosRig) clientSpecs() []jsClientSpec {
	s := r.size
	ep := r.epoch()
	specs := make([]jsClientSpec, s.clients)
	publishers := 0
	for k := range specs {
		if k%s.pubEvery == 2 {
			publishers++
		}
	}
	every := publishers * 1000 * 2 / max(s.rate, 1)
	for k := range specs {
		sp := &specs[k]
		sp.Pattern = r.topic(k)
		if k%s.wideEvery == 0 {
			sp.Pattern = ">"
		}
		at := uint64(k*37) % uint64(s.seed+1)
		switch k % 5 {
		case 1:
			sp.After = afterPos{Epoch: ep, Seq: at}
		case 2:
			sp.After = at
		}
		if k%s.pubEvery == 2 {
			sp.Publish = &jsPublish{Topic: r.topic(k * 7), Every: every}
		}
	}
	return specs
}

// startJS starts the node process with every client and waits until each
// subscription is acknowledged.
func (r *chaosRig) startJS(specs []jsClientSpec) *jsScript {
	r.t.Helper()
	js := startClients(r.t, jsParams{
		Client:  clientModule(r.t),
		URL:     "ws://" + r.lb.Addr() + "/ws",
		Options: map[string]int{"minDelay": 100, "initialDelay": 300, "maxDelay": 2000},
		Clients: specs,
	})
	var ready struct {
		Ms     int            `json:"ms"`
		Failed []readyFailure `json:"failed"`
	}
	js.step("ready", 2*time.Minute, &ready)
	if len(ready.Failed) > 0 {
		r.t.Fatalf("%d clients not ready: %+v", len(ready.Failed), ready.Failed[:min(len(ready.Failed), 5)])
	}
	r.note("%d clients subscribed in %d ms", len(specs), ready.Ms)
	return js
}

// readyFailure is a client whose subscription was not acknowledged.
type readyFailure struct {
	K     int            `json:"k"`
	Ready map[string]any `json:"ready"`
}

// timedAction is a chaos action at a time after the start of a phase.
type timedAction struct {
	at time.Duration
	do func()
}

// phase runs the load for size.duration: Go publishers on every node,
// client publishes, sockets cut every second, and the actions at their
// times (run here, in the test's goroutine); then it stops publishing and
// waits until every client publish has settled.
func (r *chaosRig) phase(js *jsScript, actions []timedAction) {
	r.t.Helper()
	stop := make(chan struct{})
	start := time.Now()
	r.note("load: %d events/s, %.0f%% of the sockets cut every second, for %v", r.size.rate, 100*r.size.cut, r.size.duration)
	waitPub := r.goPublishers(r.size.rate/2, stop)
	js.send(map[string]any{"cmd": "publish", "on": true})
	waitCut := r.cutter(r.size.cut, stop)
	for _, a := range actions {
		time.Sleep(time.Until(start.Add(a.at))) // the schedule of the run, not a wait for an event
		a.do()
	}
	time.Sleep(time.Until(start.Add(r.size.duration)))
	close(stop)
	waitCut()
	waitPub()
	js.send(map[string]any{"cmd": "publish", "on": false, "settleMs": 60000})
	var st struct {
		Published, Resolved, Rejected, Pending int
	}
	js.step("stopped", 90*time.Second, &st)
	r.note("load stopped: clients published %d (%d resolved, %d rejected, %d pending)", st.Published, st.Resolved, st.Rejected, st.Pending)
}

// settle waits until every node has applied the whole stream, reads it,
// and waits until every client has had the last event of its pattern in
// epoch ep.
func (r *chaosRig) settle(js *jsScript, ep string, specs []jsClientSpec) *snapshot {
	r.t.Helper()
	last := r.quiesce()
	snap := r.snapshot(ep)
	patterns := make([]string, len(specs))
	for i, s := range specs {
		patterns[i] = s.Pattern
	}
	start := time.Now()
	js.send(map[string]any{"cmd": "wait", "epoch": ep, "targets": snap.targets(patterns), "waitMs": 30000})
	var caught struct {
		Behind []jsBehind `json:"behind"`
	}
	js.step("caught", time.Minute, &caught)
	r.note("stream at %d; clients caught up in %v, %d behind", last, time.Since(start).Round(time.Millisecond), len(caught.Behind))
	if n := len(caught.Behind); n > 0 {
		r.t.Errorf("%d clients did not reach the end of epoch %.8s within 30s, e.g. %+v\ntimeline:\n%s", n, ep, caught.Behind[:min(n, 5)], r.timeline())
	}
	return snap
}
