package local_test

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/enginetest"
	"github.com/flinkjob/flinkjob/engine/local"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// The property: on random bounded input, STREAMING and BATCH give the same
// final results (for STREAMING's rolling results, the last update per key;
// windows and joins as multisets), and both equal a plain Go model of the
// job computed here.
//
// Timestamps are out of order by at most bound-1 ms (ts_i = 2i + jitter,
// jitter in [0, bound-1]) and the watermark strategy allows bound ms, so a
// record always arrives at least 2ms after the watermark: nothing is late,
// and no record can touch a session window the watermark has already
// fired (a record exactly at a fired session's end would merge with it in
// BATCH but start a new session in STREAMING, as in Flink).

const (
	propBound   = 20 // ms of out-of-orderness the watermark allows
	propTumble  = 50
	propSlide   = 25
	propSlideSz = 100
	propGap     = 15
	propLower   = -10
	propUpper   = 5
)

type propRec struct {
	ID   int    `json:"id"`
	K    string `json:"k"`
	Ts   int64  `json:"ts"`
	V    int64  `json:"v"`
	Line string `json:"line"`
	Side string `json:"side"`
}

func genProp(r *rand.Rand, n int) []propRec {
	keys := rand.NewZipf(r, 1.3, 2, 39)
	words := rand.NewZipf(r, 1.2, 1, 29)
	out := make([]propRec, n)
	for i := range out {
		nw := 1 + r.Intn(4)
		ws := make([]string, nw)
		for j := range ws {
			ws[j] = fmt.Sprintf("w%d", words.Uint64())
		}
		side := "l"
		if r.Intn(2) == 0 {
			side = "r"
		}
		out[i] = propRec{ID: i, K: fmt.Sprintf("k%d", keys.Uint64()), Ts: int64(2*i + r.Intn(propBound)),
			V: int64(r.Intn(100)), Line: strings.Join(ws, " "), Side: side}
	}
	return out
}

const propJob = `
parallelism: %d
steps:
  - name: src
    parallelism: %d
    source:
      elements: %s
      timestamp: record.ts
      watermarks: {maxOutOfOrderness: %dms}
  - name: words
    inputs: [src]
    flatMap: "record.line.split(' ').map(w, {'word': w, 'n': 1})"
  - name: wc
    keyBy: record.word
    reduce: "{'word': acc.word, 'n': acc.n + record.n}"
  - name: wc-out
    sink: {call: wc}
  - name: tumbling
    inputs: [src]
    parallelism: %d
    keyBy: record.k
    window:
      type: tumbling
      size: %dms
      lateDataOutput: tumbling-late
      aggregate: {fields: [{name: "n", count: true}, {name: s, sum: record.v}]}
  - name: tumbling-out
    inputs: [tumbling]
    sink: {call: tumbling}
  - name: sliding
    inputs: [src]
    keyBy: record.k
    window:
      type: sliding
      size: %dms
      slide: %dms
      aggregate: {fields: [{name: "n", count: true}]}
  - name: sliding-out
    sink: {call: sliding}
  - name: session
    inputs: [src]
    keyBy: record.k
    window:
      type: session
      gap: %dms
      lateDataOutput: session-late
      aggregate: {fields: [{name: "n", count: true}, {name: s, sum: record.v}]}
  - name: session-out
    inputs: [session]
    sink: {call: session}
  - name: late-out
    inputs: [tumbling-late, session-late]
    union: {}
  - name: late-sink
    sink: {call: late}
  - name: lefts
    inputs: [src]
    filter: "record.side == 'l'"
  - name: rights
    inputs: [src]
    filter: "record.side == 'r'"
  - name: ijoin
    inputs: [lefts, rights]
    parallelism: %d
    join:
      leftKey: record.k
      rightKey: record.k
      interval: {lowerBound: %dms, upperBound: %dms}
      select: "[left.id, right.id]"
  - name: ijoin-out
    sink: {call: ijoin}
  - name: wjoin
    inputs: [lefts, rights]
    join:
      leftKey: record.k
      rightKey: record.k
      window: {type: tumbling, size: %dms}
      select: "[left.id, right.id]"
  - name: wjoin-out
    sink: {call: wjoin}
`

