package exchange

import (
	"context"
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
	srv, c := benchPair(b)
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	errc := produce(c, batch, b.N)
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

// benchPair serves stage 1 subtask 0 on loopback and returns the server
// and a client whose stream to it is already open (outside the timing).
func benchPair(b *testing.B) (*Server, *Client) {
	srv, addr := serve(b, 8, 1)
	c := NewClient(fixed(addr))
	b.Cleanup(c.Close)
	if err := c.Send(context.Background(), testEdge, 0, records(0, 0, 1, 1)); err != nil {
		b.Fatal(err)
	}
	<-srv.Inbox()
	return srv, c
}

// produce sends n copies of batch, then the end of channel 0, from a
// goroutine; the channel gets the first error, or nil.
func produce(c *Client, batch task.Batch, n int) <-chan error {
	errc := make(chan error, 1)
	go func() {
		ctx := context.Background()
		for i := 0; i < n; i++ {
			if err := c.Send(ctx, testEdge, 0, task.Batch{Channel: batch.Channel, Elems: slices.Clone(batch.Elems)}); err != nil {
				errc <- err
				return
			}
		}
		errc <- c.Send(ctx, testEdge, 0, end(0))
	}()
	return errc
}
