package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/whalesong/bus/benchmarks/internal/wspeer"
)

// The server process: one peer on 127.0.0.1, its WebSocket endpoint at
// /ws, and a control API for the load process:
//
//	POST /ctl/publish?events=E&rate=R  publish E events (R per second, 0: as fast as possible); answers a published
//	GET  /ctl/cpu                      the process's CPU time so far (user+system), answers a cpuTime
//	GET  /ctl/mem                      after two GCs and returning freed memory to the OS, answers a memory
//	POST /ctl/profile/stop             stops the CPU profile or trace started by the first publish
//	GET  /ctl/clients                  how many connections a publish reaches (-1: the peer's clients know), answers a clients
//	GET  /ctl/heap                     after a GC, the heap profile (with -server-memprofilerate 1: every allocation)
//
// It prints "listening URL" on stdout once it accepts connections and exits
// when its stdin closes (the load process ended, whatever the way).

// published is the answer to /ctl/publish.
type published struct {
	Start  int64 `json:"start"`  // Unix ns of the first publish
	End    int64 `json:"end"`    // Unix ns when the last publish returned
	Events int   `json:"events"` // published
}

// clients is the answer to /ctl/clients: -1 when the peer does not count.
type clients struct {
	N int `json:"n"`
}

type cpuTime struct {
	NS int64 `json:"ns"`
}

// memory is the answer to /ctl/mem.
type memory struct {
	Heap       uint64 `json:"heap"`  // HeapInuse
	Stack      uint64 `json:"stack"` // StackInuse
	RSS        uint64 `json:"rss"`   // VmRSS
	Goroutines int    `json:"goroutines"`
}

// serveFlags are the server process's options, passed by the load
// process.
type serveFlags struct {
	peer           string
	melodyBuffer   int
	cpuProfile     string // file, written from the first publish to /ctl/profile/stop
	traceFile      string // same, an execution trace
	memProfileRate int    // runtime.MemProfileRate, for /ctl/heap
}

func serve(f serveFlags, stdin io.Reader, stdout io.Writer) error {
	if f.memProfileRate > 0 {
		runtime.MemProfileRate = f.memProfileRate
	}
	p, err := wspeer.NewServer(f.peer, wspeer.Options{MelodyBuffer: f.melodyBuffer})
	if err != nil {
		return err
	}
	defer p.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	c := &control{peer: p, flags: f}
	mux := http.NewServeMux()
	mux.Handle("/ws", p.Handler)
	mux.HandleFunc("POST /ctl/publish", c.publish)
	mux.HandleFunc("GET /ctl/cpu", func(w http.ResponseWriter, _ *http.Request) { reply(w, cpuTime{processCPU()}) })
	mux.HandleFunc("GET /ctl/mem", func(w http.ResponseWriter, _ *http.Request) { reply(w, readMemory()) })
	mux.HandleFunc("POST /ctl/profile/stop", c.stopProfile)
	mux.HandleFunc("GET /ctl/clients", func(w http.ResponseWriter, _ *http.Request) {
		n := -1 // the peer's clients know when they are subscribed
		if p.Clients != nil {
			n = p.Clients()
		}
		reply(w, clients{n})
	})
	mux.HandleFunc("GET /ctl/heap", func(w http.ResponseWriter, _ *http.Request) {
		runtime.GC()
		_ = pprof.Lookup("heap").WriteTo(w, 0)
	})
	srv := &http.Server{Handler: mux}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }() // ends with srv.Close below
	fmt.Fprintf(stdout, "listening http://%s\n", ln.Addr())
	_, _ = io.Copy(io.Discard, stdin) // until the load process goes
	_ = srv.Close()
	c.stopProfile(nil, nil)
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type control struct {
	peer  *wspeer.Server
	flags serveFlags

	mu        sync.Mutex
	profiling bool     // mu
	profFile  *os.File // mu
	traceOut  *os.File // mu
}

func (c *control) publish(w http.ResponseWriter, r *http.Request) {
	events, err1 := strconv.Atoi(r.URL.Query().Get("events"))
	rate, err2 := strconv.ParseFloat(r.URL.Query().Get("rate"), 64)
	if err := errors.Join(err1, err2); err != nil || events < 1 || rate < 0 {
		http.Error(w, fmt.Sprintf("bad events or rate: %v", err), http.StatusBadRequest)
		return
	}
	if err := c.startProfile(); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	var every time.Duration
	if rate > 0 {
		every = time.Duration(float64(time.Second) / rate)
	}
	start := time.Now()
	out := published{Start: start.UnixNano()}
	for i := range events {
		if every > 0 { // on an absolute schedule: a late event does not delay the next ones
			if d := time.Until(start.Add(time.Duration(i) * every)); d > 0 {
				time.Sleep(d)
			}
		}
		if err := c.peer.Publish(wspeer.Event{Sent: time.Now().UnixNano(), I: i, Pad: wspeer.Pad}); err != nil {
			http.Error(w, fmt.Sprintf("publish %d: %v", i, err), http.StatusInternalServerError)
			return
		}
		out.Events++
	}
	out.End = time.Now().UnixNano()
	reply(w, out)
}

func (c *control) startProfile() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.profiling {
		return nil
	}
	c.profiling = true
	var err error
	if c.profFile, err = startInto(c.flags.cpuProfile, pprof.StartCPUProfile); err != nil {
		return err
	}
	c.traceOut, err = startInto(c.flags.traceFile, trace.Start)
	return err
}

// startInto creates the file at path and starts writing it with start; no
// path, no file.
func startInto(path string, start func(io.Writer) error) (*os.File, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := start(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

func (c *control) stopProfile(w http.ResponseWriter, _ *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.profFile != nil {
		pprof.StopCPUProfile()
		_ = c.profFile.Close()
		c.profFile = nil
	}
	if c.traceOut != nil {
		trace.Stop()
		_ = c.traceOut.Close()
		c.traceOut = nil
	}
	if w != nil {
		w.WriteHeader(http.StatusNoContent)
	}
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// processCPU is the user and system time the process has used, in ns.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func readMemory() memory {
	runtime.GC()
	debug.FreeOSMemory() // a GC too, then the freed pages go back
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memory{Heap: ms.HeapInuse, Stack: ms.StackInuse, RSS: rss(), Goroutines: runtime.NumGoroutine()}
}

// rss reads VmRSS from /proc/self/status, in bytes (0 if unknown).
func rss() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
