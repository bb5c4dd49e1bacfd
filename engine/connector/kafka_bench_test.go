package connector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// BenchmarkKafkaSink writes records through the sink against kfake, with
// a checkpoint (PreCommit, then Commit) every 10,000 records: at-least-once
// flushes there, exactly-once also ends a transaction and starts the next.
// Compare the two sub-benchmarks' records/s in one run for the cost of
// transactions.
func BenchmarkKafkaSink(b *testing.B) {
	for _, g := range []string{spec.DeliveryAtLeastOnce, spec.DeliveryExactlyOnce} {
		b.Run(g, func(b *testing.B) {
			_, addrs := newKafka(b, 3, "out")
			k := spec.KafkaSink{BootstrapServers: addrs, Topic: "out", Key: "record.k", DeliveryGuarantee: g}
			if g == spec.DeliveryExactlyOnce {
				k.TransactionalIDPrefix = "bench"
			}
			s, err := NewKafkaSink(k)
			if err != nil {
				b.Fatal(err)
			}
			w, err := s.Open(context.Background(), 0, 1)
			if err != nil {
				b.Fatal(err)
			}
			r := &value.Record{Value: map[string]any{"k": "key-1", "v": int64(1), "note": "some payload text"}, Ts: 1000}
			benchWrite(b, w, 10_000, func(int) *value.Record { return r })
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkKafkaSource reads pre-written records (bounded) with one
// subtask: values as strings and as decoded JSON from 3 partitions, and
// strings from 24 (the per-partition work per record), making maps and
// rows (A/B in one run). cpu-ns/op is the process's CPU time per record
// (the in-process broker's and GC included), steadier than records/s on a
// loaded machine.
func BenchmarkKafkaSource(b *testing.B) {
	const n = 100000
	fill := func(partitions int32) []string {
		_, addrs := newKafka(b, partitions, "in")
		s, err := NewKafkaSink(spec.KafkaSink{BootstrapServers: addrs, Topic: "in"})
		if err != nil {
			b.Fatal(err)
		}
		w, err := s.Open(context.Background(), 0, 1)
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < n; i++ {
			if err := w.Write(&value.Record{Value: map[string]any{"i": int64(i), "s": fmt.Sprint("v", i)}, Ts: int64(i)}); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		return addrs
	}
	three, many := fill(3), fill(24)
	for _, c := range []struct {
		name  string
		addrs []string
		f     spec.KafkaFormat
	}{{"string", three, spec.KafkaString}, {"json", three, spec.KafkaJSON}, {"string-24-partitions", many, spec.KafkaString}} {
		for _, rows := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/rows=%v", c.name, rows), func(b *testing.B) {
				k := spec.KafkaSource{BootstrapServers: c.addrs, Topics: []string{"in"}, Format: c.f,
					StoppingOffsets: &spec.KafkaOffsets{Mode: spec.OffsetsLatest}}
				old := value.UseRows
				defer func() { value.UseRows = old }()
				b.ResetTimer()
				cpu0 := processCPU()
				total := 0
				for i := 0; i < b.N; i++ {
					// Counts only: readKafka would turn rows into maps.
					value.UseRows = rows // read at Open
					rd := openKafka(b, k, 0, 1)
					for {
						err := rd.Read(context.Background(), 1000, func(any) { total++ })
						if errors.Is(err, io.EOF) {
							break
						}
						if err != nil {
							b.Fatal(err)
						}
					}
					rd.Close()
				}
				if total != b.N*n {
					b.Fatalf("read %d records in %d passes, want %d", total, b.N, b.N*n)
				}
				b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "records/s")
				b.ReportMetric(float64(processCPU()-cpu0)/float64(total), "cpu-ns/op")
			})
		}
	}
}
