package exchange

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/task"
)

// cpuNow is this process's user+system CPU time.
func cpuNow() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkExchangeCPU sends batches of n records (~100 B each) plus a
// watermark — the shape of a source's output after every read batch, which
// is small when a filter or a join is selective — through a real gRPC
// client and server on loopback, with the consumer draining the inbox as a
// task would. It reports the CPU time (both sides, user+system) per batch
// and per record: with small batches the per-message costs (goroutine
// hand-offs, syscalls, HTTP/2 framing) dominate.
func BenchmarkExchangeCPU(b *testing.B) {
	for _, n := range []int{1, 16, 128, 512} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			batch := records(0, 0, n, 80)
			batch.Elems = append(batch.Elems, task.Element{Kind: task.KindWatermark, Wm: 12345})
			srv, c := benchPair(b)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuNow()
			errc := produce(c, batch, b.N)
			recs := 0
			for recs < b.N*n {
				got := <-srv.Inbox()
				for _, el := range got.Elems {
					if el.Kind == task.KindRecord {
						recs++
					}
				}
			}
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
			cpu := cpuNow() - cpu0
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/batch")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*n), "cpu-ns/record")
		})
	}
}
