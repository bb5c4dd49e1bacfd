package exchange

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/task"
	"github.com/flinkjob/flinkjob/engine/value"
)

// The exchange over a real gRPC server and client on a loopback TCP socket.

// testEdge is an edge into stage 1 (the consumer), as the task passes it.
var testEdge = &plan.Edge{ID: 0, To: &plan.Stage{ID: 1, Parallelism: 1}}

// serve starts a server for stage 1 subtask 0 on a loopback port.
func serve(t testing.TB, capacity, channels int) (*Server, string) {
	t.Helper()
	srv := NewServer(1, 0, capacity)
	srv.Channels = channels
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Stop(0) })
	return srv, l.Addr().String()
}

func fixed(addr string) Resolver {
	return func(int, int) (string, error) { return addr, nil }
}

func records(channel, from, n, payload int) task.Batch {
	b := task.Batch{Channel: channel}
	pad := strings.Repeat("x", payload)
	for i := from; i < from+n; i++ {
		b.Elems = append(b.Elems, task.Element{Kind: task.KindRecord,
			Rec: value.Record{Value: map[string]any{"id": int64(i), "pad": pad}, Ts: int64(i)}})
	}
	return b
}

func end(channel int) task.Batch {
	return task.Batch{Channel: channel, Elems: []task.Element{{Kind: task.KindWatermark, Wm: value.MaxWatermark}, {Kind: task.KindEnd}}}
}

func TestStreamsDeliverInOrderPerChannel(t *testing.T) {
	const producers, batches, per = 3, 40, 50
	srv, addr := serve(t, 4, producers)
	ctx := context.Background()
	var wg sync.WaitGroup
	clients := make([]*Client, producers)
	for p := 0; p < producers; p++ {
		c := NewClient(fixed(addr))
		clients[p] = c
		defer c.Close()
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; i < batches; i++ {
				if err := c.Send(ctx, testEdge, 0, records(p, i*per, per, 16)); err != nil {
					t.Errorf("producer %d: %v", p, err)
					return
				}
			}
			// The last Send returns once the receiver acknowledged it all.
			if err := c.Send(ctx, testEdge, 0, end(p)); err != nil {
				t.Errorf("producer %d end: %v", p, err)
			}
			if err := c.Send(ctx, testEdge, 0, end(p)); err == nil {
				t.Errorf("producer %d: a send after the end succeeded", p)
			}
		}(p)
	}
	next := make([]int64, producers)
	ended := 0
	timeout := time.After(20 * time.Second)
	for ended < producers {
		select {
		case b := <-srv.Inbox():
			for _, el := range b.Elems {
				switch el.Kind {
				case task.KindRecord:
					id := field(el.Rec.Value, "id").(int64)
					if id != next[b.Channel] || el.Rec.Ts != id {
						t.Fatalf("channel %d: got id %d ts %d, want %d", b.Channel, id, el.Rec.Ts, next[b.Channel])
					}
					next[b.Channel]++
				case task.KindEnd:
					ended++
				}
			}
		case <-timeout:
			t.Fatalf("timed out; %d channels ended, positions %v", ended, next)
		}
	}
	wg.Wait()
	var out int64
	for p, n := range next {
		if n != batches*per {
			t.Errorf("channel %d: %d records, want %d", p, n, batches*per)
		}
		out += clients[p].BytesOut.Load()
	}
	if in := srv.BytesIn.Load(); in != out || in == 0 {
		t.Errorf("bytes in %d, bytes out %d", in, out)
	}
}

