// Command sockq samples how many bytes wait in the kernel's buffers of the
// established TCP sockets on 127.0.0.1 while a wsload flood runs: on the
// server's side (sent, not yet acknowledged by the client's socket) and on
// the clients' (received, not yet read by the client). The server is the
// port that most sockets share. Linux only (it reads /proc/net/tcp).
//
//	go run ./cmd/sockq -for 25s &
//	/tmp/wsload -scenario flood -events 2000 -rounds 2 -peers whalesong
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
	"time"
)

// sock is one established socket's ports and queues.
type sock struct {
	local, remote uint64
	tx, rx        uint64
}

func main() {
	dur := flag.Duration("for", 20*time.Second, "how long to sample")
	every := flag.Duration("every", 25*time.Millisecond, "sampling interval")
	least := flag.Int("least", 1500, "ignore samples with fewer sockets than this (no flood running)")
	flag.Parse()
	var peak, peakAt [2]uint64
	start := time.Now()
	for time.Since(start) < *dur {
		socks, err := read()
		if err != nil {
			log.Fatal(err)
		}
		if len(socks) >= *least {
			srv, cli := queued(socks)
			if srv+cli > peak[0]+peak[1] {
				peak = [2]uint64{srv, cli}
				peakAt = [2]uint64{uint64(time.Since(start).Milliseconds()), uint64(len(socks))}
			}
			fmt.Printf("%6d ms  server %10d B  clients %10d B\n", time.Since(start).Milliseconds(), srv, cli)
		}
		time.Sleep(*every)
	}
	fmt.Printf("peak at %d ms (%d sockets): server %d B + clients %d B = %d B\n",
		peakAt[0], peakAt[1], peak[0], peak[1], peak[0]+peak[1])
}

// queued sums the server's send queues and the clients' receive queues.
func queued(socks []sock) (srv, cli uint64) {
	count := map[uint64]int{}
	for _, s := range socks {
		count[s.local]++
	}
	var port uint64
	for p, n := range count {
		if n > count[port] {
			port = p
		}
	}
	for _, s := range socks {
		switch port {
		case s.local:
			srv += s.tx
		case s.remote:
			cli += s.rx
		}
	}
	return srv, cli
}

// read parses /proc/net/tcp's established sockets: "sl local rem st
// tx_queue:rx_queue ...", addresses as hex ip:port.
func read() ([]sock, error) {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []sock
	sc := bufio.NewScanner(f)
	sc.Scan() // the header
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 5 || fl[3] != "01" { // ESTABLISHED
			continue
		}
		var s sock
		s.local, _ = hexPort(fl[1])
		s.remote, _ = hexPort(fl[2])
		tx, rx, _ := strings.Cut(fl[4], ":")
		s.tx, _ = strconv.ParseUint(tx, 16, 64)
		s.rx, _ = strconv.ParseUint(rx, 16, 64)
		out = append(out, s)
	}
	return out, sc.Err()
}

func hexPort(addr string) (uint64, error) {
	_, p, _ := strings.Cut(addr, ":")
	return strconv.ParseUint(p, 16, 64)
}
