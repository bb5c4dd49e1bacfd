package connector_test

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/enginetest"
	"github.com/flinkjob/flinkjob/engine/local"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
	"github.com/flinkjob/flinkjob/internal/kafkatest"
)

// A kafka source with malformedOutput routes a message whose value (or
// key) its format cannot decode to the side output, {error, raw,
// location}, and reads on; without it the job fails with that message.
// A real Kafka-protocol broker (kfake), both modes.
func TestKafkaMalformedRouted(t *testing.T) {
	addr := connector.KafkaForTest(t, 2, "orders")
	connector.ProduceForTest(t, addr, []*kgo.Record{
		{Topic: "orders", Partition: 0, Key: []byte(`"a"`), Value: []byte(`{"id": 1}`)},
		{Topic: "orders", Partition: 0, Key: []byte(`"a"`), Value: []byte(`{"id": `)},
		{Topic: "orders", Partition: 0, Key: []byte(`"a"`), Value: []byte(`{"id": 2}`)},
		{Topic: "orders", Partition: 1, Key: []byte(`b`), Value: []byte(`{"id": 3}`)},
		{Topic: "orders", Partition: 1, Key: []byte(`"b"`), Value: []byte("\xff\x00")},
		{Topic: "orders", Partition: 1, Key: []byte(`"b"`), Value: []byte(`{"id": 4}`)},
	})
	job := func(route bool) string {
		mo, dead := "", ""
		if route {
			mo = "\n      malformedOutput: bad-orders"
			dead = "  - name: dead-letters\n    inputs: [bad-orders]\n    sink: {call: bad}\n"
		}
		return fmt.Sprintf(`
parallelism: 2
steps:
  - name: orders
    source:
      kafka: {bootstrapServers: [%q], topics: [orders], format: json, keyFormat: json, stoppingOffsets: {mode: latest}}%s
  - name: ids
    map: record.value.id
  - name: good
    sink: {call: good}
%s`, addr, mo, dead)
	}
	_, err := enginetest.TryRun(enginetest.Parse(t, job(false)), spec.Batch, local.Options{})
	if err == nil || !strings.Contains(err.Error(), "kafka orders/") {
		t.Fatalf("without malformedOutput: err %v, want the decode failure", err)
	}
	for _, mode := range []spec.RuntimeMode{spec.Streaming, spec.Batch} {
		t.Run(string(mode), func(t *testing.T) {
			c := enginetest.Run(t, enginetest.Parse(t, job(true)), mode, local.Options{})
			if got := strings.Join(c.SortedJSON("good"), " "); got != "1 2 4" {
				t.Errorf("good: %s, want 1 2 4", got)
			}
			got := map[string]map[string]any{}
			for _, v := range c.Values("bad") {
				m := value.Plain(v).(map[string]any)
				got[m["location"].(string)] = m
			}
			want := map[string][2]any{
				"orders/0@1": {`{"id": `, "kafka orders/0 offset 1: value: "},
				"orders/1@0": {`{"id": 3}`, "kafka orders/1 offset 0: key: "},
				"orders/1@1": {[]byte("\xff\x00"), "kafka orders/1 offset 1: value: "},
			}
			if len(got) != len(want) || len(c.Values("bad")) != len(want) {
				t.Fatalf("bad: got %v, want %d records", got, len(want))
			}
			for loc, w := range want {
				m := got[loc]
				if m == nil {
					t.Errorf("no malformed record for %s", loc)
					continue
				}
				if fmt.Sprintf("%#v", m["raw"]) != fmt.Sprintf("%#v", w[0]) || !strings.HasPrefix(m["error"].(string), w[1].(string)) || len(m) != 3 {
					t.Errorf("%s: got %v, want raw %#v and an error starting %q", loc, m, w[0], w[1])
				}
			}
		})
	}
}

