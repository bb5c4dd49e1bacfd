package connector_test

// Kafka jobs run by the in-process executor (engine/local) against kfake:
// the same windowed job in BATCH and STREAMING, and a STREAMING job with
// checkpoints killed mid-run and restored, writing exactly once.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"sigs.k8s.io/yaml"

	"github.com/flinkjob/flinkjob/engine/checkpoint"
	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/enginetest"
	"github.com/flinkjob/flinkjob/engine/local"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
	"github.com/flinkjob/flinkjob/internal/kafkadev"
	"github.com/flinkjob/flinkjob/internal/kafkatest"
)

func parse(t *testing.T, src string) *spec.Job {
	t.Helper()
	job := enginetest.Parse(t, src)
	if _, err := plan.Build(job, plan.Options{}); err != nil {
		t.Fatal(err)
	}
	return job
}

// Readings keyed by sensor, out of order by up to 3 s, in 4 partitions;
// event time is the Kafka timestamp. Ten-second windows count them per
// sensor, in BATCH (stoppingOffsets makes the source bounded) and in
// STREAMING (per-partition watermarks fire the windows), with the same
// results, written to Kafka and read back.
func TestKafkaWindowedJobSameResultsInBatchAndStreaming(t *testing.T) {
	addr := connector.KafkaForTest(t, 4, "readings", "out-STREAMING", "out-BATCH")
	var recs []*kgo.Record
	want := map[string]int{}
	for i := 0; i < 400; i++ {
		sensor := fmt.Sprintf("s%d", i%5)
		ts := int64(1_700_000_000_000) + int64(i)*250 - int64((i*7919)%3000)
		recs = append(recs, &kgo.Record{Topic: "readings", Partition: int32(i % 4), Key: []byte(sensor),
			Value: []byte(fmt.Sprintf(`{"sensor":%q,"temp":%d}`, sensor, i%40)), Timestamp: time.UnixMilli(ts)})
		want[fmt.Sprintf(`{"count":%d,"key":%q,"windowStart":%d}`, 0, sensor, ts-ts%10000)]++
	}
	connector.ProduceForTest(t, addr, recs)
	var wantOut []string
	for k, n := range want {
		wantOut = append(wantOut, strings.Replace(k, `"count":0`, fmt.Sprintf(`"count":%d`, n), 1))
	}
	slices.Sort(wantOut)

	for _, mode := range []spec.RuntimeMode{spec.Streaming, spec.Batch} {
		t.Run(string(mode), func(t *testing.T) {
			job := parse(t, fmt.Sprintf(`
parallelism: 2
steps:
  - name: readings
    source:
      kafka:
        bootstrapServers: [%q]
        topics: [readings]
        format: json
        stoppingOffsets: {mode: latest}
      watermarks: {maxOutOfOrderness: 3s}
  - name: per-sensor
    keyBy: record.value.sensor
    window:
      type: tumbling
      size: 10s
      aggregate:
        fields: [{name: count, count: true}]
  - name: out
    sink:
      kafka:
        bootstrapServers: [%q]
        topic: out-%s
        value: "{'key': record.key, 'windowStart': record.windowStart, 'count': record.count}"
        deliveryGuarantee: exactly-once
        transactionalIdPrefix: windows-%s
`, addr, addr, mode, mode))
			if r := plan.ResolveMode(job, spec.Automatic); r != spec.Batch {
				t.Fatalf("AUTOMATIC resolves a bounded kafka job to %s", r)
			}
			enginetest.Run(t, job, mode, local.Options{})
			got := kafkatest.ReadCommitted(t, addr, "out-"+string(mode))
			for i, g := range got {
				v, err := value.FromJSON([]byte(g))
				if err != nil {
					t.Fatal(err)
				}
				got[i] = string(value.ToJSON(v))
			}
			slices.Sort(got)
			if !slices.Equal(got, wantOut) {
				t.Fatalf("windows:\n got %v\nwant %v", got, wantOut)
			}
		})
	}
}

