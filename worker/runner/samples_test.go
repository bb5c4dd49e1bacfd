package runner_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/local"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/internal/testminio"
	"github.com/flinkjob/flinkjob/worker"
	"github.com/flinkjob/flinkjob/worker/runner"
)

// boundedSamples are the samples that end by themselves, with the file
// their sink output must equal.
var boundedSamples = []struct {
	name, expected string
	// rolling: a STREAMING run writes every update of the rolling reduce;
	// the last one per word is the final count.
	rolling bool
}{
	{"wordcount-batch", "wordcount.jsonl", true},
	{"wordcount-streaming", "wordcount.jsonl", true},
	{"windowed-temperatures", "windowed-temperatures.jsonl", false},
	{"orders-join", "orders-join.jsonl", false},
}

// TestBoundedSamplesMultiProcess runs every bounded sample as worker
// processes, STREAMING over gRPC and BATCH through MinIO, and checks each
// gives what the in-process executor gives and the expected file says.
func TestBoundedSamplesMultiProcess(t *testing.T) {
	s3 := testminio.Start(t)
	bucket := testminio.Bucket(t, s3)
	for _, c := range boundedSamples {
		for _, mode := range []spec.RuntimeMode{spec.Streaming, spec.Batch} {
			t.Run(c.name+"/"+string(mode), func(t *testing.T) {
				t.Parallel()
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()

				// In-process reference.
				refDir := t.TempDir()
				refJob := sample(t, c.name, refDir)
				p, err := plan.New(refJob, plan.Options{Mode: mode})
				if err != nil {
					t.Fatal(err)
				}
				var refStdout bytes.Buffer
				if err := local.Run(ctx, p, local.Options{Env: connector.Env{Stdout: &refStdout}, WorkDir: t.TempDir()}); err != nil {
					t.Fatalf("in-process: %v", err)
				}

				// Worker processes.
				outDir := t.TempDir()
				job := sample(t, c.name, outDir)
				var stdout bytes.Buffer // written by several workers: the runner serializes
				opts := runner.Options{Worker: workerBin, Mode: mode, Dir: t.TempDir(), Stdout: &stdout}
				if mode == spec.Batch {
					opts.ShuffleURL = fmt.Sprintf("s3://%s/shuffle/%s/", bucket, c.name)
					opts.Env = testminio.Env(s3)
				}
				r, err := runner.New(job, opts)
				if err != nil {
					t.Fatal(err)
				}
				if r.Plan().Mode != mode || len(r.Plan().Stages) < 2 {
					t.Fatalf("plan: mode %s, %d stages; want %s with shuffles", r.Plan().Mode, len(r.Plan().Stages), mode)
				}
				start := time.Now()
				if err := r.Run(ctx); err != nil {
					t.Fatalf("multi-process: %v", err)
				}
				t.Logf("%d stages, %d worker processes, %s", len(r.Plan().Stages), subtasks(r.Plan()), time.Since(start).Round(time.Millisecond))

				got := readOutput(t, filepath.Join(outDir, c.name), connector.S3Config{})
				ref := readOutput(t, filepath.Join(refDir, c.name), connector.S3Config{})
				equalLines(t, "multi-process vs in-process", got, ref)
				if c.rolling && mode == spec.Streaming {
					equalLines(t, "last update per word vs expected", lastPerKey(t, got, "word", "n"), expected(t, c.expected))
				} else {
					equalLines(t, "vs expected", got, expected(t, c.expected))
				}
				// Print sinks (windowed-temperatures' late readings) too.
				equalLines(t, "print sink output", sortedLines(stdout.String()), sortedLines(refStdout.String()))
				if mode == spec.Batch {
					checkTermination(t, opts.Dir, r.Plan(), mode)
					checkManifests(t, opts.ShuffleURL, s3, r.Plan())
				}
			})
		}
	}
}

func subtasks(p *plan.Plan) int {
	n := 0
	for _, s := range p.Stages {
		n += s.Parallelism
	}
	return n
}

func sortedLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

// lastPerKey keeps the update with the largest count per key: the final
// result of a STREAMING rolling count.
func lastPerKey(t testing.TB, lines []string, key, count string) []string {
	t.Helper()
	best := map[string]string{}
	bestN := map[string]float64{}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		k := fmt.Sprint(m[key])
		n, _ := m[count].(float64)
		if _, ok := best[k]; !ok || n > bestN[k] {
			best[k], bestN[k] = l, n
		}
	}
	var out []string
	for _, l := range best {
		out = append(out, l)
	}
	sort.Strings(out)
	return out
}

// checkTermination reads every subtask's termination message: one attempt
// each, no error, the resolved mode.
func checkTermination(t testing.TB, dir string, p *plan.Plan, mode spec.RuntimeMode) {
	t.Helper()
	for _, s := range p.Stages {
		for i := 0; i < s.Parallelism; i++ {
			var res struct {
				Stage, Subtask, Attempt int
				Mode, Error             string
				RecordsIn, RecordsOut   int64
			}
			b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("term-%d-%d-0.json", s.ID, i)))
			if err != nil {
				t.Errorf("stage %d subtask %d: %v", s.ID, i, err)
				continue
			}
			if err := json.Unmarshal(b, &res); err != nil {
				t.Errorf("stage %d subtask %d: %v in %s", s.ID, i, err, b)
				continue
			}
			if res.Stage != s.ID || res.Subtask != i || res.Mode != string(mode) || res.Error != "" {
				t.Errorf("stage %d subtask %d: termination message %s", s.ID, i, b)
			}
		}
	}
}

// TestFilesSinkOnS3OneWorkerAtATime writes a sample's sink output to
// s3:// through workers, running the BATCH job with a single worker
// process alive at a time (FLIP-134's acceptance test).
func TestFilesSinkOnS3OneWorkerAtATime(t *testing.T) {
	s3 := testminio.Start(t)
	bucket := testminio.Bucket(t, s3)
	out := fmt.Sprintf("s3://%s/out", bucket)
	job := sample(t, "wordcount-batch", out)
	var mu sync.Mutex
	var pids []int
	overlap := 0
	opts := runner.Options{Worker: workerBin, Mode: spec.Batch, Dir: t.TempDir(), MaxConcurrent: 1,
		ShuffleURL: fmt.Sprintf("s3://%s/shuffle/", bucket), Env: testminio.Env(s3),
		OnStart: func(stage, index, attempt int, p *os.Process) {
			mu.Lock()
			defer mu.Unlock()
			if runtime.GOOS == "linux" {
				for _, pid := range pids {
					if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
						overlap++
					}
				}
			}
			pids = append(pids, p.Pid)
		}}
	r, err := runner.New(job, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	equalLines(t, "word counts on S3", readOutput(t, out+"/wordcount-batch/", s3), expected(t, "wordcount.jsonl"))
	if want := subtasks(r.Plan()); len(pids) != want {
		t.Errorf("%d workers started, want %d", len(pids), want)
	}
	if overlap > 0 {
		t.Errorf("%d workers started while another was alive; want one at a time", overlap)
	}
	checkTermination(t, opts.Dir, r.Plan(), spec.Batch)
}

// checkManifests proves the BATCH shuffle went through the store: every
// subtask of every stage committed its manifest there.
func checkManifests(t testing.TB, shuffleURL string, s3 connector.S3Config, p *plan.Plan) {
	t.Helper()
	store, err := worker.NewLocationStore(shuffleURL, s3)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Stages {
		for i := 0; i < s.Parallelism; i++ {
			m, err := store.Manifest(context.Background(), s.ID, i)
			if err != nil || m.Stage != s.ID || m.Subtask != i {
				t.Errorf("manifest of stage %d subtask %d in %s: %+v %v", s.ID, i, shuffleURL, m, err)
			}
		}
	}
}
