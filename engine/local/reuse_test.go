package local_test

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/flinkjob/flinkjob/engine/bench"
	"github.com/flinkjob/flinkjob/engine/local"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
)

// TestNexmarkObjectReuseOutputs runs the Nexmark queries into a jsonl
// files sink, whose writer releases values, so the source's events are
// recycled and map steps refill one output map (operator
// Chain.RecycleSourceValues and reuseOutputs), and checks the lines against
// the same queries run into the collecting sink, which keeps its records
// and so turns output reuse off (TestNexmark* check those against results
// computed from the generator).
func TestNexmarkObjectReuseOutputs(t *testing.T) {
	for _, q := range bench.NexmarkQueries {
		for _, mode := range []spec.RuntimeMode{spec.Batch, spec.Streaming} {
			want := nexmarkQuery(t, q, mode).SortedJSON("out")
			job, err := bench.NexmarkJob("../../config/samples/nexmark", q, bench.NexmarkOptions{
				Events: nexmarkQueryEvents, Seed: nexmarkQuerySeed, FirstEventRate: nexmarkQueryRate, Parallelism: 2,
			})
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "out")
			for i := range job.Steps {
				if job.Steps[i].Name == "out" {
					job.Steps[i].Sink = &spec.Sink{Files: &spec.FileSink{Path: dir, Format: spec.FormatJSONL}}
				}
			}
			p, err := plan.New(job, plan.Options{Mode: mode})
			if err != nil {
				t.Fatal(err)
			}
			if err := local.Run(context.Background(), p, local.Options{BatchSize: 64, WorkDir: t.TempDir()}); err != nil {
				t.Fatalf("%s %s: %v", q, mode, err)
			}
			got := readJSONLines(t, dir)
			if orderDependent[q] && mode == spec.Streaming {
				// Their running results depend on the order in which the
				// parallel inputs arrive, which differs from run to run
				// (two collecting runs differ too): only the count is fixed.
				if len(got) != len(want) {
					t.Errorf("%s %s: %d lines in the files sink, %d collected", q, mode, len(got), len(want))
				}
				continue
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s %s: %d lines in the files sink, %d collected; %s", q, mode, len(got), len(want), diffSorted(got, want))
			}
		}
	}
}

// orderDependent are the queries whose STREAMING output depends on
// arrival order: q4's and q6's running averages.
var orderDependent = map[string]bool{"q4": true, "q6": true}

func readJSONLines(t *testing.T, dir string) []string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), "_") || strings.HasPrefix(d.Name(), ".") {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(lines)
	return lines
}
