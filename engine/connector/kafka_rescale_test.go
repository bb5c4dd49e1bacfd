package connector

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flinkjob/flinkjob/engine/spec"
)

// Positions taken by two subtasks restore at one and at three subtasks
// (SeekAll): each new subtask resumes the partitions it owns now from the
// offsets stored by whichever old subtask read them, so what was read
// before the positions plus what the new subtasks read is every record
// once. Records read after the positions were taken are lost with the
// failure, and a record written after the first start is past the stop
// offsets the first start fixed, which the positions carry.
func TestKafkaSourceRestoresAtAnotherParallelism(t *testing.T) {
	_, addrs := newKafka(t, 5, "a", "b")
	want := append(kafkaFill(t, addrs, "a", 5, 30, 1000), kafkaFill(t, addrs, "b", 5, 30, 1000)...)
	slices.Sort(want)
	k := spec.KafkaSource{BootstrapServers: addrs, Topics: []string{"a", "b"},
		StoppingOffsets: &spec.KafkaOffsets{Mode: spec.OffsetsLatest}}
	var before []string
	var positions [][]byte
	for i := 0; i < 2; i++ {
		rd := openKafka(t, k, i, 2)
		before = append(before, kafkaValues(readKafka(t, rd, 70+i*13))...)
		pos, err := rd.(Positioned).Position()
		if err != nil {
			t.Fatal(err)
		}
		positions = append(positions, pos)
		readKafka(t, rd, 20) // lost: read after the checkpoint
		rd.Close()
	}
	kafkaProduce(t, addrs, kafkaRec("a", 0, "", "late", 5000))

	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprintf("at-%d", n), func(t *testing.T) {
			got := slices.Clone(before)
			for i := 0; i < n; i++ {
				rd := openKafka(t, k, i, n)
				if err := rd.(Rescalable).SeekAll(positions); err != nil {
					t.Fatal(err)
				}
				after := readKafka(t, rd, 0)
				for _, r := range after {
					if own := KafkaPartitionOwner(r["topic"].(string), int32(r["partition"].(int64)), n); own != i {
						t.Fatalf("subtask %d of %d read %s/%d, owned by %d", i, n, r["topic"], r["partition"], own)
					}
				}
				got = append(got, kafkaValues(after)...)
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("before (%d) + after the restore at %d = %d records, want each of %d once", len(before), n, len(got), len(want))
			}
		})
	}

	// One partition in two positions cannot be resumed from both.
	rd := openKafka(t, k, 0, 1)
	err := rd.(Rescalable).SeekAll([][]byte{positions[0], positions[0]})
	if err == nil || !strings.Contains(err.Error(), "more than one subtask's position") {
		t.Fatalf("SeekAll with a partition twice: %v", err)
	}
}

// Partitions created after a job first started are not in its positions:
// restored (here at another parallelism), the source reads them from their
// earliest offset, as discovery would have, whatever startingOffsets says
// (at latest, their records written before the restore would be lost).
func TestKafkaSourceRestoredStartsNewPartitionsAtEarliest(t *testing.T) {
	_, addrs := newKafka(t, 2, "t")
	kafkaFill(t, addrs, "t", 2, 5, 1000) // before the start: skipped (latest)
	k := spec.KafkaSource{BootstrapServers: addrs, Topics: []string{"t"},
		StartingOffsets: &spec.KafkaOffsets{Mode: spec.OffsetsLatest}}
	rd := openKafka(t, k, 0, 1)
	if _, err := rd.(Positioned).Position(); err != nil { // starts at the end
		t.Fatal(err)
	}
	kafkaProduce(t, addrs, kafkaRec("t", 0, "", "t-0-a", 2000), kafkaRec("t", 1, "", "t-1-a", 2000))
	if got := kafkaValues(readKafka(t, rd, 2)); !slices.Equal(got, []string{"t-0-a", "t-1-a"}) {
		t.Fatalf("first run read %v", got)
	}
	pos, err := rd.(Positioned).Position()
	if err != nil {
		t.Fatal(err)
	}
	rd.Close()

	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreatePartitions(context.Background(), 2, "t"); err != nil {
		t.Fatal(err)
	}
	kafkaProduce(t, addrs, kafkaRec("t", 2, "", "t-2-a", 3000), kafkaRec("t", 3, "", "t-3-a", 3000), kafkaRec("t", 3, "", "t-3-b", 3000))
	k.StoppingOffsets = &spec.KafkaOffsets{Mode: spec.OffsetsLatest}
	var got []string
	for i := 0; i < 2; i++ {
		rd := openKafka(t, k, i, 2)
		if err := rd.(Rescalable).SeekAll([][]byte{pos}); err != nil {
			t.Fatal(err)
		}
		got = append(got, kafkaValues(readKafka(t, rd, 0))...)
	}
	slices.Sort(got)
	if want := []string{"t-2-a", "t-3-a", "t-3-b"}; !slices.Equal(got, want) {
		t.Fatalf("restored run read %v, want %v (the new partitions from their start, nothing else)", got, want)
	}
}
