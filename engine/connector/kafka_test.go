package connector

import (
	"context"
	"errors"
	"io"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// newKafka starts an in-process Kafka-protocol cluster (kfake) with the
// given topics, each with the given number of partitions, and returns its
// bootstrap addresses.
func newKafka(t testing.TB, partitions int32, topics ...string) (*kfake.Cluster, []string) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, c.ListenAddrs()
}

// produce writes records (topic, partition, key, value, timestamp as set)
// synchronously, with a partitioner that honors Record.Partition.
func kafkaProduce(t testing.TB, addrs []string, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func kafkaRec(topic string, partition int32, key, val string, tsMillis int64) *kgo.Record {
	r := &kgo.Record{Topic: topic, Partition: partition, Value: []byte(val)}
	if key != "" {
		r.Key = []byte(key)
	}
	if tsMillis != 0 {
		r.Timestamp = time.UnixMilli(tsMillis)
	}
	return r
}

// readRecords reads a reader until io.EOF (bounded) or until want values
// arrived (want > 0), unwrapping Timestamped values. Records come as maps
// (rows, value.UseRows, turned into the maps they stand for).
func readKafka(t testing.TB, rd Reader, want int) []map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []map[string]any
	for want <= 0 || len(out) < want {
		max := 1000
		if want > 0 {
			max = want - len(out)
		}
		err := rd.Read(ctx, max, func(v any) {
			tv, ok := v.(*Timestamped)
			if !ok {
				t.Fatalf("kafka reader emitted %T, want *Timestamped", v)
			}
			if _, row := tv.Value.(*value.Row); row != value.UseRows {
				t.Fatalf("kafka reader emitted %T with value.UseRows %v", tv.Value, value.UseRows)
			}
			m := value.Plain(tv.Value).(map[string]any)
			if m["timestamp"] != tv.Ts {
				t.Fatalf("event time %d != record timestamp %v", tv.Ts, m["timestamp"])
			}
			out = append(out, m)
		})
		if errors.Is(err, io.EOF) {
			if want > 0 && len(out) != want {
				t.Fatalf("EOF after %d records, want %d", len(out), want)
			}
			return out
		}
		if err != nil {
			t.Fatalf("read: %v (after %d records)", err, len(out))
		}
	}
	return out
}

func openKafka(t testing.TB, k spec.KafkaSource, index, parallelism int) Reader {
	t.Helper()
	src := &KafkaSource{Spec: k}
	rd, err := src.Open(context.Background(), index, parallelism)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rd.Close() })
	return rd
}

// values lists the "value" field of records, sorted.
func kafkaValues(recs []map[string]any) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r["value"].(string)
	}
	sort.Strings(out)
	return out
}
