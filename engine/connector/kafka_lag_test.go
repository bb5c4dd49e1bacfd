package connector

import (
	"context"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flinkjob/flinkjob/engine/spec"
)

// The lag a Kafka source reports is, per partition, the records it has not
// read yet: before the first read (ends listed), after reading part of
// them (ends from the fetches), for two subtasks of one source, capped at
// the stop offsets of a bounded source when more records arrive after its
// start; zero once everything is read. Lags runs concurrently with the
// reads (go test -race checks the publication).
func TestKafkaSourceReportsConsumerLag(t *testing.T) {
	_, addrs := newKafka(t, 4, "t")
	kafkaFill(t, addrs, "t", 4, 20, 1000)
	src := &KafkaSource{Spec: spec.KafkaSource{BootstrapServers: addrs, Topics: []string{"t"},
		StoppingOffsets: &spec.KafkaOffsets{Mode: spec.OffsetsLatest}}}
	ctx := context.Background()
	var rds []Reader
	for i := 0; i < 2; i++ {
		rd, err := src.Open(ctx, i, 2)
		if err != nil {
			t.Fatal(err)
		}
		defer rd.Close()
		rds = append(rds, rd)
	}
	// Not started: nothing to report yet.
	if l := src.Lags(ctx); len(l) != 0 {
		t.Fatalf("lags before any read: %v", l)
	}
	// Started (Position resolves the offsets) but nothing fetched: every
	// partition's 20 records are pending, ends listed by Lags.
	for _, rd := range rds {
		if _, err := rd.(Positioned).Position(); err != nil {
			t.Fatal(err)
		}
	}
	// Past the stop offsets the start fixed: never pending, though the
	// partitions' ends (listed, then fetched) are past them.
	kafkaProduce(t, addrs, kafkaRec("t", 0, "", "late", 5000), kafkaRec("t", 1, "", "late", 5000),
		kafkaRec("t", 2, "", "late", 5000), kafkaRec("t", 3, "", "late", 5000))
	read := map[SplitLag]int64{} // by subtask, topic, partition (Lag 0)
	check := func(when string) {
		t.Helper()
		lags := src.Lags(ctx)
		if len(lags) != 4 {
			t.Fatalf("%s: %d partitions in %v, want 4", when, len(lags), lags)
		}
		pending := pendingRecords(lags)
		var sum [2]int64
		for _, l := range lags {
			if own := KafkaPartitionOwner(l.Topic, l.Partition, 2); own != l.Subtask {
				t.Fatalf("%s: %s/%d reported for subtask %d, owned by %d", when, l.Topic, l.Partition, l.Subtask, own)
			}
			k := l
			k.Lag = 0
			if want := 20 - read[k]; l.Lag != want {
				t.Fatalf("%s: lag of %s/%d is %d, want %d (%v)", when, l.Topic, l.Partition, l.Lag, want, lags)
			}
			sum[l.Subtask] += l.Lag
		}
		for i := range 2 {
			if pending[i] != sum[i] {
				t.Fatalf("%s: pending records of subtask %d = %d, want %d", when, i, pending[i], sum[i])
			}
		}
	}
	check("started")
	// Metrics are scraped while the readers run.
	stop := make(chan struct{})
	scraped := make(chan struct{})
	go func() {
		defer close(scraped)
		for {
			select {
			case <-stop:
				return
			default:
				src.Lags(ctx)
			}
		}
	}()
	total := 0
	for i, rd := range rds {
		for _, r := range readKafka(t, rd, 7+i*5) {
			read[SplitLag{Subtask: i, Topic: "t", Partition: int32(r["partition"].(int64))}]++
			total++
		}
	}
	if total != 19 {
		t.Fatalf("read %d records, want 19", total)
	}
	close(stop)
	<-scraped
	check("partly read")
	for i, rd := range rds {
		for _, r := range readKafka(t, rd, 3) {
			read[SplitLag{Subtask: i, Topic: "t", Partition: int32(r["partition"].(int64))}]++
		}
	}
	check("more read")
	for _, rd := range rds {
		readKafka(t, rd, 0)
	}
	for _, l := range src.Lags(ctx) {
		if l.Lag != 0 {
			t.Fatalf("lag after reading everything: %v", src.Lags(ctx))
		}
	}
	// A closed reader is no longer reported.
	rds[0].Close()
	if l := src.Lags(ctx); !slices.ContainsFunc(l, func(x SplitLag) bool { return x.Subtask == 1 }) || slices.ContainsFunc(l, func(x SplitLag) bool { return x.Subtask == 0 }) {
		t.Fatalf("lags after closing subtask 0: %v", l)
	}
}

// An unbounded source's lag follows the ends its fetches return: records
// written after the start are pending once a fetch has seen them (the end
// listed before they existed would say less).
func TestKafkaSourceLagFollowsFetchedEnds(t *testing.T) {
	_, addrs := newKafka(t, 1, "u")
	kafkaFill(t, addrs, "u", 1, 20, 1000)
	src := &KafkaSource{Spec: spec.KafkaSource{BootstrapServers: addrs, Topics: []string{"u"}}}
	ctx := context.Background()
	rd, err := src.Open(ctx, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if _, err := rd.(Positioned).Position(); err != nil {
		t.Fatal(err)
	}
	if l := src.Lags(ctx); len(l) != 1 || l[0].Lag != 20 {
		t.Fatalf("lags at the start: %v, want 20 pending", l)
	}
	var recs []*kgo.Record
	for i := 0; i < 10; i++ {
		recs = append(recs, kafkaRec("u", 0, "", "more", 2000))
	}
	kafkaProduce(t, addrs, recs...)
	// Record 24 comes in a fetch made after the 10 were written, which
	// tells the end is 30.
	readKafka(t, rd, 25)
	if l := src.Lags(ctx); len(l) != 1 || l[0].Lag != 5 {
		t.Fatalf("lags after reading 25 of 30: %v, want 5 pending", l)
	}
	readKafka(t, rd, 5)
	if l := src.Lags(ctx); len(l) != 1 || l[0].Lag != 0 {
		t.Fatalf("lags after reading everything: %v", l)
	}
}

// pendingRecords sums lags per subtask: Flink's pendingRecords metric of a
// source reader, as the worker's /metrics sums a subtask's (worker/sourcelag.go).
func pendingRecords(lags []SplitLag) map[int]int64 {
	out := map[int]int64{}
	for _, l := range lags {
		out[l.Subtask] += l.Lag
	}
	return out
}
