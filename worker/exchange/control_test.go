package exchange

import (
	"context"
	"errors"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a ControlHandler that records calls and streams a fixed
// sequence of events to each subscriber.
type recorder struct {
	mu    sync.Mutex
	calls []ControlRequest
	fail  error
}

func (r *recorder) Call(_ context.Context, req ControlRequest) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, req)
	return r.fail
}

func (r *recorder) Subscribe(ctx context.Context, stage, subtask int, send func(ControlEvent) error) error {
	if stage == 9 {
		return errors.New("stage 9 subtask 0 is not a subtask of this job's plan")
	}
	for _, ev := range []ControlEvent{{Hello: true, Restore: "s3://b/chk-3/"}, {Trigger: 4}, {Complete: 4}, {Trigger: 5, Final: true}} {
		if err := send(ev); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return nil
}

func serveControl(t *testing.T, h ControlHandler) string {
	t.Helper()
	srv := NewServer(0, 0, 1)
	srv.ServeControl(h)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Stop(0) })
	return l.Addr().String()
}

func TestControlSubscribeAndCall(t *testing.T) {
	h := &recorder{}
	addr := serveControl(t, h)
	c, err := DialControl(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	recv, err := c.Subscribe(ctx, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	var got []ControlEvent
	for i := 0; i < 4; i++ {
		ev, err := recv()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ev)
	}
	if !got[0].Hello || got[0].Restore != "s3://b/chk-3/" || got[1].Trigger != 4 || got[2].Complete != 4 || got[3].Trigger != 5 || !got[3].Final {
		t.Fatalf("events: %+v", got)
	}
	if err := c.Call(ctx, ControlRequest{Op: OpAck, Stage: 1, Subtask: 2, ID: 4}); err != nil {
		t.Fatal(err)
	}
	if len(h.calls) != 1 || !reflect.DeepEqual(h.calls[0], ControlRequest{Op: OpAck, Stage: 1, Subtask: 2, ID: 4}) {
		t.Fatalf("calls: %+v", h.calls)
	}
	// A finished subtask's report carries what stands for it in later
	// checkpoints (a source's end position), bytes intact.
	fin := ControlRequest{Op: OpFinished, Stage: 1, Subtask: 2, Carry: true, Snapshot: map[string][]byte{"source/in/2-of-3": {0, 1, 0xff}}}
	if err := c.Call(ctx, fin); err != nil {
		t.Fatal(err)
	}
	if len(h.calls) != 2 || !reflect.DeepEqual(h.calls[1], fin) {
		t.Fatalf("calls: %+v", h.calls)
	}
	// A refusal comes back at once (no retries), with the leader's reason.
	h.fail = errors.New("stage 1 subtask 7 is not a subtask of this job's plan")
	start := time.Now()
	err = c.Call(ctx, ControlRequest{Op: OpFinished, Stage: 1, Subtask: 7})
	if err == nil || !strings.Contains(err.Error(), "not a subtask") || !strings.Contains(err.Error(), addr) {
		t.Fatalf("refused call: %v", err)
	}
	if len(h.calls) != 3 || time.Since(start) > 5*time.Second {
		t.Fatalf("a refusal was retried: %d calls", len(h.calls))
	}
	// A subscription the leader refuses ends with its reason.
	recv, err = c.Subscribe(ctx, 9, 0)
	if err == nil {
		_, err = recv()
	}
	if err == nil || !strings.Contains(err.Error(), "not a subtask") {
		t.Fatalf("refused subscription: %v", err)
	}
}

// A leader that is not there: calls retry with backoff, then fail naming
// the leader and the operation.
func TestControlLeaderUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	c, err := DialControl(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Attempts, c.Backoff, c.AttemptTimeout = 3, 10*time.Millisecond, 300*time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = c.Call(ctx, ControlRequest{Op: OpAck, Stage: 2, Subtask: 1, ID: 7})
	if err == nil || !strings.Contains(err.Error(), "acknowledging checkpoint 7 of stage 2 subtask 1") || !strings.Contains(err.Error(), addr) {
		t.Fatalf("unreachable leader: %v", err)
	}
}
