package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flinkjob/flinkjob/engine/spec"
)

// fill writes n records per partition: value "<topic>-<p>-<i>", timestamp
// base + i*10 ms.
func kafkaFill(t *testing.T, addrs []string, topic string, partitions int32, n int, base int64) []string {
	var recs []*kgo.Record
	var vals []string
	for p := int32(0); p < partitions; p++ {
		for i := 0; i < n; i++ {
			v := fmt.Sprintf("%s-%d-%d", topic, p, i)
			vals = append(vals, v)
			recs = append(recs, kafkaRec(topic, p, fmt.Sprintf("k%d", i), v, base+int64(i)*10))
		}
	}
	kafkaProduce(t, addrs, recs...)
	slices.Sort(vals)
	return vals
}

func TestKafkaSourceBoundedReadsEverythingWithFields(t *testing.T) {
	_, addrs := newKafka(t, 3, "events")
	kafkaFill(t, addrs, "events", 3, 10, 1_700_000_000_000)
	r := kafkaRec("events", 1, "", `{"a":1}`, 1_700_000_001_000)
	r.Headers = []kgo.RecordHeader{{Key: "h", Value: []byte("v")}}
	kafkaProduce(t, addrs, r)

	k := spec.KafkaSource{BootstrapServers: addrs, Topics: []string{"events"},
		StoppingOffsets: &spec.KafkaOffsets{Mode: spec.OffsetsLatest}}
	got := readKafka(t, openKafka(t, k, 0, 1), 0)
	if len(got) != 31 {
		t.Fatalf("read %d records, want 31", len(got))
	}
	last := got[0]
	for _, g := range got {
		if g["partition"] == int64(1) && g["offset"] == int64(10) {
			last = g
		}
	}
	wantLast := map[string]any{"key": nil, "value": `{"a":1}`, "topic": "events", "partition": int64(1),
		"offset": int64(10), "timestamp": int64(1_700_000_001_000), "headers": map[string]any{"h": "v"}}
	if !reflect.DeepEqual(last, wantLast) {
		t.Fatalf("record = %#v\nwant %#v", last, wantLast)
	}

	// format json decodes values; keyFormat bytes keeps keys as bytes.
	k.Format, k.KeyFormat = spec.KafkaJSON, spec.KafkaBytes
	k.Topics, k.StoppingOffsets = []string{"events"}, &spec.KafkaOffsets{Mode: spec.OffsetsSpecific,
		Offsets: []spec.KafkaPartitionOffset{{Topic: "events", Partition: 0, Offset: 0}, {Topic: "events", Partition: 2, Offset: 0}}}
	k.StartingOffsets = &spec.KafkaOffsets{Mode: spec.OffsetsSpecific, Offsets: []spec.KafkaPartitionOffset{{Topic: "events", Partition: 1, Offset: 10}}}
	got = readKafka(t, openKafka(t, k, 0, 1), 0)
	if len(got) != 1 || !reflect.DeepEqual(got[0]["value"], map[string]any{"a": int64(1)}) || got[0]["key"] != nil {
		t.Fatalf("json read = %v", got)
	}
}

func TestKafkaSourceSplitsPartitionsAcrossSubtasks(t *testing.T) {
	_, addrs := newKafka(t, 4, "a", "b")
	want := append(kafkaFill(t, addrs, "a", 4, 5, 1000), kafkaFill(t, addrs, "b", 4, 5, 1000)...)
	slices.Sort(want)
	k := spec.KafkaSource{BootstrapServers: addrs, TopicPattern: "a|b",
		StoppingOffsets: &spec.KafkaOffsets{Mode: spec.OffsetsLatest}}
	var all []string
	for i := 0; i < 3; i++ {
		got := readKafka(t, openKafka(t, k, i, 3), 0)
		for _, g := range got {
			if own := KafkaPartitionOwner(g["topic"].(string), int32(g["partition"].(int64)), 3); own != i {
				t.Errorf("subtask %d read %s/%d, owned by %d", i, g["topic"], g["partition"], own)
			}
		}
		if len(got) == 0 {
			t.Errorf("subtask %d of 3 read nothing from 8 partitions", i)
		}
		all = append(all, kafkaValues(got)...)
	}
	slices.Sort(all)
	if !slices.Equal(all, want) {
		t.Fatalf("subtasks together read %d records, want each of %d once", len(all), len(want))
	}
}

