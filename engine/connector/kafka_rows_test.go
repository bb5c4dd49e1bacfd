package connector

import (
	"cmp"
	"context"
	"errors"
	"io"
	"reflect"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// A record whose value is a row (value.Row, the engine's other form of a
// map) becomes the same Kafka record as the equal map: topic, key, value
// and headers computed by CEL over it, and the whole value encoded as JSON
// when the sink has no value expression, rows nested in maps included.
func TestKafkaSinkRowsAreMaps(t *testing.T) {
	_, addrs := newKafka(t, 1, "out", "other")
	m := map[string]any{"v": "a", "n": int64(3), "tags": []any{"x", "y"},
		"inner": map[string]any{"z": 1.5, "nil": nil}}
	asRow := map[string]any{"v": "a", "n": int64(3), "tags": []any{"x", "y"},
		"inner": value.RowOf(map[string]any{"z": 1.5, "nil": nil})}
	sinks := map[string]spec.KafkaSink{
		"expressions": {BootstrapServers: addrs, TopicExpression: "record.n == 3 ? 'other' : 'out'",
			Key: "record.v", Value: "{'v': record.v, 'n': record.n, 'inner': record.inner, 'has': has(record.inner.z), 'size': size(record)}",
			Headers: map[string]string{"n": "string(record.n)", "inner": "record.inner"}},
		"whole record": {BootstrapServers: addrs, Topic: "out", Key: "record.inner"},
	}
	for name, k := range sinks {
		t.Run(name, func(t *testing.T) {
			w := openSink(t, k, 0).(*kafkaWriter)
			defer w.Abort()
			want, err := w.record(&value.Record{Value: m, Ts: 7})
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range []any{value.RowOf(m), value.RowOf(asRow), asRow} {
				got, err := w.record(&value.Record{Value: v, Ts: 7})
				if err != nil {
					t.Fatalf("%v: %v", v, err)
				}
				if got.Topic != want.Topic || string(got.Key) != string(want.Key) || string(got.Value) != string(want.Value) ||
					!reflect.DeepEqual(got.Headers, want.Headers) || !got.Timestamp.Equal(want.Timestamp) {
					t.Fatalf("record of %v:\n got %s %q %q %v\nwant %s %q %q %v", v, got.Topic, got.Key, got.Value, got.Headers,
						want.Topic, want.Key, want.Value, want.Headers)
				}
			}
		})
	}
}

// The Kafka source makes rows when value.UseRows is on as it opens: each
// the row of the map it makes otherwise (same fields and values, same
// JSON), whatever the formats.
func TestKafkaSourceRowsAreItsMaps(t *testing.T) {
	_, addrs := newKafka(t, 2, "t")
	kafkaFill(t, addrs, "t", 2, 5, 1000)
	r := kafkaRec("t", 1, "k", `{"a":[1,{"b":null}],"c":"d"}`, 2000)
	r.Headers = []kgo.RecordHeader{{Key: "h", Value: []byte("v")}, {Key: "bin", Value: []byte{0xff, 0}}}
	kafkaProduce(t, addrs, r, &kgo.Record{Topic: "t", Partition: 0}) // the last without key and value
	for _, f := range []spec.KafkaFormat{spec.KafkaString, spec.KafkaJSON, spec.KafkaBytes} {
		k := spec.KafkaSource{BootstrapServers: addrs, Topics: []string{"t"}, KeyFormat: spec.KafkaBytes,
			StoppingOffsets: &spec.KafkaOffsets{Mode: spec.OffsetsLatest}}
		if f == spec.KafkaJSON {
			// Only the last record of each partition is JSON (or null).
			k.StartingOffsets = &spec.KafkaOffsets{Mode: spec.OffsetsSpecific, Offsets: []spec.KafkaPartitionOffset{
				{Topic: "t", Partition: 0, Offset: 5}, {Topic: "t", Partition: 1, Offset: 5}}}
		}
		k.Format = f
		read := func(rows bool) []any {
			rd := openKafka(t, k, 0, 1).(*kafkaReader)
			rd.rows = rows
			var out []any
			for {
				err := rd.Read(context.Background(), 100, func(v any) { out = append(out, v.(*Timestamped).Value) })
				if errors.Is(err, io.EOF) {
					return out
				}
				if err != nil {
					t.Fatal(err)
				}
			}
		}
		// Partitions interleave differently from one read to the next:
		// compare in (partition, offset) order.
		byPos := func(a, b any) int {
			pa, _ := value.Field(a, "partition")
			pb, _ := value.Field(b, "partition")
			oa, _ := value.Field(a, "offset")
			ob, _ := value.Field(b, "offset")
			return cmp.Or(cmp.Compare(pa.(int64), pb.(int64)), cmp.Compare(oa.(int64), ob.(int64)))
		}
		maps, rows := read(false), read(true)
		slices.SortFunc(maps, byPos)
		slices.SortFunc(rows, byPos)
		if len(maps) != len(rows) || len(maps) < 2 {
			t.Fatalf("format %s: %d maps, %d rows", f, len(maps), len(rows))
		}
		for i := range maps {
			if _, ok := rows[i].(*value.Row); !ok {
				t.Fatalf("format %s: a reader making rows emitted %T", f, rows[i])
			}
			if !reflect.DeepEqual(value.Plain(rows[i]), maps[i]) || string(value.AppendJSON(nil, rows[i])) != string(value.AppendJSON(nil, maps[i])) {
				t.Fatalf("format %s: row %v is not map %v", f, rows[i], maps[i])
			}
		}
	}
}
