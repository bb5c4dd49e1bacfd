package exchange

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/flinkjob/flinkjob/engine/task"
)

// recv reads one batch from the inbox, failing after a generous timeout.
func recv(t *testing.T, srv *Server) task.Batch {
	t.Helper()
	select {
	case b := <-srv.Inbox():
		return b
	case <-time.After(20 * time.Second):
		t.Fatal("nothing arrived in 20 s")
		return task.Batch{}
	}
}

// With a Linger, small batches wait and go as one message with the
// barrier batch that follows them: one inbox batch holding every element,
// in order.
func TestLingerCoalescesSmallBatchesUntilABarrier(t *testing.T) {
	srv, addr := serve(t, 8, 1)
	c := NewClient(fixed(addr))
	c.Linger = time.Hour // nothing goes for lack of time: only size and barriers flush
	defer c.Close()
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		b := records(0, i*2, 2, 4)
		b.Elems = append(b.Elems, task.Element{Kind: task.KindWatermark, Wm: int64(i)})
		if err := c.Send(ctx, testEdge, 0, b); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case b := <-srv.Inbox():
		t.Fatalf("a batch of %d elements went before anything asked for it", len(b.Elems))
	case <-time.After(100 * time.Millisecond):
	}
	if err := c.Send(ctx, testEdge, 0, task.Batch{Elems: []task.Element{{Kind: task.KindBarrier, Wm: 7}}}); err != nil {
		t.Fatal(err)
	}
	got := recv(t, srv)
	if len(got.Elems) != 301 {
		t.Fatalf("one message with %d elements, want 301", len(got.Elems))
	}
	for i := 0; i < 100; i++ {
		a, b, wm := got.Elems[3*i], got.Elems[3*i+1], got.Elems[3*i+2]
		if field(a.Rec.Value, "id") != int64(2*i) || field(b.Rec.Value, "id") != int64(2*i+1) ||
			wm.Kind != task.KindWatermark || wm.Wm != int64(i) {
			t.Fatalf("elements %d..%d: %+v %+v %+v", 3*i, 3*i+2, a, b, wm)
		}
	}
	if last := got.Elems[300]; last.Kind != task.KindBarrier || last.Wm != 7 {
		t.Fatalf("last element %+v, want the barrier", last)
	}
	if err := c.Send(ctx, testEdge, 0, end(0)); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, srv); got.Elems[len(got.Elems)-1].Kind != task.KindEnd {
		t.Fatalf("got %+v, want the end", got.Elems)
	}
}

// Coalesced batches go once they make FlushBytes, without a barrier.
func TestLingerFlushesAtFlushBytes(t *testing.T) {
	srv, addr := serve(t, 64, 1)
	c := NewClient(fixed(addr))
	c.Linger = time.Hour
	defer c.Close()
	ctx := context.Background()
	const per = 1000 // ~1 KiB a batch
	n := 0
	for n*per < 2*FlushBytes {
		if err := c.Send(ctx, testEdge, 0, records(0, n, 1, per)); err != nil {
			t.Fatal(err)
		}
		n++
	}
	got := recv(t, srv)
	if len(got.Elems) < FlushBytes/(per+32) || len(got.Elems) > FlushBytes/per+1 {
		t.Fatalf("first message has %d batches of ~%d B, want about FlushBytes (%d B) of them", len(got.Elems), per, FlushBytes)
	}
	for i, el := range got.Elems {
		if field(el.Rec.Value, "id") != int64(i) {
			t.Fatalf("element %d: %+v", i, el.Rec.Value)
		}
	}
}

// A batch left waiting goes by itself once it has waited Linger, with no
// further Send to push it.
func TestLingerSendsAWaitingBatch(t *testing.T) {
	srv, addr := serve(t, 8, 1)
	c := NewClient(fixed(addr))
	c.Linger = 5 * time.Millisecond
	defer c.Close()
	if err := c.Send(context.Background(), testEdge, 0, records(0, 0, 3, 4)); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, srv); len(got.Elems) != 3 || field(got.Elems[2].Rec.Value, "id") != int64(2) {
		t.Fatalf("got %+v", got.Elems)
	}
}

// slowStream is a gRPC stream whose SendMsg blocks for a while, as under
// backpressure.
type slowStream struct {
	grpc.ClientStream
	sent int
}

func (s *slowStream) SendMsg(any) error {
	time.Sleep(50 * time.Millisecond)
	s.sent++
	return nil
}

// The flusher blocking while it sends a batch that waited is not a Send
// blocked by backpressure: Blocked counts only the time Sends spend.
func TestFlusherIsNotCountedAsBlocked(t *testing.T) {
	c := NewClient(nil)
	c.Linger = time.Millisecond
	cs := &slowStream{}
	s := &stream{sem: make(chan struct{}, 1), cs: cs, cancel: func() {}, pend: []byte{byte(task.KindIdle)}, count: 1,
		due: time.Now().Add(-time.Second)}
	c.streams[streamKey{0, 0}] = s
	if next := c.flushDue(time.Now()); !next.IsZero() || cs.sent != 1 || s.count != 0 {
		t.Fatalf("flushDue: next %v, %d messages sent, %d elements pending; want the waiting batch sent", next, cs.sent, s.count)
	}
	if b := c.Blocked.Load(); b != 0 {
		t.Fatalf("Blocked %v after only the flusher sent", time.Duration(b))
	}
}
