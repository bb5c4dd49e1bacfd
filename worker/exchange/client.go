package exchange

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/task"
)

// Resolver gives the exchange address (host:port) of a subtask.
type Resolver func(stage, subtask int) (string, error)

// Client sends this subtask's output channels to downstream workers. It is
// a task.Sender. Streams open lazily on the first batch; opening waits for
// the peer to be up (a peer that starts late or restarts is connected to as
// soon as it listens).
type Client struct {
	resolve Resolver
	mu      sync.Mutex
	conns   map[string]*grpc.ClientConn
	streams map[streamKey]*stream
	// sizeHint is the size of the last message, to size the next buffer.
	sizeHint int
	// BytesOut counts encoded bytes sent; Blocked the time spent in Send
	// (mostly waiting for flow-control credit: backpressure).
	BytesOut atomic.Int64
	Blocked  atomic.Int64 // nanoseconds
}

type streamKey struct{ edge, target int }

type stream struct {
	cs     grpc.ClientStream
	cancel context.CancelFunc
	closed bool
}

// NewClient returns a client resolving peers with r.
func NewClient(r Resolver) *Client {
	return &Client{resolve: r, conns: map[string]*grpc.ClientConn{}, streams: map[streamKey]*stream{}}
}

func (c *Client) conn(addr string) (*grpc.ClientConn, error) {
	if cc, ok := c.conns[addr]; ok {
		return cc, nil
	}
	// passthrough: every connection attempt dials addr afresh, resolving
	// the host name then (net.Dialer), so a peer is reached within one
	// connect backoff (at most MaxDelay) of its name resolving. gRPC's
	// default dns resolver instead backs off exponentially after a failed
	// lookup (1s, 1.6s, ... 2 minutes): a STREAMING peer looked up before
	// its pod had an IP (NXDOMAIN, which cluster DNS also caches for up
	// to 30 s) was then only retried after 40 s or more.
	cc, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// Peers start in any order: retry quickly while they come up.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
		grpc.WithInitialWindowSize(WindowSize),
		grpc.WithInitialConnWindowSize(WindowSize),
		grpc.WithDefaultCallOptions(grpc.CallContentSubtype(CodecName), grpc.MaxCallSendMsgSize(MaxMessageSize)),
	)
	if err != nil {
		return nil, err
	}
	c.conns[addr] = cc
	return cc, nil
}

func (c *Client) open(ctx context.Context, e *plan.Edge, target, channel int) (*stream, error) {
	addr, err := c.resolve(e.To.ID, target)
	if err != nil {
		return nil, err
	}
	cc, err := c.conn(addr)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	cs, err := cc.NewStream(sctx, &grpc.StreamDesc{StreamName: "Push", ClientStreams: true},
		"/"+serviceName+"/Push", grpc.WaitForReady(true))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("connecting to stage %d subtask %d at %s: %w", e.To.ID, target, addr, err)
	}
	h, _ := json.Marshal(header{Stage: e.To.ID, Subtask: target, Channel: channel})
	if err := cs.SendMsg(&frame{b: h}); err != nil {
		cancel()
		return nil, err
	}
	return &stream{cs: cs, cancel: cancel}, nil
}

// Send implements task.Sender. A batch ending with End closes the stream
// and waits for the receiver to acknowledge it has read everything.
func (c *Client) Send(ctx context.Context, e *plan.Edge, target int, b task.Batch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := streamKey{e.ID, target}
	s := c.streams[k]
	if s == nil {
		var err error
		if s, err = c.open(ctx, e, target, b.Channel); err != nil {
			return err
		}
		c.streams[k] = s
	}
	if s.closed {
		return fmt.Errorf("send on the finished channel to stage %d subtask %d", e.To.ID, target)
	}
	// The stream lives in the context of the first Send; a later call's
	// ctx must end a Send blocked by backpressure too.
	stop := context.AfterFunc(ctx, s.cancel)
	defer stop()
	if err := c.sendMsgs(s, b); err != nil {
		return fmt.Errorf("sending to stage %d subtask %d: %w", e.To.ID, target, err)
	}
	if n := len(b.Elems); n > 0 && b.Elems[n-1].Kind == task.KindEnd {
		s.closed = true
		if err := s.cs.CloseSend(); err != nil {
			return err
		}
		if err := s.cs.RecvMsg(&frame{}); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("closing the channel to stage %d subtask %d: %w", e.To.ID, target, err)
		}
		s.cancel()
	}
	return nil
}

// sendMsgs sends a batch as one message, or as several (in order) when
// it encodes larger than MaxMessageSize: batches are cut by count, and a
// few big records can outgrow a message where BATCH would store them.
func (c *Client) sendMsgs(s *stream, b task.Batch) error {
	// A fresh buffer per message: gRPC may still be writing the previous
	// one to the connection after SendMsg returns.
	buf := AppendBatch(make([]byte, 0, c.sizeHint), &b)
	if len(buf) > MaxMessageSize && len(b.Elems) > 1 {
		half := len(b.Elems) / 2
		if err := c.sendMsgs(s, task.Batch{Channel: b.Channel, Elems: b.Elems[:half]}); err != nil {
			return err
		}
		return c.sendMsgs(s, task.Batch{Channel: b.Channel, Elems: b.Elems[half:]})
	}
	c.sizeHint = len(buf)
	start := time.Now()
	err := s.cs.SendMsg(&frame{b: buf})
	c.Blocked.Add(int64(time.Since(start)))
	if err != nil {
		if errors.Is(err, io.EOF) {
			// The server ended the stream; RecvMsg has its reason.
			err = s.cs.RecvMsg(&frame{})
		}
		return err
	}
	c.BytesOut.Add(int64(len(buf)))
	return nil
}

// Close releases every connection.
func (c *Client) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.streams {
		s.cancel()
	}
	for _, cc := range c.conns {
		cc.Close()
	}
}