func TestKafkaSourceStartingOffsets(t *testing.T) {
	_, addrs := newKafka(t, 2, "t")
	ctx := context.Background()
	kafkaFill(t, addrs, "t", 2, 10, 1000) // timestamps 1000..1090 in each partition
	base := spec.KafkaSource{BootstrapServers: addrs, Topics: []string{"t"}, GroupID: "g",
		StoppingOffsets: &spec.KafkaOffsets{Mode: spec.OffsetsLatest}}

	t.Run("timestamp", func(t *testing.T) {
		k := base
		ts := int64(1050)
		k.StartingOffsets = &spec.KafkaOffsets{Mode: spec.OffsetsTimestamp, Timestamp: &ts}
		got := kafkaValues(readKafka(t, openKafka(t, k, 0, 1), 0))
		want := []string{"t-0-5", "t-0-6", "t-0-7", "t-0-8", "t-0-9", "t-1-5", "t-1-6", "t-1-7", "t-1-8", "t-1-9"}
		if !slices.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	})
	t.Run("committed", func(t *testing.T) {
		cl, _ := kgo.NewClient(kgo.SeedBrokers(addrs...))
		defer cl.Close()
		offs := kadm.Offsets{}
		offs.Add(kadm.Offset{Topic: "t", Partition: 0, At: 8, LeaderEpoch: -1})
		if _, err := kadm.NewClient(cl).CommitOffsets(ctx, "g", offs); err != nil {
			t.Fatal(err)
		}
		k := base
		k.StartingOffsets = &spec.KafkaOffsets{Mode: spec.OffsetsCommitted, CommittedReset: "latest"}
		got := kafkaValues(readKafka(t, openKafka(t, k, 0, 1), 0))
		// Partition 1 has no committed offset: committedReset latest.
		if want := []string{"t-0-8", "t-0-9"}; !slices.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
		k.StartingOffsets.CommittedReset = "none"
		rd := openKafka(t, k, 0, 1)
		if err := rd.Read(ctx, 10, func(any) {}); err == nil {
			t.Fatal("committedReset none with a partition without offset: no error")
		}
	})
	t.Run("latest", func(t *testing.T) {
		k := base
		k.StoppingOffsets = nil
		k.StartingOffsets = &spec.KafkaOffsets{Mode: spec.OffsetsLatest}
		rd := openKafka(t, k, 0, 1)
		// The start is resolved by the first Read (or Position).
		if _, err := rd.(Positioned).Position(); err != nil {
			t.Fatal(err)
		}
		kafkaProduce(t, addrs, kafkaRec("t", 1, "", "new", 2000))
		got := kafkaValues(readKafka(t, rd, 1))
		if !slices.Equal(got, []string{"new"}) {
			t.Fatalf("got %v, want only the record written after the start", got)
		}
	})
}

func TestKafkaSourceStoppingOffsets(t *testing.T) {
	_, addrs := newKafka(t, 2, "t")
	kafkaFill(t, addrs, "t", 2, 10, 1000)
	ts := int64(1030)
	k := spec.KafkaSource{BootstrapServers: addrs, Topics: []string{"t"},
		StoppingOffsets: &spec.KafkaOffsets{Mode: spec.OffsetsTimestamp, Timestamp: &ts}}
	got := kafkaValues(readKafka(t, openKafka(t, k, 0, 1), 0))
	want := []string{"t-0-0", "t-0-1", "t-0-2", "t-1-0", "t-1-1", "t-1-2"}
	if !slices.Equal(got, want) {
		t.Fatalf("stop at timestamp: got %v, want %v", got, want)
	}
	k.StoppingOffsets = &spec.KafkaOffsets{Mode: spec.OffsetsSpecific, Offsets: []spec.KafkaPartitionOffset{{Topic: "t", Partition: 1, Offset: 2}}}
	got = kafkaValues(readKafka(t, openKafka(t, k, 0, 1), 0))
	// Partition 0 is not listed: it stops at its end when the job starts.
	if len(got) != 12 || !slices.Contains(got, "t-1-1") || slices.Contains(got, "t-1-2") {
		t.Fatalf("stop at offsets: got %v", got)
	}
	// Records written after the start are not read by a bounded source.
	k.StoppingOffsets = &spec.KafkaOffsets{Mode: spec.OffsetsLatest}
	rd := openKafka(t, k, 0, 1)
	first := readKafka(t, rd, 5)
	kafkaProduce(t, addrs, kafkaRec("t", 0, "", "late", 5000))
	rest := readKafka(t, rd, 0)
	if n := len(first) + len(rest); n != 20 || slices.Contains(kafkaValues(rest), "late") {
		t.Fatalf("bounded latest read %d records (want 20) or the late one", n)
	}
}

