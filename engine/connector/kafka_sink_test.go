package connector

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// committedValues reads every committed record of a topic (read_committed,
// up to the last stable offset) and returns the values, sorted.
func committedValues(t *testing.T, addrs []string, topic string) []string {
	t.Helper()
	k := spec.KafkaSource{BootstrapServers: addrs, Topics: []string{topic},
		Properties:      map[string]string{"isolation.level": "read_committed"},
		StoppingOffsets: &spec.KafkaOffsets{Mode: spec.OffsetsLatest}}
	rd := openKafka(t, k, 0, 1)
	defer rd.Close()
	return kafkaValues(readKafka(t, rd, 0))
}

func openSink(t *testing.T, k spec.KafkaSink, index int) Writer {
	t.Helper()
	s, err := NewKafkaSink(k)
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Open(context.Background(), index, 1)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func writeN(t *testing.T, w Writer, prefix string, n int) []string {
	t.Helper()
	var out []string
	for i := 0; i < n; i++ {
		v := fmt.Sprintf("%s%d", prefix, i)
		out = append(out, v)
		if err := w.Write(&value.Record{Value: map[string]any{"v": v, "n": int64(i)}, Ts: 1000 + int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestKafkaSinkAtLeastOnceKeyValueHeaders(t *testing.T) {
	_, addrs := newKafka(t, 2, "out", "other")
	k := spec.KafkaSink{BootstrapServers: addrs, TopicExpression: "record.n == 3 ? 'other' : 'out'",
		Key: "record.v", Value: "{'v': record.v, 'n': record.n}", Headers: map[string]string{"n": "string(record.n)"}}
	w := openSink(t, k, 0)
	writeN(t, w, "a", 5)
	if _, err := w.(Transactional).PreCommit(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	src := spec.KafkaSource{BootstrapServers: addrs, Topics: []string{"out"}, Format: spec.KafkaJSON,
		StoppingOffsets: &spec.KafkaOffsets{Mode: spec.OffsetsLatest}}
	// Flushed at the checkpoint: everything is there before Close.
	got := readKafka(t, openKafka(t, src, 0, 1), 0)
	if len(got) != 4 {
		t.Fatalf("topic out has %d records, want 4", len(got))
	}
	for _, g := range got {
		v := g["value"].(map[string]any)
		want := map[string]any{"key": `"` + v["v"].(string) + `"`, "timestamp": 1000 + v["n"].(int64),
			"headers": map[string]any{"n": fmt.Sprint(v["n"])}}
		for f, wv := range want {
			if !reflect.DeepEqual(g[f], wv) {
				t.Errorf("%s = %#v, want %#v (record %v)", f, g[f], wv, g)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	src.Topics = []string{"other"}
	if got := readKafka(t, openKafka(t, src, 0, 1), 0); len(got) != 1 || got[0]["value"].(map[string]any)["n"] != int64(3) {
		t.Fatalf("topic other = %v, want record 3", got)
	}

	// keyFormat string writes a string key as its text, while the values
	// stay JSON; a non-string key is refused, naming the field.
	k.TopicExpression, k.Topic, k.KeyFormat = "", "other", spec.KafkaString
	w = openSink(t, k, 0)
	if err := w.Write(&value.Record{Value: map[string]any{"v": "plain", "n": int64(7)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.(Transactional).PreCommit(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	src.Topics = []string{"other"}
	var plain map[string]any
	for _, g := range readKafka(t, openKafka(t, src, 0, 1), 0) {
		if reflect.DeepEqual(g["value"], map[string]any{"v": "plain", "n": int64(7)}) {
			plain = g
		}
	}
	if plain == nil || plain["key"] != "plain" {
		t.Errorf("keyFormat string: record %v, want key plain (no quotes) with the JSON value", plain)
	}
	k.Key = "record.n"
	w = openSink(t, k, 0)
	if err := w.Write(&value.Record{Value: map[string]any{"v": "x", "n": int64(1)}}); err == nil || !strings.Contains(err.Error(), "sink.kafka.key: format string needs a string, got int") {
		t.Fatalf("keyFormat string with an int key: err = %v", err)
	}
	w.Abort()
	k.Key, k.KeyFormat, k.TopicExpression, k.Topic = "record.v", "", "record.n == 3 ? 'other' : 'out'", ""

	// format string refuses a non-string value, naming the field.
	k.Format, k.Value = spec.KafkaString, "record.n"
	w = openSink(t, k, 0)
	defer w.Abort()
	if err := w.Write(&value.Record{Value: map[string]any{"v": "x", "n": int64(1)}}); err == nil || !strings.Contains(err.Error(), "sink.kafka.value: format string needs a string, got int") {
		t.Fatalf("err = %v", err)
	}
}

func eoSink(addrs []string) spec.KafkaSink {
	return spec.KafkaSink{BootstrapServers: addrs, Topic: "out", Value: "record.v", Format: spec.KafkaString,
		DeliveryGuarantee: spec.DeliveryExactlyOnce, TransactionalIDPrefix: "job-out"}
}

// Records become visible to read_committed consumers when the checkpoint
// that pre-committed them completes, not before.
func TestKafkaSinkExactlyOnceCommitsOnCheckpointComplete(t *testing.T) {
	_, addrs := newKafka(t, 2, "out")
	ctx := context.Background()
	w := openSink(t, eoSink(addrs), 0)
	tw := w.(Transactional)
	a := writeN(t, w, "a", 5)
	if _, err := tw.PreCommit(ctx, 1); err != nil {
		t.Fatal(err)
	}
	b := writeN(t, w, "b", 3) // the next transaction, open
	if got := committedValues(t, addrs, "out"); len(got) != 0 {
		t.Fatalf("visible before the checkpoint completed: %v", got)
	}
	if err := tw.Commit(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if got := committedValues(t, addrs, "out"); !slices.Equal(got, a) {
		t.Fatalf("after commit 1: %v, want %v", got, a)
	}
	// A checkpoint with nothing new, then one with b; completing only the
	// later one commits everything up to it.
	if _, err := tw.PreCommit(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := tw.Commit(ctx, 2); err != nil {
		t.Fatal(err)
	}
	c := writeN(t, w, "c", 2)
	if err := w.Close(); err != nil { // end of input: commits the rest
		t.Fatal(err)
	}
	want := slices.Concat(a, b, c)
	slices.Sort(want)
	if got := committedValues(t, addrs, "out"); !slices.Equal(got, want) {
		t.Fatalf("after close: %v, want %v", got, want)
	}
}

// A failure after the checkpoint's pre-commit and before its commit: the
// restored writer commits the checkpoint's transaction, the records the
// failed attempt wrote after the checkpoint are aborted (they will be
// replayed from the source), and each record is visible once.
func TestKafkaSinkExactlyOnceRecoversAfterFailure(t *testing.T) {
	_, addrs := newKafka(t, 3, "out")
	ctx := context.Background()
	w := openSink(t, eoSink(addrs), 0)
	a := writeN(t, w, "a", 10)
	state, err := w.(Transactional).PreCommit(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	writeN(t, w, "lost", 4) // after the checkpoint: replayed after the restore
	w.Abort()               // the failure, before Commit(1)

	// A second failed attempt restores checkpoint 1 too, writes, and
	// dies before any checkpoint: its open transaction lingers.
	w2 := openSink(t, eoSink(addrs), 0)
	if err := w2.(Transactional).Recover(ctx, state); err != nil {
		t.Fatal(err)
	}
	writeN(t, w2, "lost2-", 3)
	if _, err := w2.(Transactional).PreCommit(ctx, 2); err != nil {
		t.Fatal(err)
	}
	writeN(t, w2, "lost3-", 3)
	w2.Abort()

	w3 := openSink(t, eoSink(addrs), 0)
	if err := w3.(Transactional).Recover(ctx, state); err != nil { // again: idempotent
		t.Fatal(err)
	}
	b := writeN(t, w3, "b", 5)
	if _, err := w3.(Transactional).PreCommit(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := w3.(Transactional).Commit(ctx, 2); err != nil {
		t.Fatal(err)
	}
	want := slices.Concat(a, b)
	slices.Sort(want)
	// Reading up to the last stable offset ends only if no transaction is
	// left open, so this also proves the lingering ones were aborted.
	if got := committedValues(t, addrs, "out"); !slices.Equal(got, want) {
		t.Fatalf("committed %v\nwant %v", got, want)
	}
	if err := w3.Close(); err != nil {
		t.Fatal(err)
	}
}
