package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/whalesong/bus/benchmarks/internal/wspeer"
)

// server is a running server process, seen from the load process.
type server struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	base  string // http://127.0.0.1:port
	http  *http.Client
}

// startServer starts the server process of peer: this program again, with
// -serve, and the environment given (GOMAXPROCS, say).
func startServer(ctx context.Context, self string, f serveFlags, env []string) (*server, error) {
	args := []string{"-serve", f.peer, "-melody-buffer", strconv.Itoa(f.melodyBuffer), "-server-memprofilerate", strconv.Itoa(f.memProfileRate)}
	if f.cpuProfile != "" {
		args = append(args, "-server-cpuprofile", f.cpuProfile)
	}
	if f.traceFile != "" {
		args = append(args, "-server-trace", f.traceFile)
	}
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, stdin: stdin, http: &http.Client{Timeout: 10 * time.Minute}}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	base, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		s.stop()
		return nil, fmt.Errorf("server %s: no address (%q, %v)", f.peer, line, err)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }() // ends when the process does
	s.base = base
	return s, nil
}

func (s *server) wsURL() string { return "ws" + strings.TrimPrefix(s.base, "http") + "/ws" }

// stop closes the server's stdin, which ends it, and waits for it.
func (s *server) stop() {
	_ = s.stdin.Close()
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

func (s *server) call(method, path string, out any) error {
	req, err := http.NewRequest(method, s.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// save writes the answer to GET path into file.
func (s *server) save(path, file string) error {
	resp, err := s.http.Get(s.base + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	return errors.Join(err, f.Close())
}

func (s *server) cpu() (int64, error) {
	var c cpuTime
	err := s.call("GET", "/ctl/cpu", &c)
	return c.NS, err
}

func (s *server) mem() (memory, error) {
	var m memory
	err := s.call("GET", "/ctl/mem", &m)
	return m, err
}

// awaitClients waits until the server counts n connections, for a peer
// whose clients cannot tell when a publish reaches them.
func (s *server) awaitClients(n int) error {
	for deadline := time.Now().Add(time.Minute); ; {
		var c clients
		if err := s.call("GET", "/ctl/clients", &c); err != nil {
			return err
		}
		if c.N < 0 || c.N >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d clients registered after a minute", c.N, n)
		}
		time.Sleep(10 * time.Millisecond) // nothing announces it across processes: poll
	}
}

// result is one round of one peer: the metrics, by unit.
type result map[string]float64

// runTraffic is one round of the flood or paced scenario: clients
// connections subscribe, events are published (rate per second, 0: a
// flood), every client reads every event.
func runTraffic(ctx context.Context, self string, cfg config, spec string, round int) (result, error) {
	peer, env, bin := splitSpec(spec, self)
	f := serveFlags{peer: peer, melodyBuffer: max(cfg.events, 256)}
	if cfg.profileDir != "" {
		f.cpuProfile = fmt.Sprintf("%s/%s-%s-%d.cpu.prof", cfg.profileDir, cfg.scenario, fileName(spec), round)
	}
	if cfg.traceDir != "" {
		f.traceFile = fmt.Sprintf("%s/%s-%s-%d.trace", cfg.traceDir, cfg.scenario, fileName(spec), round)
	}
	srv, err := startServer(ctx, bin, f, append(slices.Clone(cfg.serverEnv), env...))
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	conns, err := wspeer.DialMany(peer, srv.wsURL(), cfg.clients)
	if err != nil {
		return nil, err
	}
	if err := srv.awaitClients(cfg.clients); err != nil {
		for _, c := range conns {
			_ = c.Close()
		}
		return nil, err
	}
	var closeOnce sync.Once
	closeAll := func() {
		closeOnce.Do(func() {
			for _, c := range conns {
				_ = c.Close()
			}
		})
	}
	defer closeAll()
	cpu0, err := srv.cpu()
	if err != nil {
		return nil, err
	}
	load0 := processCPU()
	got, readErr := readAll(peer, conns, cfg.events, closeAll, func() (published, error) {
		var pub published
		err := srv.call("POST", fmt.Sprintf("/ctl/publish?events=%d&rate=%g", cfg.events, cfg.rate), &pub)
		return pub, err
	})
	cpu1, err := srv.cpu()
	loadCPU := processCPU() - load0
	if err := errors.Join(readErr, err); err != nil {
		return nil, err
	}
	if cfg.profileDir != "" || cfg.traceDir != "" {
		if err := srv.call("POST", "/ctl/profile/stop", nil); err != nil {
			return nil, err
		}
	}
	r := trafficResult(cfg, got, cpu1-cpu0)
	r["client-cpu-ns/delivery"] = float64(loadCPU) / (float64(cfg.clients) * float64(cfg.events))
	return r, nil
}

// traffic is what a round's clients got, and the publisher's answer.
type traffic struct {
	pub  published
	recv []wspeer.Received
}

// readAll starts a reader per connection, publishes, and waits for every
// reader. A failing reader closes every connection, which ends the others.
func readAll(peer string, conns []*websocket.Conn, events int, closeAll func(), publish func() (published, error)) (traffic, error) {
	t := traffic{recv: make([]wspeer.Received, len(conns))}
	deadline := time.Now().Add(5 * time.Minute)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
		closeAll()
	}
	for i, c := range conns {
		r := wspeer.NewReader(peer, c)
		wg.Go(func() {
			var err error
			if t.recv[i], err = r.Read(events, deadline); err != nil {
				fail(fmt.Errorf("client %d after %d events: %w", i, len(t.recv[i].Lat), err))
			}
		})
	}
	var err error
	if t.pub, err = publish(); err != nil {
		fail(err)
	}
	wg.Wait()
	return t, firstErr
}

func trafficResult(cfg config, t traffic, cpuNS int64) result {
	var last int64
	frames := 0
	lat := make([]int64, 0, len(t.recv)*cfg.events)
	for _, r := range t.recv {
		last = max(last, r.Last)
		frames += r.Frames
		lat = append(lat, r.Lat...)
	}
	slices.Sort(lat)
	deliveries := float64(len(lat))
	// Fairness: how the clients' own median latencies spread.
	meds := make([]int64, 0, len(t.recv))
	for _, r := range t.recv {
		l := slices.Clone(r.Lat)
		slices.Sort(l)
		meds = append(meds, l[len(l)/2])
	}
	slices.Sort(meds)
	burst := time.Duration(last - t.pub.Start)
	pubTime := time.Duration(t.pub.End - t.pub.Start)
	return result{
		"deliveries/s":      deliveries / burst.Seconds(),
		"burst-ms":          burst.Seconds() * 1e3,
		"p50-ms":            float64(lat[len(lat)/2]) / 1e6,
		"p99-ms":            float64(lat[len(lat)*99/100]) / 1e6,
		"max-ms":            float64(lat[len(lat)-1]) / 1e6,
		"frames/client":     float64(frames) / float64(len(t.recv)),
		"client-p50-p10-ms": float64(meds[len(meds)/10]) / 1e6,
		"client-p50-p90-ms": float64(meds[len(meds)*9/10]) / 1e6,
		"cpu-ns/delivery":   float64(cpuNS) / deliveries,
		"publish-ms":        pubTime.Seconds() * 1e3,
		"events/s":          float64(t.pub.Events) / pubTime.Seconds(),
	}
}

// runIdle is one round of the idle scenario: the server's memory before
// and after cfg.idle connections (subscribed where the peer has
// subscriptions) that then do nothing.
func runIdle(ctx context.Context, self string, cfg config, spec string) (result, error) {
	peer, env, bin := splitSpec(spec, self)
	f := serveFlags{peer: peer} // melody's default buffer
	if cfg.heapDir != "" {
		f.memProfileRate = 1
	}
	srv, err := startServer(ctx, bin, f, append(slices.Clone(cfg.serverEnv), env...))
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	m0, err := srv.mem()
	if err != nil {
		return nil, err
	}
	conns, err := wspeer.DialMany(peer, srv.wsURL(), cfg.idle)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	m1, err := settled(srv)
	if err != nil {
		return nil, err
	}
	n := float64(cfg.idle)
	if cfg.heapDir != "" {
		if err := srv.save("/ctl/heap", fmt.Sprintf("%s/idle-%s.heap.prof", cfg.heapDir, fileName(spec))); err != nil {
			return nil, err
		}
	}
	return result{
		"heap-B/conn":       (float64(m1.Heap) - float64(m0.Heap)) / n,
		"stack-B/conn":      (float64(m1.Stack) - float64(m0.Stack)) / n,
		"heap+stack-B/conn": (float64(m1.Heap+m1.Stack) - float64(m0.Heap+m0.Stack)) / n,
		"rss-B/conn":        (float64(m1.RSS) - float64(m0.RSS)) / n,
		"goroutines/conn":   float64(m1.Goroutines-m0.Goroutines) / n,
	}, nil
}

// settled reads the server's memory once its goroutine count has stopped
// changing (a connection's last goroutines start after its handshake
// answer).
func settled(srv *server) (memory, error) {
	prev, err := srv.mem()
	for i := 0; err == nil && i < 50; i++ {
		time.Sleep(100 * time.Millisecond) // nothing announces it: poll
		var m memory
		if m, err = srv.mem(); err == nil && m.Goroutines == prev.Goroutines {
			return m, nil
		}
		prev = m
	}
	return prev, err
}

// splitSpec reads a peer spec, name[+KEY=VALUE...]: the peer, and
// environment variables for its server process (to compare settings of
// one peer in the same run). The pseudo-variable bin=PATH runs that
// peer's server from another build of wsload instead of self (to compare
// builds in the same run).
func splitSpec(spec, self string) (name string, env []string, bin string) {
	parts := strings.Split(spec, "+")
	bin = self
	for _, p := range parts[1:] {
		if b, ok := strings.CutPrefix(p, "bin="); ok {
			bin = b
			continue
		}
		env = append(env, p)
	}
	return parts[0], env, bin
}

func fileName(spec string) string {
	return strings.NewReplacer("+", "_", "=", "-", "/", "_").Replace(spec)
}
