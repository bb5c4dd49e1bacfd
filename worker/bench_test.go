package worker_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/task"
	"github.com/flinkjob/flinkjob/engine/value"
	"github.com/flinkjob/flinkjob/internal/testminio"
	"github.com/flinkjob/flinkjob/worker"
)

// BenchmarkS3Materialize measures writing one BATCH partition of 64 Ki
// records of ~1 KiB (~64 MiB encoded) to MinIO:
//
//   - recordwriter: LocationStore.Create + value.RecordWriter + Close, the
//     path a BATCH subtask's output takes (streamed multipart upload);
//   - runbatch: task.RunBatch of a datagen stage whose REBALANCE output is
//     materialized through LocationStore (adds CEL evaluation and the
//     manifest; records are generated, not pre-encoded);
//   - putobject-known-size: raw minio-go PutObject of the same bytes from
//     memory with their size known (minio-go's best case);
//   - putobject-streamed: raw PutObject of the same bytes with size -1 and
//     LocationStore's 16 MiB parts.
//
// MB/s is over the encoded partition bytes for all four.
func BenchmarkS3Materialize(b *testing.B) {
	const records = 64 << 10
	s3 := testminio.Start(b)
	bucket := testminio.Bucket(b, s3)
	ctx := context.Background()
	pad := strings.Repeat("m", 1000)

	// The encoded partition, as RecordWriter frames it.
	var encoded bytes.Buffer
	rw := value.NewRecordWriter(&encoded)
	for i := 0; i < records; i++ {
		rw.Write(&value.Record{Value: map[string]any{"id": int64(i), "payload": pad}, Ts: value.NoTimestamp})
	}
	rw.Flush()
	size := int64(encoded.Len())

	b.Run("recordwriter", func(b *testing.B) {
		store, err := worker.NewLocationStore(fmt.Sprintf("s3://%s/rw/", bucket), s3)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			w, err := store.Create(ctx, 0, 0, i)
			if err != nil {
				b.Fatal(err)
			}
			rw := value.NewRecordWriter(w)
			for j := 0; j < records; j++ {
				if err := rw.Write(&value.Record{Value: map[string]any{"id": int64(j), "payload": pad}, Ts: value.NoTimestamp}); err != nil {
					b.Fatal(err)
				}
			}
			if err := rw.Flush(); err != nil {
				b.Fatal(err)
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			if rw.Bytes() != size {
				b.Fatalf("wrote %d bytes, want %d", rw.Bytes(), size)
			}
		}
	})
	b.Run("runbatch", func(b *testing.B) {
		job := &spec.Job{RuntimeMode: spec.Batch, Parallelism: 1, Steps: []spec.Step{
			{Name: "gen", Source: &spec.Source{Datagen: &spec.Datagen{Value: "{'id': seq, 'payload': '" + pad + "'}", Count: ptr(int64(records))}}},
			{Name: "out", Partitioning: spec.Rebalance, Sink: &spec.Sink{Discard: &spec.DiscardSink{}}},
		}}
		p, err := plan.New(job, plan.Options{})
		if err != nil {
			b.Fatal(err)
		}
		st := p.Stages[0]
		src, err := connector.NewSource(st.Head().Step.Source, st.Head().Exprs.Datagen, st.Head().Fields, connector.Env{})
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			store, err := worker.NewLocationStore(fmt.Sprintf("s3://%s/runbatch/%d/", bucket, i), s3)
			if err != nil {
				b.Fatal(err)
			}
			m, err := task.RunBatch(ctx, task.Config{Plan: p, Stage: st, Sources: map[string]connector.Source{"gen": src}}, store)
			if err != nil {
				b.Fatal(err)
			}
			if m.Records != records || m.Bytes != size {
				b.Fatalf("manifest %+v, want %d records, %d bytes", m, records, size)
			}
		}
	})
	client, err := minio.New(s3.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s3.AccessKey, s3.SecretKey, "")})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("putobject-known-size", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			_, err := client.PutObject(ctx, bucket, fmt.Sprintf("raw/known-%d", i), bytes.NewReader(encoded.Bytes()), size, minio.PutObjectOptions{})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("putobject-streamed", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			_, err := client.PutObject(ctx, bucket, fmt.Sprintf("raw/streamed-%d", i), bytes.NewReader(encoded.Bytes()), -1, minio.PutObjectOptions{PartSize: 16 << 20})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

func ptr[T any](v T) *T { return &v }
