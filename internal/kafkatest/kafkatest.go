// Package kafkatest holds what tests of Kafka jobs in several packages
// (engine/connector, worker/runner) check after a run: a topic's committed
// output, and how far a checkpoint's Kafka source positions had read.
package kafkatest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/checkpoint"
	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// ReadCommitted reads a topic to its last stable offset with
// isolation.level read_committed and returns the values.
func ReadCommitted(t testing.TB, addr, topic string) []string {
	t.Helper()
	src := &connector.KafkaSource{Spec: spec.KafkaSource{BootstrapServers: []string{addr}, Topics: []string{topic},
		Properties:      map[string]string{"isolation.level": "read_committed"},
		StoppingOffsets: &spec.KafkaOffsets{Mode: spec.OffsetsLatest}}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rd, err := src.Open(ctx, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var out []string
	for {
		err := rd.Read(ctx, 1000, func(v any) {
			val, _ := value.Field(v.(*connector.Timestamped).Value, "value")
			out = append(out, val.(string))
		})
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// CheckpointedRecords is how many records the Kafka source step, run by
// parallelism subtasks, had read by the newest completed checkpoint in
// store: the sum of its partitions' positions. A restore test uses it to
// show that the checkpoint fell mid-stream.
func CheckpointedRecords(t testing.TB, store checkpoint.Store, step string, parallelism int) int64 {
	t.Helper()
	ctx := context.Background()
	ids, err := checkpoint.Completed(ctx, store)
	if err != nil || len(ids) == 0 {
		t.Fatalf("completed checkpoints: %v %v", ids, err)
	}
	read := int64(0)
	for i := 0; i < parallelism; i++ {
		b, err := checkpoint.Sub(store, checkpoint.DirName(slices.Max(ids))).Get(ctx, checkpoint.SourcePositionName(step, i, parallelism))
		if err != nil {
			t.Fatal(err)
		}
		var ps []struct {
			N int64 `json:"n"`
		}
		if err := json.Unmarshal(b, &ps); err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			read += p.N
		}
	}
	return read
}