// propModel computes the job's final results in plain Go.
func propModel(recs []propRec) map[string][]string {
	js := func(v any) string { return string(value.ToJSON(value.Normalize(v))) }
	out := map[string][]string{}
	wc := map[string]int64{}
	type kw struct {
		k     string
		start int64
	}
	tum := map[kw][2]int64{}
	sli := map[kw]int64{}
	byKey := map[string][]propRec{}
	for _, r := range recs {
		for _, w := range strings.Split(r.Line, " ") {
			wc[w]++
		}
		s := floorDiv(r.Ts, propTumble) * propTumble
		t := tum[kw{r.K, s}]
		tum[kw{r.K, s}] = [2]int64{t[0] + 1, t[1] + r.V}
		for st := floorDiv(r.Ts, propSlide) * propSlide; st > r.Ts-propSlideSz; st -= propSlide {
			sli[kw{r.K, st}]++
		}
		byKey[r.K] = append(byKey[r.K], r)
	}
	for w, n := range wc {
		out["wc"] = append(out["wc"], js(map[string]any{"word": w, "n": n}))
	}
	for k, t := range tum {
		out["tumbling"] = append(out["tumbling"], js(map[string]any{"key": k.k, "windowStart": k.start, "windowEnd": k.start + propTumble, "n": t[0], "s": t[1]}))
	}
	for k, n := range sli {
		out["sliding"] = append(out["sliding"], js(map[string]any{"key": k.k, "windowStart": k.start, "windowEnd": k.start + propSlideSz, "n": n}))
	}
	for k, rs := range byKey {
		sorted := append([]propRec(nil), rs...)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i].Ts < sorted[j].Ts })
		var start, end, n, s int64
		flush := func() {
			out["session"] = append(out["session"], js(map[string]any{"key": k, "windowStart": start, "windowEnd": end, "n": n, "s": s}))
		}
		for i, r := range sorted {
			// [ts, ts+gap) intersects [start, end) when ts <= end (touching merges).
			if i > 0 && r.Ts <= end {
				end = max(end, r.Ts+propGap)
				n, s = n+1, s+r.V
				continue
			}
			if i > 0 {
				flush()
			}
			start, end, n, s = r.Ts, r.Ts+propGap, 1, r.V
		}
		flush()
		for _, l := range rs {
			if l.Side != "l" {
				continue
			}
			for _, r := range rs {
				if r.Side != "r" {
					continue
				}
				if l.Ts+propLower <= r.Ts && r.Ts <= l.Ts+propUpper {
					out["ijoin"] = append(out["ijoin"], js([]any{l.ID, r.ID}))
				}
				if floorDiv(l.Ts, propTumble) == floorDiv(r.Ts, propTumble) {
					out["wjoin"] = append(out["wjoin"], js([]any{l.ID, r.ID}))
				}
			}
		}
	}
	for _, v := range out {
		sort.Strings(v)
	}
	return out
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// finals reads a run's final results: the last update per word for the
// rolling word count, every record for the rest.
func finals(c *enginetest.Collect) map[string][]string {
	out := map[string][]string{}
	last := map[string]string{}
	for _, v := range c.Values("wc") {
		last[v.(map[string]any)["word"].(string)] = string(value.ToJSON(v))
	}
	for _, s := range last {
		out["wc"] = append(out["wc"], s)
	}
	sort.Strings(out["wc"])
	for _, name := range []string{"tumbling", "sliding", "session", "ijoin", "wjoin", "late"} {
		out[name] = c.SortedJSON(name)
	}
	return out
}

func TestPropertyStreamingEqualsBatch(t *testing.T) {
	seeds := []int64{1, 2, 3, 4, 5, 6}
	if testing.Short() {
		seeds = seeds[:2]
	}
	start := time.Now()
	for _, seed := range seeds {
		r := rand.New(rand.NewSource(seed))
		n := 1500 + r.Intn(2000)
		recs := genProp(r, n)
		raw, err := json.Marshal(recs)
		if err != nil {
			t.Fatal(err)
		}
		par, srcPar, tumPar, joinPar := 1+r.Intn(4), 1+r.Intn(4), 1+r.Intn(4), 1+r.Intn(4)
		batchSize := []int{1, 7, 64, 512}[r.Intn(4)]
		job := fmt.Sprintf(propJob, par, srcPar, raw, propBound, tumPar, propTumble, propSlideSz, propSlide, propGap,
			joinPar, propLower, propUpper, propTumble)
		want := propModel(recs)
		name := fmt.Sprintf("seed%d/n%d/p%d-src%d-win%d-join%d/batch%d", seed, n, par, srcPar, tumPar, joinPar, batchSize)
		t.Run(name, func(t *testing.T) {
			results := map[spec.RuntimeMode]map[string][]string{}
			for _, mode := range modes {
				c := run(t, job, mode, local.Options{BatchSize: batchSize})
				got := finals(c)
				results[mode] = got
				for _, sink := range []string{"wc", "tumbling", "sliding", "session", "ijoin", "wjoin", "late"} {
					if !reflect.DeepEqual(got[sink], want[sink]) {
						t.Errorf("%s: sink %s differs from the model: %s", mode, sink, diffSorted(got[sink], want[sink]))
					}
				}
			}
			if !reflect.DeepEqual(results[spec.Streaming], results[spec.Batch]) {
				t.Errorf("STREAMING and BATCH final results differ")
			}
			if len(want["ijoin"]) == 0 || len(want["wjoin"]) == 0 || len(want["session"]) < 10 {
				t.Errorf("degenerate input: %d interval pairs, %d window pairs, %d sessions", len(want["ijoin"]), len(want["wjoin"]), len(want["session"]))
			}
		})
	}
	t.Logf("%d seeds in %v", len(seeds), time.Since(start))
}

// diffSorted describes how two string lists differ as multisets (a few
// examples); they need not be sorted.
func diffSorted(got, want []string) string {
	g, w := map[string]int{}, map[string]int{}
	for _, s := range got {
		g[s]++
	}
	for _, s := range want {
		w[s]++
	}
	var extra, missing []string
	for s, n := range g {
		if n > w[s] {
			extra = append(extra, s)
		}
	}
	for s, n := range w {
		if n > g[s] {
			missing = append(missing, s)
		}
	}
	sort.Strings(extra)
	sort.Strings(missing)
	cut := func(l []string) []string {
		if len(l) > 5 {
			return append(l[:5:5], "...")
		}
		return l
	}
	return fmt.Sprintf("got %d want %d; unexpected %v; missing %v", len(got), len(want), cut(extra), cut(missing))
}
