// Command wsload compares the whalesong bridge with centrifuge and raw
// melody over WebSocket, with the clients in this process and each server
// in a process of its own (this program again, run with -serve), so that
// the clients' work does not run on the server's Go scheduler and costs
// every peer the same: each client is a raw gorilla/websocket connection
// that finds the events in a frame with the same byte scan
// (../../internal/wspeer).
//
// Scenarios:
//
//	flood  -events 2000 as fast as the server takes them to -clients 1000
//	paced  the same at -rate events/s (e.g. 200, 500): latency at equal load
//	idle   -idle 5000 connections, subscribed, doing nothing: the server's heap+stack and RSS per connection
//
// Each round starts a fresh server process per peer, the peers in a
// rotating order; rounds default to 3. Every round prints one line in the
// Go benchmark format (benchstat reads it: -col /impl), and the end a table
// of medians, with the bridge's ratio to centrifuge and melody:
//
//	cd benchmarks && go run ./cmd/wsload -scenario flood -rounds 5 > /tmp/flood.txt
//	go run ./cmd/wsload -scenario paced -rate 500 -events 2500 -rounds 5
//	go run ./cmd/wsload -scenario idle -rounds 5
//
// A peer in -peers may carry settings for its server process,
// name+KEY=VALUE..., where bin=PATH runs it from another build of wsload:
// -peers whalesong,whalesong+bin=/tmp/wsload-old,centrifuge,melody
// compares two builds of the bridge in one run.
//
// -server-procs sets the servers' GOMAXPROCS; -profile DIR and -trace DIR
// make each server write a CPU profile or an execution trace of its
// publish-to-last-receipt window, -heap DIR (idle) a heap profile of its
// idle connections.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"

	"github.com/whalesong/bus/benchmarks/internal/wspeer"
)

type config struct {
	scenario   string
	peers      []string
	clients    int
	events     int
	rate       float64
	idle       int
	rounds     int
	profileDir string
	traceDir   string
	heapDir    string
	serverEnv  []string
}

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "wsload:", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("wsload", flag.ContinueOnError)
	var (
		cfg   config
		peers string
		procs int
		sf    serveFlags
	)
	fs.StringVar(&cfg.scenario, "scenario", "flood", "flood, paced or idle")
	fs.StringVar(&peers, "peers", strings.Join(wspeer.Names, ","), "peers to run, comma-separated, each name[+KEY=VALUE...] (bin=PATH: another build)")
	fs.IntVar(&cfg.clients, "clients", 1000, "connections (flood, paced)")
	fs.IntVar(&cfg.events, "events", 2000, "events per round (flood, paced)")
	fs.Float64Var(&cfg.rate, "rate", 500, "events per second (paced)")
	fs.IntVar(&cfg.idle, "idle", 5000, "connections (idle)")
	fs.IntVar(&cfg.rounds, "rounds", 3, "rounds")
	fs.StringVar(&cfg.profileDir, "profile", "", "write each server's CPU profile into this directory")
	fs.StringVar(&cfg.traceDir, "trace", "", "write each server's execution trace into this directory")
	fs.IntVar(&procs, "server-procs", 0, "the servers' GOMAXPROCS (0: the default)")
	fs.StringVar(&sf.peer, "serve", "", "internal: run the server of this peer")
	fs.IntVar(&sf.melodyBuffer, "melody-buffer", 0, "internal: melody's session buffer")
	fs.StringVar(&sf.cpuProfile, "server-cpuprofile", "", "internal: the server's CPU profile")
	fs.StringVar(&sf.traceFile, "server-trace", "", "internal: the server's execution trace")
	fs.IntVar(&sf.memProfileRate, "server-memprofilerate", 0, "internal: the server's runtime.MemProfileRate")
	fs.StringVar(&cfg.heapDir, "heap", "", "idle: write each server's heap profile (every allocation sampled) into this directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if sf.peer != "" {
		return serve(sf, stdin, stdout)
	}
	cfg.peers = strings.Split(peers, ",")
	for _, p := range cfg.peers {
		if name, _, _ := splitSpec(p, ""); !wspeer.Valid(name) {
			return fmt.Errorf("no peer %q (want some of %s)", p, strings.Join(wspeer.Names, ","))
		}
	}
	switch cfg.scenario {
	case "flood":
		cfg.rate = 0
	case "paced":
		if cfg.rate <= 0 {
			return fmt.Errorf("paced: -rate must be positive")
		}
	case "idle":
	default:
		return fmt.Errorf("no scenario %q (want flood, paced or idle)", cfg.scenario)
	}
	if procs > 0 {
		cfg.serverEnv = append(cfg.serverEnv, fmt.Sprintf("GOMAXPROCS=%d", procs))
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return measure(ctx, self, cfg, stdout)
}

// measure runs the rounds and reports.
func measure(ctx context.Context, self string, cfg config, out io.Writer) error {
	fmt.Fprintf(out, "# wsload %s: %s\n", cfg.scenario, describe(cfg))
	results := make(map[string][]result)
	for round := range cfg.rounds {
		order := slices.Clone(cfg.peers)
		k := round % len(order)
		order = append(order[k:], order[:k]...) // each peer goes first in turn
		for _, peer := range order {
			if err := ctx.Err(); err != nil {
				return err
			}
			load0 := loadAverage()
			var r result
			var err error
			if cfg.scenario == "idle" {
				r, err = runIdle(ctx, self, cfg, peer)
			} else {
				r, err = runTraffic(ctx, self, cfg, peer, round)
			}
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", round+1, peer, err)
			}
			results[peer] = append(results[peer], r)
			fmt.Fprintf(out, "# round %d, load average %s -> %s\n", round+1, load0, loadAverage())
			fmt.Fprintln(out, benchLine(cfg, peer, r))
		}
	}
	report(out, cfg, results)
	return nil
}

func describe(cfg config) string {
	switch cfg.scenario {
	case "idle":
		return fmt.Sprintf("%d idle connections, %d rounds", cfg.idle, cfg.rounds)
	case "paced":
		return fmt.Sprintf("%d clients, %d events at %g/s, %d rounds", cfg.clients, cfg.events, cfg.rate, cfg.rounds)
	}
	return fmt.Sprintf("%d clients, %d events as fast as possible, %d rounds", cfg.clients, cfg.events, cfg.rounds)
}

// loadAverage is the 1-minute load average, as /proc/loadavg says.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}
