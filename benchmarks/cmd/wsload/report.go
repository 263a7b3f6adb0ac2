package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
)

// units lists the metrics in the order they are printed; a result has
// those of its scenario.
var units = []string{
	"deliveries/s", "burst-ms", "p50-ms", "p99-ms", "max-ms", "frames/client",
	"client-p50-p10-ms", "client-p50-p90-ms", "cpu-ns/delivery", "client-cpu-ns/delivery", "publish-ms", "events/s",
	"heap+stack-B/conn", "heap-B/conn", "stack-B/conn", "rss-B/conn", "goroutines/conn",
}

// benchLine is one round as a Go benchmark result line.
func benchLine(cfg config, peer string, r result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "BenchmarkWS/scenario=%s", cfg.scenario)
	if cfg.scenario == "paced" {
		fmt.Fprintf(&b, "/rate=%g", cfg.rate)
	}
	fmt.Fprintf(&b, "/impl=%s 1", peer)
	for _, u := range units {
		if v, ok := r[u]; ok {
			fmt.Fprintf(&b, " %.6g %s", v, u)
		}
	}
	return b.String()
}

// report prints, per metric, each peer's median and spread (± half the
// min-max range in % of the median) and the bridge's ratio to the others.
func report(out io.Writer, cfg config, results map[string][]result) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	defer w.Flush()
	head := []string{"# metric (median of " + fmt.Sprint(cfg.rounds) + ")"}
	for _, p := range cfg.peers {
		head = append(head, p)
	}
	others := slices.DeleteFunc(slices.Clone(cfg.peers), func(p string) bool { return p == "whalesong" })
	hasBridge := len(others) < len(cfg.peers)
	if hasBridge {
		for _, p := range others {
			head = append(head, "whalesong/"+p)
		}
	}
	fmt.Fprintln(w, strings.Join(head, "\t"))
	for _, u := range units {
		med := make(map[string]float64)
		row := []string{"# " + u}
		for _, p := range cfg.peers {
			m, spread, ok := median(results[p], u)
			if !ok {
				break
			}
			med[p] = m
			row = append(row, fmt.Sprintf("%.4g ±%.0f%%", m, spread))
		}
		if len(row) == 1 {
			continue
		}
		if hasBridge {
			for _, p := range others {
				row = append(row, fmt.Sprintf("%.2fx", med["whalesong"]/med[p]))
			}
		}
		fmt.Fprintln(w, strings.Join(row, "\t"))
	}
}

// median is the median of metric u over rs, and its spread.
func median(rs []result, u string) (m, spread float64, ok bool) {
	var vs []float64
	for _, r := range rs {
		if v, ok := r[u]; ok {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return 0, 0, false
	}
	slices.Sort(vs)
	n := len(vs)
	m = vs[n/2]
	if n%2 == 0 {
		m = (vs[n/2-1] + vs[n/2]) / 2
	}
	if m != 0 {
		spread = math.Abs(vs[n-1]-vs[0]) / 2 / math.Abs(m) * 100
	}
	return m, spread, true
}