// TestKafkaMalformedPositions: a routed message's offset is read like any
// other's, so a reader restored at a position taken after it starts at the
// next message (neither repeated nor lost).
func TestKafkaMalformedPositions(t *testing.T) {
	addr := connector.KafkaForTest(t, 1, "in")
	connector.ProduceForTest(t, addr, []*kgo.Record{
		{Topic: "in", Value: []byte(`1`)}, {Topic: "in", Value: []byte(`x`)}, {Topic: "in", Value: []byte(`3`)},
	})
	src, err := connector.NewSource(&spec.Source{MalformedOutput: "bad", Kafka: &spec.KafkaSource{BootstrapServers: []string{addr},
		Topics: []string{"in"}, Format: spec.KafkaJSON, StoppingOffsets: &spec.KafkaOffsets{Mode: spec.OffsetsLatest}}}, nil, nil, connector.Env{})
	if err != nil {
		t.Fatal(err)
	}
	describe := func(v any) string {
		if m, ok := v.(*connector.Malformed); ok {
			return "malformed " + m.Location + " " + string(m.Raw)
		}
		if ts, ok := v.(*connector.Timestamped); ok {
			v = ts.Value
		}
		return fmt.Sprint(value.Plain(v).(map[string]any)["value"])
	}
	ctx := context.Background()
	for k := 0; k <= 3; k++ {
		r, err := src.Open(ctx, 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for len(got) < k {
			if err := r.Read(ctx, 1, func(v any) { got = append(got, describe(v)) }); err != nil && err != io.EOF {
				t.Fatal(err)
			}
		}
		pos, err := r.(connector.Positioned).Position()
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		r, _ = src.Open(ctx, 0, 1)
		if err := r.(connector.Positioned).Seek(pos); err != nil {
			t.Fatal(err)
		}
		for {
			err := r.Read(ctx, 10, func(v any) { got = append(got, describe(v)) })
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		r.Close()
		if s := strings.Join(got, ","); s != "1,malformed in/0@1 x,3" {
			t.Errorf("restored after %d: %s", k, s)
		}
	}
}

// TestKafkaMalformedTimestamp: a message whose timestamp expression fails
// goes to the side output with its value and location.
func TestKafkaMalformedTimestamp(t *testing.T) {
	addr := connector.KafkaForTest(t, 1, "stamped")
	connector.ProduceForTest(t, addr, []*kgo.Record{
		{Topic: "stamped", Value: []byte(`{"at": 1000}`)},
		{Topic: "stamped", Value: []byte(`{"at": "later"}`)},
		{Topic: "stamped", Value: []byte(`{"at": 3000}`)},
	})
	job := fmt.Sprintf(`
steps:
  - name: stamped
    source:
      kafka: {bootstrapServers: [%q], topics: [stamped], format: json, stoppingOffsets: {mode: latest}}
      timestamp: record.value.at
      malformedOutput: bad-stamps
  - name: ats
    map: record.value.at
  - name: good
    sink: {call: good}
  - name: dead-letters
    inputs: [bad-stamps]
    sink: {call: bad}
`, addr)
	for _, mode := range []spec.RuntimeMode{spec.Streaming, spec.Batch} {
		t.Run(string(mode), func(t *testing.T) {
			c := enginetest.Run(t, enginetest.Parse(t, job), mode, local.Options{})
			if got := strings.Join(c.SortedJSON("good"), " "); got != "1000 3000" {
				t.Errorf("good: %s, want 1000 3000", got)
			}
			bad := c.Values("bad")
			if len(bad) != 1 {
				t.Fatalf("bad: %v, want 1 record", bad)
			}
			m := value.Plain(bad[0]).(map[string]any)
			if m["location"] != "stamped/0@1" || m["raw"] != `{"at": "later"}` || !strings.HasPrefix(m["error"].(string), "source.timestamp: ") {
				t.Errorf("bad: %v", m)
			}
		})
	}
}

// TestKafkaMalformedExactlyOnceAcrossRestore: the harness of
// TestKafkaExactlyOnceJobAcrossRestore with one value in five not JSON:
// a STREAMING job cancelled after its second checkpoint and restored
// writes every good value to one topic and every malformed message's
// location to another, each exactly once (exactly-once Kafka sinks, read
// committed), so a routed message's offset is checkpointed with the
// records around it.
func TestKafkaMalformedExactlyOnceAcrossRestore(t *testing.T) {
	addr := connector.KafkaForTest(t, 3, "in", "out", "bad")
	const n = 9000
	var recs []*kgo.Record
	var wantOut, wantBad []string
	next := [3]int64{}
	for i := 0; i < n; i++ {
		p := int32(i % 3)
		v := fmt.Sprintf(`"r%05d"`, i)
		if i%5 == 2 {
			v = fmt.Sprintf("r%05d", i)
			wantBad = append(wantBad, fmt.Sprintf("in/%d@%d", p, next[p]))
		} else {
			wantOut = append(wantOut, fmt.Sprintf("r%05d", i))
		}
		next[p]++
		recs = append(recs, &kgo.Record{Topic: "in", Partition: p, Value: []byte(v)})
	}
	connector.ProduceForTest(t, addr, recs)
	slices.Sort(wantOut)
	slices.Sort(wantBad)
	jobText := fmt.Sprintf(`
parallelism: 2
steps:
  - name: in
    source:
      kafka:
        bootstrapServers: [%[1]q]
        topics: [in]
        format: json
        stoppingOffsets: {mode: latest}
      malformedOutput: bad-in
  - name: out
    sink:
      kafka: {bootstrapServers: [%[1]q], topic: out, value: record.value, format: string,
              deliveryGuarantee: exactly-once, transactionalIdPrefix: malformed-out}
  - name: dead-letters
    inputs: [bad-in]
    sink:
      kafka: {bootstrapServers: [%[1]q], topic: bad, value: record.location, format: string,
              deliveryGuarantee: exactly-once, transactionalIdPrefix: malformed-bad}
`, addr)
	p, p1 := boundedAndUnbounded(t, jobText)
	dir := t.TempDir()
	if err1 := runToSecondCheckpoint(t, p1, dir); err1 == nil {
		t.Fatal("the unbounded first run ended without an error")
	}
	runRestored(t, p, dir, "restored run")
	for _, c := range []struct {
		topic string
		want  []string
	}{{"out", wantOut}, {"bad", wantBad}} {
		got := kafkatest.ReadCommitted(t, addr, c.topic)
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: %d records, want %d exactly once", c.topic, len(got), len(c.want))
		}
	}
}
