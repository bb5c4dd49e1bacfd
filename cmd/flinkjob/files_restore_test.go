package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/flinkjob/flinkjob/engine/value"
)

// run --restore-from continues the exactly-once file sink's output instead
// of clearing it: a job stopped by --duration after some checkpoints and
// restored from the latest one ends with every record written exactly once.
func TestRunRestoreKeepsFileSinkOutput(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	job := filepath.Join(dir, "job.yaml")
	const n = 4000
	manifest := fmt.Sprintf(`apiVersion: flinkjob.io/v1alpha1
kind: FlinkJob
metadata: {name: files-restore}
spec:
  runtimeMode: STREAMING
  parallelism: 2
  steps:
    - name: nums
      source:
        datagen: {value: "{'n': seq}", count: %d, ratePerSecond: 4000}
    - name: out
      sink:
        files: {path: %q, format: jsonl, rollingPolicy: {maxPartSize: 4096}}
`, n, out)
	if err := os.WriteFile(job, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	chk := filepath.Join(dir, "chk")
	code, _, stderr := runCLI(t, "run", "-f", job, "--quiet", "--duration", "600ms", "--checkpoint-dir", chk, "--checkpoint-interval", "50ms")
	if code != 0 {
		t.Logf("first run: exit %d: %s", code, stderr)
	}
	parts, _ := filepath.Glob(filepath.Join(out, "part-*"))
	t.Logf("after the first run: %d parts published", len(parts))
	code, _, stderr = runCLI(t, "run", "-f", job, "--quiet", "--checkpoint-dir", chk, "--checkpoint-interval", "50ms", "--restore-from", "latest")
	if code != 0 {
		t.Fatalf("restored run: exit %d: %s", code, stderr)
	}
	seen := map[int64]int{}
	for _, l := range readParts(t, out) {
		v, err := value.FromJSON([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		seen[v.(map[string]any)["n"].(int64)]++
	}
	for i := int64(0); i < n; i++ {
		if seen[i] != 1 {
			t.Fatalf("record %d written %d times (%d distinct of %d)", i, seen[i], len(seen), n)
		}
	}
}
