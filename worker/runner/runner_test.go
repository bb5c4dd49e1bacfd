package runner_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/worker/runner"
)

// TestWorkersShareStdoutLineByLine: print sinks of several workers write
// into one Options.Stdout (a plain buffer) without racing or mixing lines.
func TestWorkersShareStdoutLineByLine(t *testing.T) {
	const n = 8000
	job := loadJob(t, `
runtimeMode: STREAMING
parallelism: 4
steps:
  - name: gen
    source:
      datagen: {value: "{'id': seq, 'text': 'some words to make the line longer than a few bytes'}", count: 8000}
  - name: out
    sink: {print: {prefix: "rec: "}}
`)
	var stdout, stderr bytes.Buffer
	r, err := runner.New(job, runner.Options{Worker: workerBin, Dir: t.TempDir(), Stdout: &stdout, Stderr: &stderr})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	seen := make([]bool, n)
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	for _, l := range lines {
		js, ok := strings.CutPrefix(l, "rec: ")
		var rec struct{ ID int }
		if !ok || json.Unmarshal([]byte(js), &rec) != nil || rec.ID < 0 || rec.ID >= n || seen[rec.ID] {
			t.Fatalf("mangled or repeated line %q", l)
		}
		seen[rec.ID] = true
	}
	if len(lines) != n {
		t.Fatalf("%d lines, want %d", len(lines), n)
	}
	if c := strings.Count(stderr.String(), `"msg":"subtask finished"`); c != 4 {
		t.Errorf("stderr has %d 'subtask finished' log lines, want 4:\n%s", c, stderr.String())
	}
}

// TestRunRemovesItsOwnDir: without Options.Dir the runner works in a temp
// dir of its own and removes it when Run returns.
func TestRunRemovesItsOwnDir(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	job := loadJob(t, "runtimeMode: STREAMING\nsteps:\n  - {name: a, source: {elements: [1, 2]}}\n  - {name: b, partitioning: REBALANCE, sink: {discard: {}}}\n")
	r, err := runner.New(job, runner.Options{Worker: workerBin})
	if err != nil {
		t.Fatal(err)
	}
	if dirs, _ := filepath.Glob(filepath.Join(tmp, "flinkjob-run-*")); len(dirs) != 1 {
		t.Fatalf("want the runner's dir under TMPDIR, found %v", dirs)
	}
	for i := 0; i < 2; i++ { // a second Run works too
		if err := r.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if dirs, _ := filepath.Glob(filepath.Join(tmp, "flinkjob-run-*")); len(dirs) != 0 {
			entries, _ := os.ReadDir(dirs[0])
			t.Fatalf("run %d left %v behind (%d entries)", i, dirs, len(entries))
		}
	}
}