// A STREAMING job with checkpoints reads Kafka and writes Kafka exactly
// once: cancelled right after a checkpoint completes, restored from the
// latest checkpoint, the output topic (read_committed) holds every input
// record once. The sink runs at another parallelism than the source, so
// records cross a shuffle and the barriers are aligned.
func TestKafkaExactlyOnceJobAcrossRestore(t *testing.T) {
	addr := connector.KafkaForTest(t, 3, "in", "out")
	const n = 30000
	var recs []*kgo.Record
	var want []string
	for i := 0; i < n; i++ {
		v := fmt.Sprintf("r%05d", i)
		want = append(want, v)
		recs = append(recs, &kgo.Record{Topic: "in", Partition: int32(i % 3), Value: []byte(v)})
	}
	connector.ProduceForTest(t, addr, recs)
	slices.Sort(want)
	// The first run reads "in" unbounded, so it is still running when
	// its second checkpoint completes however slow the machine (bounded,
	// its 30000 records could all be copied before that); the restored
	// run stops at the topic's end (a restored partition without a stop
	// offset takes stoppingOffsets then).
	jobText := fmt.Sprintf(`
parallelism: 2
steps:
  - name: in
    source:
      kafka:
        bootstrapServers: [%q]
        topics: [in]
        groupId: copier
        stoppingOffsets: {mode: latest}
  - name: upper
    map: "record.value.upperAscii()"
  - name: out
    parallelism: 3
    sink:
      kafka:
        bootstrapServers: [%q]
        topic: out
        format: string
        deliveryGuarantee: exactly-once
        transactionalIdPrefix: copier-out
`, addr, addr)
	p, p1 := boundedAndUnbounded(t, jobText)
	dir := t.TempDir()
	err1 := runToSecondCheckpoint(t, p1, dir)
	if err1 == nil {
		t.Fatal("the unbounded first run ended without an error")
	}
	runRestored(t, p, dir, "restored run")
	got := kafkatest.ReadCommitted(t, addr, "out")
	slices.Sort(got)
	upper := make([]string, len(want))
	for i, w := range want {
		upper[i] = strings.ToUpper(w)
	}
	if len(got) != len(upper) {
		t.Fatalf("output has %d records, want %d (first run: %v)", len(got), len(upper), err1)
	}
	if !slices.Equal(got, upper) {
		for i := range got {
			if got[i] != upper[i] {
				t.Fatalf("first difference at %d: got %s want %s", i, got[i], upper[i])
			}
		}
	}
}

