package runner_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flinkjob/flinkjob/engine/checkpoint"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/internal/kafkatest"
	"github.com/flinkjob/flinkjob/worker/control"
	"github.com/flinkjob/flinkjob/worker/runner"
)

// TestStreamingKafkaSourceRescaleOnRestore: worker processes run a
// STREAMING job reading Kafka (an in-process kfake broker) at source
// parallelism 2 into an exactly-once Kafka sink; the processes are killed
// once two checkpoints completed, and the job is restored from the latest
// with its source at parallelism 3 (the operator's upgrade with a changed
// source parallelism). The partitions are reassigned over the new
// subtasks, each resuming at its checkpointed offset: the committed output
// holds every input record once.
func TestStreamingKafkaSourceRescaleOnRestore(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(5, "in", "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]
	const n = 20000
	var recs []*kgo.Record
	var want []string
	for i := 0; i < n; i++ {
		v := fmt.Sprintf("r%05d", i)
		want = append(want, strings.ToUpper(v))
		recs = append(recs, &kgo.Record{Topic: "in", Partition: int32(i % 5), Value: []byte(v)})
	}
	slices.Sort(want)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()

	job := func(parallelism int, bounded bool) *spec.Job {
		stop := ""
		if bounded {
			stop = ", stoppingOffsets: {mode: latest}"
		}
		return loadJob(t, fmt.Sprintf(`
runtimeMode: STREAMING
parallelism: 2
steps:
  - name: in
    parallelism: %d
    source: {kafka: {bootstrapServers: [%q], topics: [in]%s}}
  - name: slow
    call: slow
  - name: upper
    map: "record.value.upperAscii()"
  - name: out
    sink: {kafka: {bootstrapServers: [%q], topic: out, format: string, deliveryGuarantee: exactly-once, transactionalIdPrefix: rescale}}
`, parallelism, addr, stop, addr))
	}
	dir := t.TempDir()
	env := []string{"FLINKJOB_CHECKPOINT_URL=" + filepath.Join(dir, "checkpoints"), "FLINKJOB_CONTROL_URL=" + filepath.Join(dir, "control"),
		"FLINKJOB_CONTROL_POLL=50ms"}
	ctl, err := checkpoint.OpenLocal(filepath.Join(dir, "control"))
	if err != nil {
		t.Fatal(err)
	}
	// First run: unbounded, so it is still running when its second
	// checkpoint completes; killed then.
	// The slow worker's map (worker/testdata/slowworker) makes it last
	// about 2 s, so checkpoints complete mid-stream.
	r, err := runner.New(job(2, false), runner.Options{Worker: slowBin, Dir: t.TempDir(),
		Env: append(env, "FLINKJOB_CHECKPOINT_INTERVAL=100ms", "SLOW_MAP_DELAY=200us")})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	var latest control.LatestCheckpoint
	for !readJSON(t, ctl, control.LatestObject, &latest) || latest.ID < 2 {
		select {
		case err := <-done:
			stop()
			t.Fatalf("the first run ended before its second checkpoint: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	stop()
	<-done
	// The restore must resume mid-stream from two subtasks' positions for
	// the test to show anything.
	cps, err := checkpoint.OpenLocal(filepath.Join(dir, "checkpoints"))
	if err != nil {
		t.Fatal(err)
	}
	read := kafkatest.CheckpointedRecords(t, cps, "in", 2)
	if read == 0 || read >= n {
		t.Fatalf("the checkpoint's positions cover %d of %d records: the restore resumes nothing mid-stream", read, n)
	}
	t.Logf("restoring at 3 source subtasks from the latest checkpoint (taken at 2), which had read %d of %d records", read, n)

	r, err = runner.New(job(3, true), runner.Options{Worker: slowBin, Dir: t.TempDir(), Env: append(env, "FLINKJOB_RESTORE_FROM=latest", "SLOW_MAP_DELAY=0s")})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Run(ctx); err != nil {
		t.Fatalf("restored at source parallelism 3: %v", err)
	}
	got := kafkatest.ReadCommitted(t, addr, "out")
	slices.Sort(got)
	if !slices.Equal(got, want) {
		seen := map[string]int{}
		for _, g := range got {
			seen[g]++
		}
		missing, twice := 0, 0
		for _, w := range want {
			if seen[w] == 0 {
				missing++
			} else if seen[w] > 1 {
				twice++
			}
		}
		t.Fatalf("output has %d records, want each of %d once: %d missing, %d more than once", len(got), n, missing, twice)
	}
}
