package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/checkpoint"
	"github.com/flinkjob/flinkjob/internal/testminio"
)

// countsJob is an unbounded rolling count per key: a run restored from a
// checkpoint continues the counts, a fresh one starts them at 1.
const countsJob = `apiVersion: flinkjob.io/v1alpha1
kind: FlinkJob
metadata: {name: s3-checkpoints}
spec:
  runtimeMode: STREAMING
  parallelism: 1
  steps:
    - name: nums
      source:
        datagen: {value: "{'k': seq % 3, 'n': 1}", ratePerSecond: 100}
    - name: counts
      keyBy: record.k
      reduce: "{'k': acc.k, 'n': acc.n + record.n}"
    - name: out
      sink:
        print: {prefix: "count: "}
`

// counts returns the n of every printed count.
func counts(t *testing.T, out string) []int {
	t.Helper()
	var ns []int
	for _, l := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(l, "count: "); ok {
			var r struct{ N int }
			if err := json.Unmarshal([]byte(rest), &r); err != nil {
				t.Fatalf("%q: %v", l, err)
			}
			ns = append(ns, r.N)
		}
	}
	return ns
}

// In one process, --checkpoint-dir s3://... checkpoints into the bucket
// (before, into a local directory named "s3:") and --restore-from latest
// or an s3:// checkpoint directory restores from it; --savepoint-dir
// s3://... is refused naming the flag and --processes.
func TestRunCheckpointsToS3(t *testing.T) {
	s3 := testminio.Start(t)
	bucket := testminio.Bucket(t, s3)
	t.Setenv("FLINKJOB_S3_ENDPOINT", s3.Endpoint)
	t.Setenv("FLINKJOB_S3_ACCESS_KEY", s3.AccessKey)
	t.Setenv("FLINKJOB_S3_SECRET_KEY", s3.SecretKey)
	t.Setenv("FLINKJOB_S3_SECURE", "false")
	t.Setenv("FLINKJOB_S3_REGION", s3.Region)
	job := filepath.Join(t.TempDir(), "job.yaml")
	if err := os.WriteFile(job, []byte(countsJob), 0o644); err != nil {
		t.Fatal(err)
	}
	chk := "s3://" + bucket + "/chk/"
	if _, err := os.Stat("s3:"); err == nil {
		t.Fatal("a directory named s3: exists before the test")
	}
	t.Cleanup(func() { os.RemoveAll("s3:") })
	code, _, stderr := runCLI(t, "run", "-f", job, "--quiet", "--duration", "2s",
		"--checkpoint-dir", chk, "--checkpoint-interval", "200ms")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if _, err := os.Stat("s3:"); err == nil {
		t.Error("checkpoints went to a local directory named s3:")
	}
	store, err := checkpoint.NewS3Store(chk, s3)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done, err := checkpoint.Completed(ctx, store)
	if err != nil || len(done) == 0 {
		t.Fatalf("complete checkpoints in %s: %v, %v; want some", chk, done, err)
	}

	// latest, resolved in the bucket: the counts go on from the checkpoint.
	code, out, stderr := runCLI(t, "run", "-f", job, "--quiet", "--duration", "1s",
		"--checkpoint-dir", chk, "--checkpoint-interval", "200ms", "--restore-from", "latest")
	if code != 0 {
		t.Fatalf("restore latest: exit %d: %s", code, stderr)
	}
	ns := counts(t, out)
	if len(ns) == 0 || ns[0] == 1 {
		t.Errorf("restored from latest, the counts start over: %v", ns)
	}

	// An explicit s3:// checkpoint directory, without --checkpoint-dir.
	done, err = checkpoint.Completed(ctx, store)
	if err != nil || len(done) == 0 {
		t.Fatalf("complete checkpoints after the restored run: %v, %v", done, err)
	}
	dir := chk + checkpoint.DirName(done[len(done)-1])
	code, out, stderr = runCLI(t, "run", "-f", job, "--quiet", "--duration", "1s", "--restore-from", dir)
	if code != 0 {
		t.Fatalf("restore %s: exit %d: %s", dir, code, stderr)
	}
	if ns := counts(t, out); len(ns) == 0 || ns[0] == 1 {
		t.Errorf("restored from %s, the counts start over: %v", dir, ns)
	}

	if _, err := os.Stat("s3:"); err == nil {
		t.Error("a local directory named s3: was written")
	}
}