// The samples in config/samples/kafka run against the development broker
// (flinkjob kafka-broker): produce-readings fills the topic, and
// windowed-counts gives the same windows in STREAMING and in BATCH
// (AUTOMATIC), none of them late.
func TestKafkaSamples(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := kafkadev.Start(kafkadev.Config{Listen: addr, Topics: map[string]int32{"readings": 4, "counts": 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	load := func(name string) *spec.Job {
		b, err := os.ReadFile("../../config/samples/kafka/" + name)
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			Spec spec.Job `json:"spec"`
		}
		if err := yaml.Unmarshal([]byte(strings.ReplaceAll(string(b), "127.0.0.1:9092", addr)), &m); err != nil {
			t.Fatal(err)
		}
		return &m.Spec
	}
	enginetest.Run(t, load("produce-readings.yaml"), spec.Automatic, local.Options{})
	job := load("windowed-counts.yaml")
	var prev []string
	for _, mode := range []spec.RuntimeMode{spec.Streaming, spec.Automatic} {
		p, err := plan.New(job, plan.Options{Mode: mode})
		if err != nil {
			t.Fatal(err)
		}
		var late int64
		ex, err := local.New(p, local.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := ex.Run(context.Background()); err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		for _, s := range ex.Progress() {
			late += s.LateDropped
		}
		if late != 0 {
			t.Errorf("%s: %d readings dropped as late", mode, late)
		}
		all := kafkatest.ReadCommitted(t, addr, "counts")
		got := slices.Clone(all[len(prev):])
		slices.Sort(got)
		if len(got) < 7*100 {
			t.Fatalf("%s: %d windows, want at least 700 (7 sensors, 1000 s)", mode, len(got))
		}
		if prev != nil && !slices.Equal(got, prev) {
			t.Fatalf("BATCH windows differ from STREAMING's")
		}
		prev = got
	}
}

// The offsets a Kafka source commits to its consumer group on checkpoint
// completion are exactly those stored in a completed checkpoint: the task
// takes each checkpoint's position with PositionFor(id), and the reader
// commits id's on CheckpointComplete(id). Each subtask commits its own
// partitions, so each subtask's committed offsets must equal its position
// in one completed checkpoint (never a mix, never ahead of one).
func TestKafkaGroupOffsetsAreACheckpointsPositions(t *testing.T) {
	addr := connector.KafkaForTest(t, 4, "in")
	var recs []*kgo.Record
	for i := 0; i < 40000; i++ {
		recs = append(recs, &kgo.Record{Topic: "in", Partition: int32(i % 4), Value: []byte(fmt.Sprint(i))})
	}
	connector.ProduceForTest(t, addr, recs)
	p, err := plan.New(parse(t, fmt.Sprintf(`
parallelism: 2
steps:
  - name: in
    source: {kafka: {bootstrapServers: [%q], topics: [in], groupId: g}}
  - name: out
    sink: {call: out}
`, addr)), plan.Options{Mode: spec.Streaming})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var done atomic.Int64
	opts := local.Options{CheckpointInterval: 10 * time.Millisecond, CheckpointDir: dir, RetainCheckpoints: 1000, BatchSize: 32,
		OnCheckpoint: func(id int64) {
			if done.Add(1) == 5 {
				cancel()
			}
		}}
	opts.Env.CallSink = enginetest.NewCollect().Sink
	if err := local.Run(ctx, p, opts); err == nil {
		t.Fatal("the unbounded job ended without an error")
	}
	if done.Load() < 5 {
		t.Fatalf("only %d checkpoints completed", done.Load())
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	offs, err := kadm.NewClient(cl).FetchOffsets(context.Background(), "g")
	if err != nil {
		t.Fatal(err)
	}
	committed := map[int32]int64{}
	offs.Each(func(o kadm.OffsetResponse) { committed[o.Partition] = o.At })
	store := checkpoint.LocalStore{Dir: dir}
	ids, err := checkpoint.Completed(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	latest := int64(0)
	for i := 0; i < 2; i++ {
		var match int64
		var mine map[int32]int64
		for _, id := range ids {
			b, err := checkpoint.Sub(store, checkpoint.DirName(id)).Get(context.Background(), checkpoint.SourcePositionName("in", i, 2))
			if err != nil {
				t.Fatal(err)
			}
			var ps []struct {
				P int32 `json:"p"`
				N int64 `json:"n"`
			}
			if err := json.Unmarshal(b, &ps); err != nil {
				t.Fatal(err)
			}
			pos := map[int32]int64{}
			for _, p := range ps {
				pos[p.P] = p.N
			}
			mine = map[int32]int64{}
			for part := range pos {
				if at, ok := committed[part]; ok {
					mine[part] = at
				}
			}
			if maps.Equal(mine, pos) {
				match = id
			}
		}
		if match == 0 {
			t.Fatalf("subtask %d: committed offsets %v are no completed checkpoint's positions (checkpoints %v)", i, mine, ids)
		}
		latest = max(latest, match)
	}
	if latest < 2 {
		t.Errorf("the group's offsets are those of checkpoint %d only", latest)
	}
}

// boundedAndUnbounded plans a STREAMING job, and the same job without its
// source's "stoppingOffsets: {mode: latest}" line: a first run that only
// ends when cancelled, and a restored run that ends.
func boundedAndUnbounded(t *testing.T, jobText string) (bounded, unbounded *plan.Plan) {
	t.Helper()
	bounded, err := plan.New(parse(t, jobText), plan.Options{Mode: spec.Streaming})
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(jobText, "        stoppingOffsets: {mode: latest}\n", "", 1)
	if text == jobText {
		t.Fatal("no stoppingOffsets line to drop")
	}
	if unbounded, err = plan.New(parse(t, text), plan.Options{Mode: spec.Streaming}); err != nil {
		t.Fatal(err)
	}
	return bounded, unbounded
}

// runToSecondCheckpoint runs p in process with a checkpoint every 10ms into
// dir and cancels it once its second checkpoint completes (mid-stream, in
// small batches). It fails t if the run ends before that and returns the
// run's error.
func runToSecondCheckpoint(t *testing.T, p *plan.Plan, dir string) error {
	t.Helper()
	// Unbounded, the run ends only by the cancel below, or by this
	// generous deadline if checkpoints never complete.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var checkpoints atomic.Int64
	err := local.Run(ctx, p, local.Options{CheckpointInterval: 10 * time.Millisecond, CheckpointDir: dir, BatchSize: 32,
		OnCheckpoint: func(int64) {
			if checkpoints.Add(1) == 2 {
				cancel()
			}
		}})
	if checkpoints.Load() < 2 {
		t.Fatalf("the first run ended (%v) before a second checkpoint", err)
	}
	return err
}

// runRestored runs p to its end, restored from the latest checkpoint in
// dir; what names the run in a failure.
func runRestored(t *testing.T, p *plan.Plan, dir, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := local.Run(ctx, p, local.Options{CheckpointInterval: 50 * time.Millisecond, CheckpointDir: dir, RestoreFrom: "latest"}); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
