package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// A worker's /metrics registry shows its Kafka source's consumer lag: per
// partition the records not read yet, their sum (pendingRecords) and
// maximum, as the subtask reads.
func TestWorkerMetricsKafkaSourceLag(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "in"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for i := 0; i < 30; i++ { // 10 in partition 0, 20 in partition 1
		recs = append(recs, &kgo.Record{Topic: "in", Partition: int32(min(i%3, 1)), Value: []byte(fmt.Sprint(i))})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	src := &connector.KafkaSource{Spec: spec.KafkaSource{BootstrapServers: c.ListenAddrs(), Topics: []string{"in"},
		StoppingOffsets: &spec.KafkaOffsets{Mode: spec.OffsetsLatest}}}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newSourceLag(map[string]connector.Source{"in": src, "other": &connector.KafkaSource{}}))
	gauges := func() map[string]float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				name := mf.GetName()
				for _, l := range m.GetLabel() {
					name += fmt.Sprintf(",%s=%s", l.GetName(), l.GetValue())
				}
				out[name] = m.GetGauge().GetValue()
			}
		}
		return out
	}
	if g := gauges(); len(g) != 0 {
		t.Fatalf("metrics before the source opened: %v", g)
	}
	rd, err := src.Open(ctx, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	read := map[int64]float64{}
	for n := 0; n < 12; {
		err := rd.Read(ctx, 12-n, func(v any) {
			p, _ := value.Field(v.(*connector.Timestamped).Value, "partition")
			read[p.(int64)]++
			n++
		})
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
	}
	want := map[string]float64{
		"flinkjob_worker_source_records_lag,partition=0,step=in,topic=in": 10 - read[0],
		"flinkjob_worker_source_records_lag,partition=1,step=in,topic=in": 20 - read[1],
		"flinkjob_worker_source_pending_records,step=in":                  18,
		"flinkjob_worker_source_records_lag_max,step=in":                  max(10-read[0], 20-read[1]),
	}
	g := gauges()
	if len(g) != len(want) {
		t.Fatalf("metrics %v, want %v", g, want)
	}
	for k, v := range want {
		if g[k] != v {
			t.Fatalf("%s = %v, want %v (all: %v)", k, g[k], v, g)
		}
	}
}
