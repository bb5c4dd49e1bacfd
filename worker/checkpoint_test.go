package worker_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/worker"
	"github.com/flinkjob/flinkjob/worker/control"
)

// Bad checkpoint settings fail the worker before it runs, naming the
// setting; so does a restore from a directory that is not a complete
// checkpoint.
func TestCheckpointSettingsErrors(t *testing.T) {
	job := writeFile(t, "job.yaml", `
runtimeMode: STREAMING
steps:
  - name: gen
    source: {datagen: {value: "{'k': seq}", count: 10}}
  - name: out
    sink: {discard: {}}
`)
	dir := t.TempDir()
	cases := []struct {
		cp   worker.CheckpointConfig
		want string
	}{
		{worker.CheckpointConfig{Interval: time.Second}, "FLINKJOB_CHECKPOINT_INTERVAL needs FLINKJOB_CHECKPOINT_URL"},
		{worker.CheckpointConfig{FinalSavepoint: true}, "needs FLINKJOB_CHECKPOINT_URL"},
		{worker.CheckpointConfig{URL: dir + "/chk", FinalSavepoint: true}, "needs FLINKJOB_SAVEPOINT_URL"},
		{worker.CheckpointConfig{URL: dir + "/chk", Interval: -time.Second}, "must not be negative"},
		{worker.CheckpointConfig{RestoreFrom: dir + "/nowhere/sp-1-x/"}, dir + "/nowhere/sp-1-x/"},
		{worker.CheckpointConfig{URL: dir + "/chk", RestoreFrom: "7"}, "checkpoint 7 is not complete"},
		{worker.CheckpointConfig{RestoreFrom: "latest"}, "needs a checkpoint store"},
	}
	for _, c := range cases {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := worker.Run(ctx, worker.Config{JobFile: job, Mode: spec.Streaming, Listen: "127.0.0.1:0", Checkpoints: c.cp})
		cancel()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want an error with %q", c.cp, err, c.want)
		}
	}
}

// A job of one subtask (one stage, parallelism 1) with checkpoints to a
// directory: the leader is the only subtask, completes checkpoints alone
// and records the latest.
func TestCheckpointSingleSubtaskLeader(t *testing.T) {
	job := writeFile(t, "job.yaml", `
runtimeMode: STREAMING
steps:
  - name: gen
    source: {datagen: {value: "{'k': seq % 3, 'n': 1}", count: 3000, ratePerSecond: 3000}}
  - name: double
    map: "{'k': record.k, 'n': record.n * 2}"
  - name: out
    sink: {discard: {}}
`)
	dir := t.TempDir()
	cp := worker.CheckpointConfig{URL: dir + "/checkpoints/", ControlURL: dir + "/control/", Interval: 50 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := worker.Run(ctx, worker.Config{JobFile: job, Mode: spec.Streaming, Listen: "127.0.0.1:0", Checkpoints: cp}); err != nil {
		t.Fatal(err)
	}
	b, err := readFileString(dir + "/control/" + control.LatestObject)
	if err != nil || !strings.Contains(b, `"path":"`+dir+`/checkpoints/chk-`) {
		t.Fatalf("checkpoint-latest.json: %s %v", b, err)
	}
}

func readFileString(p string) (string, error) {
	b, err := os.ReadFile(p)
	return string(b), err
}

// The checkpoint flags of the worker binary (the FLINKJOB_* variables'
// counterparts): a one-subtask job checkpoints into a directory and ends
// with its final savepoint; a bad duration is a usage error (exit 2).
func TestCheckpointFlags(t *testing.T) {
	job := writeFile(t, "job.yaml", `
runtimeMode: STREAMING
steps:
  - name: gen
    source: {datagen: {value: "{'k': seq}", count: 2000, ratePerSecond: 4000}}
  - name: out
    sink: {discard: {}}
`)
	dir := t.TempDir()
	code, res, stderr := runWorker(t, "--job", job, "--listen", "127.0.0.1:0",
		"--checkpoint-url", dir+"/chk", "--checkpoint-interval", "50ms", "--checkpoint-retain", "2",
		"--savepoint-url", dir+"/sp", "--control-url", dir+"/control", "--final-savepoint")
	if code != 0 || res.Error != "" {
		t.Fatalf("exit %d: %+v\n%s", code, res, stderr)
	}
	b, err := readFileString(dir + "/control/" + control.SavepointFinalObject)
	if err != nil || !strings.Contains(b, `"nonce":"final"`) || !strings.Contains(b, dir+"/sp/sp-") || !strings.Contains(b, `"error":""`) {
		t.Fatalf("savepoint-final.json: %s %v", b, err)
	}
	chk, _ := os.ReadDir(dir + "/chk")
	if len(chk) == 0 || len(chk) > 3 { // retain 2, and one in flight
		t.Errorf("%d checkpoint directories with --checkpoint-retain 2", len(chk))
	}
	if code, _, stderr := runWorker(t, "--job", job, "--checkpoint-interval", "soon"); code != 2 || !strings.Contains(stderr, "--checkpoint-interval") {
		t.Errorf("bad --checkpoint-interval: exit %d, %s", code, stderr)
	}
}
