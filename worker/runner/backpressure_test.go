package runner_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/internal/freeport"
	"github.com/flinkjob/flinkjob/worker/runner"
)

// slowSummary is what the slow sink of worker/testdata/slowworker writes.
type slowSummary struct {
	Subtask    int   `json:"subtask"`
	Count      int64 `json:"count"`
	Sum        int64 `json:"sum"`
	Duplicates int64 `json:"duplicates"`
	Min        int64 `json:"min"`
	Max        int64 `json:"max"`
	ElapsedMs  int64 `json:"elapsedMs"`
}

func readSummary(t testing.TB, path string) slowSummary {
	t.Helper()
	var s slowSummary
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("slow sink summary: %v", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("slow sink summary %s: %v", b, err)
	}
	return s
}

// freeAddr reserves a loopback address for a worker's HTTP endpoint.
func freeAddr(t testing.TB) string {
	t.Helper()
	// Below the ephemeral range: see package freeport.
	a, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// procMemory reads a process's current and peak resident set (bytes) from
// /proc; ok is false once the process is gone.
func procMemory(pid int) (rss, hwm int64, ok bool) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(fields[0], 10, 64)
		switch k {
		case "VmRSS":
			rss = n << 10
		case "VmHWM":
			hwm = n << 10
		case "State":
			if fields[0] == "Z" {
				return 0, 0, false
			}
		}
	}
	return rss, hwm, hwm > 0
}

// scrape reads one metric's value from a Prometheus text endpoint.
func scrape(client *http.Client, url, name string) (float64, bool) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}

// TestBackpressureBoundsProducerMemory runs a fast datagen source and a
// slow Go sink in separate worker processes (STREAMING, gRPC between them).
// The sink is far slower than the source, so without backpressure the
// producer would buffer most of the payload; with it, the producer's
// resident memory stays well below the payload volume, the producer
// reports time blocked on the exchange, and every record arrives exactly
// once.
func TestBackpressureBoundsProducerMemory(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Fatalf("this test reads /proc; run it on Linux")
	}
	const (
		records   = 100_000
		payload   = 1000 // characters per record
		sinkDelay = 20 * time.Microsecond
	)
	volume := int64(records * payload)
	pad := strings.Repeat("p", payload)
	job := loadJob(t, fmt.Sprintf(`
runtimeMode: STREAMING
parallelism: 1
steps:
  - name: gen
    source:
      datagen:
        value: "{'id': seq, 'payload': '%s'}"
        count: %d
  - name: out
    partitioning: REBALANCE
    sink: {call: slow}
`, pad, records))
	dir := t.TempDir()
	summary := filepath.Join(dir, "slow")
	httpAddr := freeAddr(t)
	var peakRSS, lastHWM atomic.Int64
	var monitors sync.WaitGroup
	opts := runner.Options{Worker: slowBin, Dir: dir,
		Env: []string{"SLOW_SINK_OUT=" + summary, "SLOW_SINK_DELAY=" + sinkDelay.String()},
		ArgsFor: func(stage, index, attempt int) []string {
			if stage == 0 {
				return []string{"--http", httpAddr}
			}
			return nil
		},
		OnStart: func(stage, index, attempt int, p *os.Process) {
			if stage != 0 {
				return
			}
			monitors.Add(1)
			go func() {
				defer monitors.Done()
				for {
					rss, hwm, ok := procMemory(p.Pid)
					if !ok {
						return
					}
					if rss > peakRSS.Load() {
						peakRSS.Store(rss)
					}
					lastHWM.Store(hwm)
					time.Sleep(5 * time.Millisecond)
				}
			}()
		}}
	r, err := runner.New(job, opts)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(r.Plan().Stages); n != 2 {
		t.Fatalf("plan has %d stages, want the sink in a stage of its own", n)
	}
	// Scrape the producer's metrics while it runs.
	var backpressured, recordsOut atomic.Value
	backpressured.Store(0.0)
	recordsOut.Store(0.0)
	stop := make(chan struct{})
	var scraper sync.WaitGroup
	scraper.Add(1)
	go func() {
		defer scraper.Done()
		client := &http.Client{Timeout: time.Second}
		url := "http://" + httpAddr + "/metrics"
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if v, ok := scrape(client, url, "flinkjob_worker_backpressured_seconds_total"); ok {
				backpressured.Store(v)
			}
			if v, ok := scrape(client, url, "flinkjob_worker_records_out_total"); ok {
				recordsOut.Store(v)
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	err = r.Run(ctx)
	elapsed := time.Since(start)
	close(stop)
	scraper.Wait()
	monitors.Wait()
	if err != nil {
		t.Fatal(err)
	}

	s := readSummary(t, summary+"-0.json")
	if s.Count != records || s.Duplicates != 0 || s.Sum != records*(records-1)/2 || s.Min != 0 || s.Max != records-1 {
		t.Errorf("sink got %+v; want each of the %d ids exactly once (sum %d)", s, records, int64(records*(records-1)/2))
	}
	minSink := time.Duration(records) * sinkDelay
	peak := max(peakRSS.Load(), lastHWM.Load())
	bp := backpressured.Load().(float64)
	t.Logf("%d records of %d B (%d MiB) in %s (sink alone ≥ %s); producer peak RSS %.1f MiB; backpressured %.2fs; records out at last scrape %.0f",
		records, payload, volume>>20, elapsed.Round(time.Millisecond), minSink, float64(peak)/(1<<20), bp, recordsOut.Load().(float64))
	if elapsed < minSink {
		t.Errorf("the job took %s, less than the sink's own %s", elapsed, minSink)
	}
	if peak == 0 {
		t.Fatal("no memory reading of the producer")
	}
	if limit := min(volume*6/10, 80<<20); peak > limit {
		t.Errorf("producer peak RSS %d MiB exceeds %d MiB (payload volume %d MiB): it buffers instead of being held back", peak>>20, limit>>20, volume>>20)
	}
	if bp <= 0 {
		t.Errorf("the producer reported no backpressure (flinkjob_worker_backpressured_seconds_total = %v)", bp)
	}
	// The sink (1 of 2 workers) spent most of the run consuming: the
	// producer did not finish early into a buffer.
	if float64(s.ElapsedMs) < 0.5*float64(minSink.Milliseconds()) {
		t.Errorf("the sink consumed for only %d ms", s.ElapsedMs)
	}
}
