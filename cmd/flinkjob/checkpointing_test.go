package main

import (
	"os"
	"path/filepath"
	"testing"
)

// A manifest's spec.checkpointing sets the interval and retention of a
// local run with --checkpoint-dir (flags given explicitly still win).
func TestRunTakesCheckpointingFromTheManifest(t *testing.T) {
	dir := t.TempDir()
	manifest := filepath.Join(dir, "job.yaml")
	// About 1.5 s of input: several 200ms checkpoints, 2 retained.
	if err := os.WriteFile(manifest, []byte(`
apiVersion: flinkjob.io/v1alpha1
kind: FlinkJob
metadata: {name: ckpt}
spec:
  runtimeMode: STREAMING
  checkpointing: {interval: 200ms, retain: 2}
  storage: {s3: {endpoint: http://minio:9000, bucket: flinkjob}}
  steps:
    - name: gen
      source: {datagen: {value: "{'k': seq % 3, 'n': 1}", count: 300, ratePerSecond: 200}}
    - name: counts
      keyBy: record.k
      reduce: "{'k': acc.k, 'n': acc.n + 1}"
    - name: out
      sink: {print: {}}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	ckpts := filepath.Join(dir, "checkpoints")
	code, _, stderr := runCLI(t, "run", "-f", manifest, "--quiet", "--checkpoint-dir", ckpts)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	done, _ := filepath.Glob(filepath.Join(ckpts, "chk-*", "_COMPLETED"))
	if len(done) == 0 || len(done) > 2 {
		t.Errorf("want 1..2 retained complete checkpoints (interval 200ms, retain 2 from spec.checkpointing), found %v", done)
	}

	off := filepath.Join(dir, "off")
	code, _, stderr = runCLI(t, "run", "-f", manifest, "--quiet", "--checkpoint-dir", off, "--checkpoint-interval", "0")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if done, _ := filepath.Glob(filepath.Join(off, "chk-*", "_COMPLETED")); len(done) != 0 {
		t.Errorf("--checkpoint-interval 0 given: want no checkpoints, found %v", done)
	}
}
