package main

import (
	"encoding/csv"
	"fmt"
	"html"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/flinkjob/flinkjob/engine/bench"
	"github.com/flinkjob/flinkjob/engine/spec"
)

func writeCSV(path string, results []result) error {
	rows := [][]string{{"query", "mode", "runner", "events", "wall_s", "cpu_s", "events_per_s_per_core", "flink_per_core", "ratio", "events_per_s_wall", "allocs_per_event", "output_records", "latest_checkpoint", "checkpoint_interval_s"}}
	for _, r := range results {
		rows = append(rows, []string{r.query, string(r.mode), r.runner, strconv.FormatInt(r.events, 10),
			f(r.wall.Seconds()), f(r.cpu.Seconds()), f(r.perCore()), f(bench.FlinkPerCore[r.query]), f(r.ratio()),
			f(r.perWall()), f(r.allocs), strconv.FormatInt(r.output, 10), strconv.FormatInt(r.checkpoint, 10), f(r.interval.Seconds())})
	}
	return writeRows(path, rows)
}

func writeLatencyCSV(path string, lats []latency) error {
	// A row per query and runner (in-process, processes); peak 0: not
	// measured (-latency-rate).
	rows := [][]string{{"query", "runner", "peak_events_per_s", "rate_events_per_s", "p50_ms", "p99_ms", "max_ms", "samples"}}
	for _, l := range lats {
		rows = append(rows, []string{l.query, l.runner, strconv.FormatInt(l.peak, 10), strconv.FormatInt(l.rate, 10), fms(l.p50), fms(l.p99), fms(l.max), strconv.Itoa(l.samples)})
	}
	return writeRows(path, rows)
}

func writeRows(path string, rows [][]string) error {
	file, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(file)
	w.WriteAll(rows)
	if err := w.Error(); err != nil {
		file.Close()
		return err
	}
	return file.Close()
}

func f(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }

// writeSVG draws the ratio to Flink's per-core figure as grouped bars: one
// group per query, one bar per mode and runner, on a log scale with the
// 1x (Flink) and 10x (the goal) lines.
func writeSVG(path string, c config, results []result) error {
	type series struct {
		mode   spec.RuntimeMode
		runner string
		color  string
	}
	colors := []string{"#4e79a7", "#a0cbe8", "#f28e2b", "#ffbe7d"}
	var ss []series
	for _, m := range c.modes {
		for _, rn := range c.runners {
			ss = append(ss, series{m, rn, colors[len(ss)%len(colors)]})
		}
	}
	const (
		left, top, height, bottom = 60.0, 40.0, 300.0, 70.0
		barW, gap                 = 14.0, 18.0
	)
	groupW := float64(len(ss))*barW + gap
	width := left + float64(len(c.queries))*groupW + 20
	// Log scale from 0.01x to 100x (clamped).
	lo, hi := -2.0, 2.0
	y := func(ratio float64) float64 {
		v := 0.0
		if ratio > 0 {
			v = log10(ratio)
		} else {
			v = lo
		}
		v = max(lo, min(hi, v))
		return top + height*(hi-v)/(hi-lo)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`+"\n", width, top+height+bottom)
	fmt.Fprintf(&b, `<text x="%.0f" y="20" font-size="13">flinkjob events/s per core / Flink's (Nexmark, %d events, parallelism %d)</text>`+"\n", left, c.events, c.parallelism)
	for e := lo; e <= hi; e++ {
		yy := y(pow10(e))
		// 1x is Flink, 10x the goal.
		style := `stroke="#ddd"`
		switch e {
		case 0:
			style = `stroke="#c00"`
		case 1:
			style = `stroke="#2a2" stroke-dasharray="6 3"`
		}
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" %s/>`+"\n", left, width-10, yy, yy, style)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%gx</text>`+"\n", left-5, yy+4, pow10(e))
	}
	for qi, q := range c.queries {
		x0 := left + gap/2 + float64(qi)*groupW
		for si, s := range ss {
			for _, r := range results {
				if r.query != q || r.mode != s.mode || r.runner != s.runner || r.ratio() == 0 {
					continue
				}
				x, yy := x0+float64(si)*barW, y(r.ratio())
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s %s: %.2fx</title></rect>`+"\n",
					x, yy, barW-2, top+height-yy, s.color, q, s.mode, s.runner, r.ratio())
			}
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`+"\n", x0+float64(len(ss))*barW/2, top+height+15, html.EscapeString(q))
	}
	for si, s := range ss {
		x := left + float64(si%2)*220
		yy := top + height + 35 + float64(si/2)*16
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="10" height="10" fill="%s"/><text x="%.0f" y="%.0f">%s, %s</text>`+"\n", x, yy-9, s.color, x+14, yy, s.mode, s.runner)
	}
	b.WriteString("</svg>\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func log10(v float64) float64    { return math.Log10(v) }
func pow10(e float64) float64    { return math.Pow(10, e) }
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// fms is a latency in ms to the ns (sub-µs latencies are common).
func fms(d time.Duration) string { return strconv.FormatFloat(ms(d), 'f', 6, 64) }