// A transaction aborted and one committed: read_committed sees only the
// committed records, and a bounded source ends although the last offsets
// are transaction markers.
func TestKafkaSourceReadCommittedStopsAfterMarkers(t *testing.T) {
	_, addrs := newKafka(t, 1, "t")
	ctx := context.Background()
	for i, commit := range []kgo.TransactionEndTry{kgo.TryAbort, kgo.TryCommit} {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.TransactionalID("tx"))
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, kafkaRec("t", 0, "", fmt.Sprintf("r%d", i), 0)).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := cl.EndTransaction(ctx, commit); err != nil {
			t.Fatal(err)
		}
		cl.Close()
	}
	k := spec.KafkaSource{BootstrapServers: addrs, Topics: []string{"t"},
		Properties:      map[string]string{"isolation.level": "read_committed"},
		StoppingOffsets: &spec.KafkaOffsets{Mode: spec.OffsetsLatest}}
	got := kafkaValues(readKafka(t, openKafka(t, k, 0, 1), 0))
	if !slices.Equal(got, []string{"r1"}) {
		t.Fatalf("read_committed got %v, want [r1]", got)
	}
}

// Positions restore exactly: what was read before the checkpoint plus what
// the restored reader reads is every record once.
func TestKafkaSourceRestoresFromPosition(t *testing.T) {
	_, addrs := newKafka(t, 3, "t")
	want := kafkaFill(t, addrs, "t", 3, 20, 1000)
	k := spec.KafkaSource{BootstrapServers: addrs, Topics: []string{"t"},
		StoppingOffsets: &spec.KafkaOffsets{Mode: spec.OffsetsLatest}}
	rd := openKafka(t, k, 0, 1)
	before := readKafka(t, rd, 25)
	pos, err := rd.(Positioned).Position()
	if err != nil {
		t.Fatal(err)
	}
	// Records read after the checkpoint are lost with the failure.
	readKafka(t, rd, 10)
	rd.Close()
	// Written after the first start: past the stop offsets it fixed, so a
	// restored bounded source must not read them either.
	kafkaProduce(t, addrs, kafkaRec("t", 0, "", "late", 5000))

	rd2 := openKafka(t, k, 0, 1)
	if err := rd2.(Positioned).Seek(pos); err != nil {
		t.Fatal(err)
	}
	after := readKafka(t, rd2, 0)
	got := append(kafkaValues(before), kafkaValues(after)...)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("before (%d) + after restore (%d) = %d records, want each of %d once", len(before), len(after), len(got), len(want))
	}
	if err := rd2.(Positioned).Seek([]byte("garbage")); err == nil {
		t.Fatal("Seek(garbage): no error")
	}
}

