package exchange

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/task"
)

// BenchmarkExchange moves batches of 512 records (~100 B each) from a
// producer goroutine to a consumer goroutine through a real gRPC client and
// server over a loopback TCP socket, in one process: encoding, HTTP/2 flow
// control and decoding, as between two STREAMING workers. (Two processes
// and the in-process executor are compared job-level by
// worker/runner's BenchmarkStreamingExchange.) ns/op is per batch; MB/s
// counts encoded bytes.
func BenchmarkExchange(b *testing.B) {
	batch := records(0, 0, 512, 80)
	size := int64(len(AppendBatch(nil, &batch)))
	srv := NewServer(1, 0, 8)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Stop(time.Second)
	c := NewClient(fixed(l.Addr().String()))
	defer c.Close()
	ctx := context.Background()
	// Open the stream outside the timing.
	if err := c.Send(ctx, testEdge, 0, records(0, 0, 1, 1)); err != nil {
		b.Fatal(err)
	}
	<-srv.Inbox()
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		for i := 0; i < b.N; i++ {
			if err := c.Send(ctx, testEdge, 0, task.Batch{Channel: batch.Channel, Elems: slices.Clone(batch.Elems)}); err != nil {
				errc <- err
				return
			}
		}
		errc <- c.Send(ctx, testEdge, 0, end(0))
	}()
	for n := 0; n < b.N; {
		if got := <-srv.Inbox(); len(got.Elems) == 512 {
			n++
		}
	}
	<-srv.Inbox()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)*512/time.Since(start).Seconds(), "records/s")
}
