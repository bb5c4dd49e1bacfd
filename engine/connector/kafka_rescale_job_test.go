package connector_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flinkjob/flinkjob/engine/checkpoint"
	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/udf"
	"github.com/flinkjob/flinkjob/internal/kafkatest"
)

func init() {
	udf.Map("kafka-rescale-pace", func(v any) (any, error) {
		time.Sleep(100 * time.Microsecond)
		return v, nil
	})
}

// A STREAMING job whose Kafka source runs at parallelism 2 is cancelled
// after its second checkpoint and restored from it with the source at
// parallelism 1 and at 3 (Flink reassigns the partition splits): every
// partition resumes from the offset the checkpoint stored for it,
// whichever old subtask read it, so the exactly-once sink's output
// (read_committed) holds every input record once.
func TestKafkaJobRestoresSourceAtAnotherParallelism(t *testing.T) {
	for _, to := range []int{1, 3} {
		t.Run(fmt.Sprintf("2-to-%d", to), func(t *testing.T) {
			addr := connector.KafkaForTest(t, 5, "in", "out")
			const n = 20000
			var recs []*kgo.Record
			var want []string
			for i := 0; i < n; i++ {
				v := fmt.Sprintf("r%05d", i)
				want = append(want, strings.ToUpper(v))
				recs = append(recs, &kgo.Record{Topic: "in", Partition: int32(i % 5), Value: []byte(v)})
			}
			connector.ProduceForTest(t, addr, recs)
			slices.Sort(want)
			// The first run reads unbounded (still running at its second
			// checkpoint however slow the machine); the restored one stops
			// at the topic's end.
			jobText := func(parallelism int, bounded bool) string {
				stop, pace := "", ""
				if bounded {
					stop = "\n        stoppingOffsets: {mode: latest}"
				} else {
					// The first run reads at a pace (about 1 s per
					// subtask), so its second checkpoint, 10 ms apart,
					// falls mid-stream however fast the machine reads.
					pace = "\n  - name: pace\n    call: kafka-rescale-pace"
				}
				return fmt.Sprintf(`
parallelism: 2
steps:
  - name: in
    parallelism: %d
    source:
      kafka:
        bootstrapServers: [%q]
        topics: [in]%s%s
  - name: upper
    parallelism: 3
    map: "record.value.upperAscii()"
  - name: out
    parallelism: 3
    sink:
      kafka:
        bootstrapServers: [%q]
        topic: out
        format: string
        deliveryGuarantee: exactly-once
        transactionalIdPrefix: rescale-out
`, parallelism, addr, stop, pace, addr)
			}
			p1, err := plan.New(parse(t, jobText(2, false)), plan.Options{Mode: spec.Streaming})
			if err != nil {
				t.Fatal(err)
			}
			p2, err := plan.New(parse(t, jobText(to, true)), plan.Options{Mode: spec.Streaming})
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			runToSecondCheckpoint(t, p1, dir)
			// The restore must resume mid-stream, from positions of two
			// subtasks, for the test to show anything.
			read := kafkatest.CheckpointedRecords(t, checkpoint.LocalStore{Dir: dir}, "in", 2)
			if read == 0 || read >= n {
				t.Fatalf("the checkpoint's positions cover %d of %d records: the restore resumes nothing mid-stream", read, n)
			}

			runRestored(t, p2, dir, fmt.Sprintf("restored run at parallelism %d", to))
			got := kafkatest.ReadCommitted(t, addr, "out")
			slices.Sort(got)
			if !slices.Equal(got, want) {
				dups, missing := 0, 0
				seen := map[string]int{}
				for _, g := range got {
					seen[g]++
				}
				for _, w := range want {
					if seen[w] == 0 {
						missing++
					}
					if seen[w] > 1 {
						dups++
					}
				}
				t.Fatalf("output has %d records, want each of %d once: %d missing, %d more than once (checkpoint had read %d)", len(got), n, missing, dups, read)
			}
		})
	}
}
