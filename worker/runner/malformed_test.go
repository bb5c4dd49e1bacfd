package runner_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/local"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/internal/testminio"
	"github.com/flinkjob/flinkjob/worker/runner"
)

// TestMalformedOutputMultiProcess: a files source's malformed records
// reach the side output's sink across worker processes (STREAMING over
// gRPC, BATCH through MinIO) exactly as in process.
func TestMalformedOutputMultiProcess(t *testing.T) {
	in := t.TempDir()
	for name, body := range map[string]string{
		"a.jsonl": "{\"id\": 1}\nnot json\n{\"id\": 2}\n",
		"b.jsonl": "{\"id\": 3}\n{\"id\": 4\n{\"id\": 5}\n",
	} {
		if err := os.WriteFile(filepath.Join(in, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	job := func(out string) *spec.Job {
		return loadJob(t, fmt.Sprintf(`
parallelism: 2
steps:
  - name: orders
    source:
      files: {path: %q, format: jsonl}
      malformedOutput: bad-orders
  - name: good
    sink: {files: {path: %q, format: jsonl}}
  - name: dead-letters
    inputs: [bad-orders]
    sink: {files: {path: %q, format: jsonl}}
`, in, filepath.Join(out, "good")+"/", filepath.Join(out, "bad")+"/"))
	}
	s3 := testminio.Start(t)
	bucket := testminio.Bucket(t, s3)
	for _, mode := range []spec.RuntimeMode{spec.Streaming, spec.Batch} {
		t.Run(string(mode), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			refDir := t.TempDir()
			p, err := plan.New(job(refDir), plan.Options{Mode: mode})
			if err != nil {
				t.Fatal(err)
			}
			if err := local.Run(ctx, p, local.Options{WorkDir: t.TempDir()}); err != nil {
				t.Fatalf("in-process: %v", err)
			}
			outDir := t.TempDir()
			opts := runner.Options{Worker: workerBin, Mode: mode, Dir: t.TempDir()}
			if mode == spec.Batch {
				opts.ShuffleURL = fmt.Sprintf("s3://%s/shuffle/malformed/", bucket)
				opts.Env = testminio.Env(s3)
			}
			r, err := runner.New(job(outDir), opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Run(ctx); err != nil {
				t.Fatalf("multi-process: %v", err)
			}
			var bad string
			for _, sink := range []string{"good", "bad"} {
				// readOutput's lines are sorted.
				got := readOutput(t, filepath.Join(outDir, sink), connector.S3Config{})
				ref := readOutput(t, filepath.Join(refDir, sink), connector.S3Config{})
				equalLines(t, sink+": multi-process vs in-process", got, ref)
				if sink == "good" && len(got) != 4 || sink == "bad" && len(got) != 2 {
					t.Errorf("%s: %d records: %v", sink, len(got), got)
				}
				if sink == "bad" {
					bad = strings.Join(got, "\n")
				}
			}
			for _, want := range []string{`"location":"` + filepath.Join(in, "a.jsonl") + `:2"`, `"raw":"not json"`,
				`"location":"` + filepath.Join(in, "b.jsonl") + `:2"`, `"raw":"{\"id\": 4"`} {
				if !strings.Contains(bad, want) {
					t.Errorf("dead letters lack %s:\n%s", want, bad)
				}
			}
		})
	}
}