func TestKafkaSourceCommitsOffsetsOnCheckpointComplete(t *testing.T) {
	_, addrs := newKafka(t, 2, "t")
	kafkaFill(t, addrs, "t", 2, 10, 1000)
	ctx := context.Background()
	k := spec.KafkaSource{BootstrapServers: addrs, Topics: []string{"t"}, GroupID: "grp"}
	rd := openKafka(t, k, 0, 1)
	readKafka(t, rd, 20)
	pos1, err := rd.(PositionedFor).PositionFor(1) // checkpoint 1's barrier
	if err != nil {
		t.Fatal(err)
	}
	cl, _ := kgo.NewClient(kgo.SeedBrokers(addrs...))
	defer cl.Close()
	adm := kadm.NewClient(cl)
	committed := func() map[int32]int64 {
		offs, err := adm.FetchOffsets(ctx, "grp")
		if errors.Is(err, kerr.GroupIDNotFound) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		out := map[int32]int64{}
		offs.Each(func(o kadm.OffsetResponse) { out[o.Partition] = o.At })
		return out
	}
	if c := committed(); len(c) != 0 {
		t.Fatalf("offsets committed before the checkpoint completed: %v", c)
	}
	if err := rd.(CheckpointListener).CheckpointComplete(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if c, want := committed(), storedOffsets(t, pos1); !reflect.DeepEqual(c, want) || c[0] != 10 || c[1] != 10 {
		t.Fatalf("committed = %v, want checkpoint 1's positions %v (10 in both partitions)", c, want)
	}
	// A position that belongs to no checkpoint (a finished source's end)
	// is never committed.
	kafkaProduce(t, addrs, kafkaRec("t", 0, "", "w", 2000))
	readKafka(t, rd, 1)
	if _, err := rd.(Positioned).Position(); err != nil {
		t.Fatal(err)
	}
	// Checkpoint 3's barrier passes before checkpoint 2 is known
	// complete: completing 2 commits 2's offsets, not 3's.
	kafkaProduce(t, addrs, kafkaRec("t", 0, "", "x", 2000))
	readKafka(t, rd, 1)
	pos2, _ := rd.(PositionedFor).PositionFor(2)
	kafkaProduce(t, addrs, kafkaRec("t", 0, "", "y", 2000))
	readKafka(t, rd, 1)
	pos3, _ := rd.(PositionedFor).PositionFor(3)
	if err := rd.(CheckpointListener).CheckpointComplete(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if c, want := committed(), storedOffsets(t, pos2); !reflect.DeepEqual(c, want) || c[0] != 12 {
		t.Fatalf("after checkpoint 2: committed %v, want checkpoint 2's positions %v (partition 0 at 12)", c, want)
	}
	// Checkpoint 4 is abandoned (its position stays behind), and the
	// subtask hears of 6 only (its notification replaced 5's): 6's
	// offsets exactly, not one checkpoint late.
	if err := rd.(CheckpointListener).CheckpointComplete(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if c, want := committed(), storedOffsets(t, pos3); !reflect.DeepEqual(c, want) {
		t.Fatalf("after checkpoint 3: committed %v, want %v", c, want)
	}
	var pos6 []byte
	for id := int64(4); id <= 6; id++ {
		kafkaProduce(t, addrs, kafkaRec("t", int32(id%2), "", "z", 2000))
		readKafka(t, rd, 1)
		pos, err := rd.(PositionedFor).PositionFor(id)
		if err != nil {
			t.Fatal(err)
		}
		pos6 = pos
	}
	if err := rd.(CheckpointListener).CheckpointComplete(ctx, 6); err != nil {
		t.Fatal(err)
	}
	if c, want := committed(), storedOffsets(t, pos6); !reflect.DeepEqual(c, want) || c[0] != 15 || c[1] != 11 {
		t.Fatalf("after checkpoint 6: committed %v, want checkpoint 6's positions %v (15 and 11)", c, want)
	}
	// A late notification of an older checkpoint commits nothing.
	if err := rd.(CheckpointListener).CheckpointComplete(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if c := committed(); c[0] != 15 || c[1] != 11 {
		t.Fatalf("a late completion of checkpoint 5 moved the group back: %v", c)
	}
}

// storedOffsets decodes a position as stored in a checkpoint into the
// offsets by partition.
func storedOffsets(t *testing.T, pos []byte) map[int32]int64 {
	t.Helper()
	var ps []kafkaPos
	if err := json.Unmarshal(pos, &ps); err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	for _, p := range ps {
		out[p.Partition] = p.Next
	}
	return out
}

// The watermark of a subtask with several partitions is the minimum over
// its partitions, and an idle partition stops holding it back.
func TestKafkaSourcePerPartitionWatermarksWithIdleness(t *testing.T) {
	_, addrs := newKafka(t, 2, "t")
	kafkaProduce(t, addrs, kafkaRec("t", 0, "", "a", 10_000), kafkaRec("t", 1, "", "b", 5_000))
	k := spec.KafkaSource{BootstrapServers: addrs, Topics: []string{"t"}}
	read := func(src *KafkaSource, rd Reader, n int) int64 {
		var wm int64
		got := 0
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for got < n {
			if err := rd.Read(ctx, 100, func(v any) { wm = v.(*Timestamped).Watermark; got++ }); err != nil {
				t.Fatal(err)
			}
		}
		return wm
	}
	open := func(idle time.Duration) (*KafkaSource, Reader) {
		src := &KafkaSource{Spec: k, WatermarkBound: 1000, Idleness: idle}
		rd, err := src.Open(context.Background(), 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rd.Close() })
		return src, rd
	}

	// Without idleness (an hour is never reached here) the slow partition
	// holds the watermark: min(10000, 5000) - 1000 - 1.
	src, rd := open(time.Hour)
	if wm := read(src, rd, 2); wm != 3_999 {
		t.Fatalf("watermark %d, want 3999 (partition 1 holds it back)", wm)
	}
	kafkaProduce(t, addrs, kafkaRec("t", 0, "", "c", 20_000))
	if wm := read(src, rd, 1); wm != 3_999 {
		t.Fatalf("watermark %d, want still 3999", wm)
	}

	// With idleness, partition 1 (quiet since its record) drops out once
	// the idleness has passed; partition 0 then leads: 30000 - 1000 - 1.
	src, rd = open(20 * time.Millisecond)
	read(src, rd, 3)
	time.Sleep(100 * time.Millisecond)
	kafkaProduce(t, addrs, kafkaRec("t", 0, "", "d", 30_000))
	if wm := read(src, rd, 1); wm != 28_999 {
		t.Fatalf("watermark %d, want 28999 (partition 1 is idle)", wm)
	}
	// A record from partition 1 makes it active again, but the watermark
	// never goes back.
	kafkaProduce(t, addrs, kafkaRec("t", 1, "", "e", 6_000))
	if wm := read(src, rd, 1); wm != 28_999 {
		t.Fatalf("watermark %d, want 28999 (never decreases)", wm)
	}
}

// An unbounded source picks up topics that start matching its pattern,
// and partitions added to its topics, while it runs; they are read from
// their earliest offset.
func TestKafkaSourceDiscoversNewTopicsAndPartitions(t *testing.T) {
	_, addrs := newKafka(t, 1, "ev-a")
	kafkaProduce(t, addrs, kafkaRec("ev-a", 0, "", "a0", 1000))
	k := spec.KafkaSource{BootstrapServers: addrs, TopicPattern: "ev-.*",
		Properties: map[string]string{"partition.discovery.interval.ms": "20"}}
	rd := openKafka(t, k, 0, 1)
	if got := kafkaValues(readKafka(t, rd, 1)); !slices.Equal(got, []string{"a0"}) {
		t.Fatalf("got %v", got)
	}
	cl, _ := kgo.NewClient(kgo.SeedBrokers(addrs...))
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "ev-b"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "other"); err != nil {
		t.Fatal(err)
	}
	// Written before the reader sees the topic: read from the earliest offset.
	kafkaProduce(t, addrs, kafkaRec("ev-b", 0, "", "b0", 1000), kafkaRec("ev-b", 1, "", "b1", 1000), kafkaRec("other", 0, "", "x", 1000))
	if got := kafkaValues(readKafka(t, rd, 2)); !slices.Equal(got, []string{"b0", "b1"}) {
		t.Fatalf("after topic ev-b appeared: got %v", got)
	}
	if _, err := adm.CreatePartitions(ctx, 1, "ev-a"); err != nil {
		t.Fatal(err)
	}
	kafkaProduce(t, addrs, kafkaRec("ev-a", 1, "", "a1", 1000))
	if got := kafkaValues(readKafka(t, rd, 1)); !slices.Equal(got, []string{"a1"}) {
		t.Fatalf("after ev-a got a partition: got %v", got)
	}
	// The new partitions are in the position.
	pos, err := rd.(Positioned).Position()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{`"t":"ev-a","p":1,"n":1`, `"t":"ev-b","p":1,"n":1`} {
		if !strings.Contains(string(pos), p) {
			t.Errorf("position %s lacks %s", pos, p)
		}
	}
}
