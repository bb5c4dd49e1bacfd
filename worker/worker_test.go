package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/internal/freeport"
	"github.com/flinkjob/flinkjob/worker"
	"github.com/flinkjob/flinkjob/worker/runner"
)

func writeFile(t testing.TB, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func freeAddr(t testing.TB) string {
	t.Helper()
	// Below the ephemeral range: see package freeport.
	a, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestLoadJob(t *testing.T) {
	const steps = `[{"name":"a","source":{"elements":[1,2]}},{"name":"b","sink":{"discard":{}}}]`
	cases := map[string]string{
		"job.json":      `{"runtimeMode":"BATCH","parallelism":3,"steps":` + steps + `}`,
		"job.yaml":      "runtimeMode: BATCH\nparallelism: 3\nsteps: " + steps + "\n",
		"manifest.yaml": "apiVersion: flinkjob.io/v1alpha1\nkind: FlinkJob\nmetadata: {name: x}\nspec:\n  runtimeMode: BATCH\n  parallelism: 3\n  storage: {s3: {endpoint: minio:9000}}\n  steps: " + steps + "\n",
	}
	for name, body := range cases {
		job, err := worker.LoadJob(writeFile(t, name, body))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if job.RuntimeMode != spec.Batch || job.Parallelism != 3 || len(job.Steps) != 2 || job.Steps[1].Sink == nil {
			t.Errorf("%s: got %+v", name, job)
		}
	}
	if _, err := worker.LoadJob(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("a missing file loaded")
	}
	if _, err := worker.LoadJob(writeFile(t, "bad.yaml", "steps: [\n")); err == nil || !strings.Contains(err.Error(), "bad.yaml") {
		t.Errorf("bad YAML: %v, want an error naming the file", err)
	}
}

// runWorker runs the worker binary and returns its exit code, its
// termination message and its stderr.
func runWorker(t *testing.T, args ...string) (int, worker.Result, string) {
	t.Helper()
	term := filepath.Join(t.TempDir(), "termination-log")
	args = append([]string{"--http", "", "--termination-log", term}, args...)
	cmd := exec.Command(workerBin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.Stdout = io.Discard
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var res worker.Result
	if b, err := os.ReadFile(term); err == nil {
		if err := json.Unmarshal(b, &res); err != nil {
			t.Fatalf("termination message %s: %v", b, err)
		}
	} else if code != 2 {
		t.Fatalf("no termination message: %v", err)
	}
	return code, res, stderr.String()
}

func TestExitCodeAndTerminationMessage(t *testing.T) {
	// One stage: elements -> map -> sink, so no exchange or shuffle is needed.
	job := writeFile(t, "job.yaml", `
parallelism: 1
steps:
  - name: nums
    source: {elements: [{x: 3}, {x: 2}, {x: 1}, {x: 0}]}
  - name: divide
    map: "{'x': record.x, 'y': 6 / (record.x - 1)}"
  - name: out
    sink: {discard: {}}
`)
	okJob := writeFile(t, "ok.yaml", `
parallelism: 1
steps:
  - name: nums
    source: {elements: [{x: 3}, {x: 2}, {x: 1}, {x: 0}]}
  - name: keep
    filter: "record.x > 0"
  - name: out
    sink: {discard: {}}
`)
	for _, mode := range []spec.RuntimeMode{spec.Streaming, spec.Batch} {
		t.Run(string(mode), func(t *testing.T) {
			code, res, stderr := runWorker(t, "--job", job, "--mode", string(mode), "--stage", "0", "--index", "0", "--attempt", "2")
			if code == 0 {
				t.Fatalf("a CEL runtime error exited 0; stderr:\n%s", stderr)
			}
			if !strings.Contains(res.Error, "division by zero") || !strings.Contains(res.Error, `"divide"`) {
				t.Errorf("termination message error %q: want the CEL error and the step", res.Error)
			}
			if res.Mode != string(mode) || res.Attempt != 2 || res.Stage != 0 || res.Subtask != 0 {
				t.Errorf("termination message %+v", res)
			}
			if !strings.Contains(stderr, "subtask failed") {
				t.Errorf("stderr does not log the failure:\n%s", stderr)
			}

			code, res, stderr = runWorker(t, "--job", okJob, "--mode", string(mode))
			if code != 0 || res.Error != "" {
				t.Fatalf("exit %d, %+v\n%s", code, res, stderr)
			}
			// The chain ends in the sink: it emits nothing downstream.
			if res.RecordsIn != 4 || res.RecordsOut != 0 || res.Mode != string(mode) {
				t.Errorf("termination message %+v: want 4 records in, 0 out", res)
			}
		})
	}
	t.Run("misuse", func(t *testing.T) {
		if code, _, _ := runWorker(t, "--no-such-flag"); code != 2 {
			t.Errorf("unknown flag: exit %d, want 2", code)
		}
		code, res, _ := runWorker(t, "--job", okJob, "--stage", "5")
		if code != 1 || !strings.Contains(res.Error, "stage 5 does not exist") {
			t.Errorf("stage out of range: exit %d, %+v", code, res)
		}
		code, res, _ = runWorker(t, "--job", okJob, "--index", "1")
		if code != 1 || !strings.Contains(res.Error, "index 1 is out of range") {
			t.Errorf("index out of range: exit %d, %+v", code, res)
		}
		code, res, _ = runWorker(t, "--job", "/no/such/job.json")
		if code != 1 || !strings.Contains(res.Error, "/no/such/job.json") {
			t.Errorf("missing job: exit %d, %+v", code, res)
		}
		twoStages := writeFile(t, "two.yaml", "runtimeMode: BATCH\nsteps:\n  - {name: a, source: {elements: [1]}}\n  - {name: b, partitioning: REBALANCE, sink: {discard: {}}}\n")
		code, res, _ = runWorker(t, "--job", twoStages)
		if code != 1 || !strings.Contains(res.Error, "needs --shuffle") {
			t.Errorf("BATCH without a shuffle location: exit %d, %+v", code, res)
		}
	})
}

// TestEndpointsDuringRun: /healthz, /readyz and /metrics answer while a
// two-worker STREAMING job runs, with live counts in the metrics.
func TestEndpointsDuringRun(t *testing.T) {
	job, err := worker.LoadJob(writeFile(t, "job.yaml", `
runtimeMode: STREAMING
parallelism: 1
steps:
  - name: gen
    source:
      datagen: {value: "{'id': seq, 'ts': seq * 10}", count: 400, ratePerSecond: 200}
      timestamp: record.ts
      watermarks: {maxOutOfOrderness: 0s}
  - name: out
    partitioning: REBALANCE
    sink: {discard: {}}
`))
	if err != nil {
		t.Fatal(err)
	}
	addrs := []string{freeAddr(t), freeAddr(t)}
	r, err := runner.New(job, runner.Options{Worker: workerBin, Dir: t.TempDir(),
		ArgsFor: func(stage, index, attempt int) []string { return []string{"--http", addrs[stage]} }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	client := &http.Client{Timeout: time.Second}
	get := func(url string) (int, string) {
		resp, err := client.Get(url)
		if err != nil {
			return 0, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	names := []string{
		"flinkjob_worker_records_in_total", "flinkjob_worker_records_out_total",
		"flinkjob_worker_bytes_in_total", "flinkjob_worker_bytes_out_total",
		"flinkjob_worker_backpressured_seconds_total", "flinkjob_worker_watermark_milliseconds",
		"flinkjob_worker_late_records_dropped_total", "flinkjob_worker_malformed_records_total",
	}
	// seen[stage] records what was observed while the job was running.
	type seen struct{ healthy, ready, metrics, counting, exchanging bool }
	var mu sync.Mutex
	obs := make([]seen, 2)
	var runErr error
poll:
	for {
		select {
		case runErr = <-done:
			break poll
		case <-time.After(50 * time.Millisecond):
		}
		for stage, a := range addrs {
			base := "http://" + a
			var s seen
			code, body := get(base + "/healthz")
			s.healthy = code == 200 && body == "ok"
			code, _ = get(base + "/readyz")
			s.ready = code == 200
			code, body = get(base + "/metrics")
			if code == 200 {
				s.metrics = true
				for _, n := range names {
					if !strings.Contains(body, "\n"+n+" ") {
						s.metrics = false
					}
				}
				s.counting = metric(body, "flinkjob_worker_records_in_total") > 0
				if stage == 0 {
					s.exchanging = metric(body, "flinkjob_worker_bytes_out_total") > 0 && metric(body, "flinkjob_worker_records_out_total") > 0
				} else {
					// The source stage's own watermark gauge is not kept
					// (engine/task sets it from input channels only); the
					// consumer's follows the source's watermarks.
					s.exchanging = metric(body, "flinkjob_worker_bytes_in_total") > 0 && metric(body, "flinkjob_worker_watermark_milliseconds") > 0
				}
			}
			mu.Lock()
			o := &obs[stage]
			o.healthy, o.ready, o.metrics = o.healthy || s.healthy, o.ready || s.ready, o.metrics || s.metrics
			o.counting, o.exchanging = o.counting || s.counting, o.exchanging || s.exchanging
			mu.Unlock()
		}
	}
	if runErr != nil {
		t.Fatal(runErr)
	}
	for stage, o := range obs {
		if !o.healthy || !o.ready || !o.metrics || !o.counting || !o.exchanging {
			t.Errorf("stage %d worker during the run: %+v (want all true)", stage, o)
		}
	}
	// The endpoint goes away with the worker.
	if code, _ := get("http://" + addrs[0] + "/healthz"); code != 0 {
		t.Errorf("/healthz still answers %d after the worker exited", code)
	}
}

var metricLine = regexp.MustCompile(`(?m)^(\w+) (\S+)$`)

// metric returns the value of an unlabelled metric in Prometheus text.
func metric(body, name string) float64 {
	for _, m := range metricLine.FindAllStringSubmatch(body, -1) {
		if m[1] == name {
			v, _ := strconv.ParseFloat(m[2], 64)
			return v
		}
	}
	return -1
}

// TestRunInProcess runs both subtasks of a STREAMING job with worker.Run
// in this process, wired by Config.Peers over loopback gRPC, and checks
// their results.
func TestRunInProcess(t *testing.T) {
	jobFile := writeFile(t, "job.yaml", `
runtimeMode: STREAMING
parallelism: 2
steps:
  - name: gen
    source:
      datagen: {value: "{'id': seq, 'word': ['a', 'b', 'c'][seq % 3]}", count: 3000}
  - name: counts
    keyBy: record.word
    reduce: "{'word': acc.word, 'id': acc.id + record.id}"
  - name: out
    sink: {discard: {}}
`)
	peers := map[string]string{"1/0": freeAddr(t), "1/1": freeAddr(t)}
	type out struct {
		res worker.Result
		err error
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	results := make(chan out, 4)
	for stage := 0; stage < 2; stage++ {
		for index := 0; index < 2; index++ {
			cfg := worker.Config{JobFile: jobFile, Stage: stage, Index: index, Peers: peers, BatchSize: 64, InboxCapacity: 2,
				Listen: peers[fmt.Sprintf("%d/%d", stage, index)], Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			go func() {
				res, err := worker.Run(ctx, cfg)
				results <- out{res, err}
			}()
		}
	}
	var in, out0, in1, bytesIn, bytesOut int64
	for i := 0; i < 4; i++ {
		o := <-results
		if o.err != nil {
			t.Fatalf("stage %d subtask %d: %v", o.res.Stage, o.res.Subtask, o.err)
		}
		if o.res.Mode != string(spec.Streaming) {
			t.Errorf("mode %q", o.res.Mode)
		}
		if o.res.Stage == 0 {
			in += o.res.RecordsIn
			out0 += o.res.RecordsOut
			bytesOut += o.res.BytesOut
		} else {
			in1 += o.res.RecordsIn
			bytesIn += o.res.BytesIn
		}
	}
	if in != 3000 || out0 != 3000 || in1 != 3000 {
		t.Errorf("source read %d, sent %d; reducers read %d; want 3000 each", in, out0, in1)
	}
	if bytesIn != bytesOut || bytesIn == 0 {
		t.Errorf("bytes out %d, bytes in %d", bytesOut, bytesIn)
	}
}