func TestPeerThatStartsLateIsWaitedFor(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nobody listens yet
	c := NewClient(fixed(addr))
	defer c.Close()
	done := make(chan error, 1)
	go func() {
		if err := c.Send(context.Background(), testEdge, 0, records(0, 0, 3, 1)); err != nil {
			done <- err
			return
		}
		done <- c.Send(context.Background(), testEdge, 0, end(0))
	}()
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("send finished before the peer was up: %v", err)
	default:
	}
	srv := NewServer(1, 0, 8)
	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Stop(0)
	got, ended := 0, false
	for !ended {
		select {
		case b := <-srv.Inbox():
			for _, el := range b.Elems {
				if el.Kind == task.KindRecord {
					got++
				}
				ended = ended || el.Kind == task.KindEnd
			}
		case <-time.After(10 * time.Second):
			t.Fatal("nothing arrived after the peer came up")
		}
	}
	if got != 3 {
		t.Fatalf("%d records arrived, want 3", got)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestWrongSubtaskIsRefused(t *testing.T) {
	_, addr := serve(t, 8, 1)
	c := NewClient(fixed(addr))
	defer c.Close()
	// The server runs stage 1 subtask 0; this stream is for subtask 1.
	e := &plan.Edge{ID: 0, To: &plan.Stage{ID: 1, Parallelism: 2}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := c.Send(ctx, e, 1, records(0, 0, 1, 1))
	if err == nil {
		err = c.Send(ctx, e, 1, end(0))
	}
	if status.Code(unwrapStatus(err)) != codes.FailedPrecondition || !strings.Contains(err.Error(), "not stage 1 subtask 1") {
		t.Fatalf("got %v, want FailedPrecondition naming the subtask", err)
	}
}

// unwrapStatus finds the gRPC status in a wrapped error.
func unwrapStatus(err error) error {
	for e := err; e != nil; {
		if _, ok := status.FromError(e); ok {
			return e
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			break
		}
		e = u.Unwrap()
	}
	return err
}

// rawStream opens a Push stream by hand with the given header.
func rawStream(t *testing.T, addr string, h header) grpc.ClientStream {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.CallContentSubtype(CodecName)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	cs, err := cc.NewStream(context.Background(), &grpc.StreamDesc{StreamName: "Push", ClientStreams: true}, "/"+serviceName+"/Push")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(h)
	if err := cs.SendMsg(&frame{b: b}); err != nil {
		t.Fatal(err)
	}
	return cs
}

// finish ends a raw stream and returns the server's verdict.
func finish(cs grpc.ClientStream) error {
	_ = cs.CloseSend()
	return cs.RecvMsg(&frame{})
}

func TestBadStreamsAreRefused(t *testing.T) {
	srv, addr := serve(t, 8, 2)
	// A channel the subtask does not have: the task would index out of range.
	for _, ch := range []int{2, -1} {
		err := finish(rawStream(t, addr, header{Stage: 1, Subtask: 0, Channel: ch}))
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("channel %d: got %v, want InvalidArgument", ch, err)
		}
	}
	// A batch whose channel differs from the stream's.
	cs := rawStream(t, addr, header{Stage: 1, Subtask: 0, Channel: 0})
	b := records(1, 0, 1, 1)
	cs.SendMsg(&frame{b: AppendBatch(nil, &b)})
	if err := finish(cs); status.Code(err) != codes.InvalidArgument {
		t.Errorf("batch of another channel: got %v, want InvalidArgument", err)
	}
	// A second stream for channel 0 would duplicate its records.
	if err := finish(rawStream(t, addr, header{Stage: 1, Subtask: 0, Channel: 0})); status.Code(err) != codes.AlreadyExists {
		t.Errorf("second stream of a channel: got %v, want AlreadyExists", err)
	}
	// Garbage instead of a batch.
	cs = rawStream(t, addr, header{Stage: 1, Subtask: 0, Channel: 1})
	cs.SendMsg(&frame{b: []byte{1, 5, 0}})
	if err := finish(cs); status.Code(err) != codes.DataLoss {
		t.Errorf("corrupt batch: got %v, want DataLoss", err)
	}
	select {
	case b := <-srv.Inbox():
		t.Errorf("a refused stream delivered %+v", b)
	default:
	}
}

// TestBackpressureBoundsWhatIsInFlight: with nobody reading the inbox, the
// sender blocks after a bounded amount (inbox + HTTP/2 windows), resumes
// when the consumer reads, and counts the blocked time.
func TestBackpressureBoundsWhatIsInFlight(t *testing.T) {
	const batches, per, payload = 200, 64, 1000 // ~64 KiB per batch, ~13 MiB in all
	srv, addr := serve(t, 2, 1)
	c := NewClient(fixed(addr))
	defer c.Close()
	var sent sync.WaitGroup
	sent.Add(1)
	errc := make(chan error, 1)
	go func() {
		defer sent.Done()
		for i := 0; i < batches; i++ {
			if err := c.Send(context.Background(), testEdge, 0, records(0, i*per, per, payload)); err != nil {
				errc <- err
				return
			}
		}
		errc <- c.Send(context.Background(), testEdge, 0, end(0))
	}()
	// Let the sender run into the full window.
	var stalled int64
	for i := 0; ; i++ {
		time.Sleep(200 * time.Millisecond)
		now := c.BytesOut.Load()
		if now == stalled && now > 0 {
			break
		}
		stalled = now
		if i > 50 {
			t.Fatalf("the sender never stalled (%d bytes out)", now)
		}
	}
	const bound = 2*WindowSize + 4<<20 // windows, gRPC's write quota, inbox, one decoded batch
	if stalled > bound {
		t.Fatalf("%d bytes went out to a consumer that reads nothing; want at most %d", stalled, bound)
	}
	t.Logf("stalled after %d KiB of %d KiB", stalled>>10, int64(batches)*per*payload>>10)
	// Reading resumes the flow to the end.
	records, ended := 0, false
	for !ended {
		select {
		case b := <-srv.Inbox():
			for _, el := range b.Elems {
				if el.Kind == task.KindRecord {
					records++
				}
				ended = ended || el.Kind == task.KindEnd
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("flow did not resume: %d records read", records)
		}
	}
	sent.Wait()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if records != batches*per {
		t.Fatalf("read %d records, want %d", records, batches*per)
	}
	if c.Blocked.Load() < int64(100*time.Millisecond) {
		t.Fatalf("blocked %v: the stall was not counted as backpressure", time.Duration(c.Blocked.Load()))
	}
}

// TestSendHonoursItsContext: a Send blocked by backpressure ends when its
// own context ends, even though the stream was opened by an earlier Send.
func TestSendHonoursItsContext(t *testing.T) {
	_, addr := serve(t, 1, 1)
	c := NewClient(fixed(addr))
	defer c.Close()
	if err := c.Send(context.Background(), testEdge, 0, records(0, 0, 1, 1)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		var err error
		for i := 1; err == nil && i < 1000; i++ {
			err = c.Send(ctx, testEdge, 0, records(0, i*64, 64, 1000))
		}
		errc <- err
	}()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("64 MB went to a consumer that reads nothing")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Send is still blocked 10 s after its context ended")
	}
}

func TestStopEndsBlockedStreams(t *testing.T) {
	srv := NewServer(1, 0, 1)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	c := NewClient(fixed(l.Addr().String()))
	defer c.Close()
	errc := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			if err := c.Send(context.Background(), testEdge, 0, records(0, i*64, 64, 1000)); err != nil {
				errc <- err
				return
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	srv.Stop(100 * time.Millisecond)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Stop took %v", d)
	}
	select {
	case err := <-errc:
		t.Logf("sender saw: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the sender is still blocked after the server stopped")
	}
	if !strings.Contains(srv.Describe(), "stage 1 subtask 0") {
		t.Errorf("Describe: %s", srv.Describe())
	}
}

func ExampleServer() {
	srv := NewServer(1, 0, 8)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(l)
	defer srv.Stop(time.Second)
	c := NewClient(func(stage, subtask int) (string, error) { return l.Addr().String(), nil })
	defer c.Close()
	e := &plan.Edge{To: &plan.Stage{ID: 1, Parallelism: 1}}
	c.Send(context.Background(), e, 0, task.Batch{Elems: []task.Element{
		{Kind: task.KindRecord, Rec: value.Record{Value: "hello"}}, {Kind: task.KindEnd}}})
	b := <-srv.Inbox()
	fmt.Println(b.Elems[0].Rec.Value, len(b.Elems))
	// Output: hello 2
}

// TestBatchLargerThanAMessageIsSplit: batches are cut by count, so big
// records can make one larger than gRPC's message limit; it must still
// arrive, whole and in order.
func TestBatchLargerThanAMessageIsSplit(t *testing.T) {
	srv, addr := serve(t, 4, 1)
	c := NewClient(fixed(addr))
	defer c.Close()
	const n, size = 70, 1 << 20 // 70 MiB in one batch
	b := records(0, 0, n, size)
	b.Elems = append(b.Elems, end(0).Elems...)
	if enc := len(AppendBatch(nil, &b)); enc <= MaxMessageSize {
		t.Fatalf("test batch of %d bytes fits one message", enc)
	}
	errc := make(chan error, 1)
	go func() { errc <- c.Send(context.Background(), testEdge, 0, b) }()
	next, msgs, ended := int64(0), 0, false
	for !ended {
		select {
		case got := <-srv.Inbox():
			msgs++
			for _, el := range got.Elems {
				switch el.Kind {
				case task.KindRecord:
					if field(el.Rec.Value, "id").(int64) != next || len(field(el.Rec.Value, "pad").(string)) != size {
						t.Fatalf("record %d out of order or cut", next)
					}
					next++
				case task.KindEnd:
					ended = true
				}
			}
		case err := <-errc:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("timed out after %d records", next)
		}
	}
	if next != n || msgs < 2 {
		t.Fatalf("%d records in %d messages", next, msgs)
	}
}

// A checkpoint barrier crosses the exchange intact and in place: between
// the records before it and those after it, with its checkpoint ID.
func TestBarrierCrossesTheExchange(t *testing.T) {
	srv, addr := serve(t, 4, 1)
	c := NewClient(fixed(addr))
	defer c.Close()
	b := records(0, 0, 3, 4)
	b.Elems = append(b.Elems, task.Element{Kind: task.KindBarrier, Wm: 42})
	b.Elems = append(b.Elems, records(0, 3, 2, 4).Elems...)
	ctx := context.Background()
	go func() {
		if err := c.Send(ctx, testEdge, 0, b); err != nil {
			t.Error(err)
		}
		if err := c.Send(ctx, testEdge, 0, end(0)); err != nil {
			t.Error(err)
		}
	}()
	var got []task.Element
	for len(got) == 0 || got[len(got)-1].Kind != task.KindEnd {
		select {
		case in := <-srv.Inbox():
			got = append(got, in.Elems...)
		case <-time.After(20 * time.Second):
			t.Fatal("timed out")
		}
	}
	if len(got) != 8 || got[3].Kind != task.KindBarrier || got[3].Wm != 42 || got[2].Kind != task.KindRecord || got[4].Kind != task.KindRecord {
		t.Fatalf("elements after the exchange: %+v", got)
	}
}
