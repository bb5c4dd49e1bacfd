package exchange

import (
	"context"
	"encoding/binary"
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
	"github.com/flinkjob/flinkjob/engine/shuffle"
	"github.com/flinkjob/flinkjob/engine/task"
	"github.com/flinkjob/flinkjob/engine/value"
)

// Resolver gives the exchange address (host:port) of a subtask.
type Resolver func(stage, subtask int) (string, error)

// Client sends this subtask's output channels to downstream workers. It
// is a task.Sender. Streams open lazily on the first batch; opening waits
// for the peer to be up (a peer that starts late or restarts is connected
// to as soon as it listens).
//
// With Linger set, small batches are coalesced: a stream sends at most one
// message smaller than FlushBytes per Linger. A small batch goes at once if
// the stream's last message went Linger ago or more (a sparse stream, such
// as a window's results or a watermark after a quiet spell, pays no wait);
// otherwise it waits, encoded, until the stream's batches make FlushBytes
// or until Linger after that last message, and they go as one message.
// Every gRPC message costs both workers a few goroutine hand-offs and
// system calls, and a stage whose output is sparse (a
// selective filter, a join's matches, the watermark after every source
// read) otherwise sends many tiny messages. Batches carrying a checkpoint
// barrier or the end of the channel go at once, with what waits before
// them; order is kept, and backpressure is unchanged (what waits is at
// most FlushBytes per stream).
type Client struct {
	resolve Resolver
	// Linger is the least time between a stream's small messages: how
	// long a small batch may wait to be coalesced with the next ones (0:
	// every batch is a message at once). Set it before the first Send.
	Linger time.Duration
	mu     sync.Mutex // guards conns and streams
	conns  map[string]*grpc.ClientConn
	// streams is written under mu; each stream has its own lock.
	streams map[streamKey]*stream
	// BytesOut counts encoded bytes sent; Blocked the time spent in Send
	// (mostly waiting for flow-control credit: backpressure).
	BytesOut atomic.Int64
	Blocked  atomic.Int64 // nanoseconds

	// sending is read-held by every Send: Close waits for the Sends in
	// progress, as a caller that closes after its last Send returned
	// expects.
	sending     sync.RWMutex
	flusherOnce sync.Once
	wake        chan struct{} // a stream has a new deadline
	done        chan struct{} // closed by Close
	closeOnce   sync.Once
}

// DefaultLinger is the worker's default Client.Linger: short against the
// latency target (p99 under 20 ms end to end), long enough that a source
// flushing its output after every read of a few hundred events sends a
// few of those reads per message.
const DefaultLinger = 2 * time.Millisecond

// FlushBytes is the size at which a stream's coalesced batches go out
// without waiting for Linger.
const FlushBytes = 32 << 10

type streamKey struct{ edge, target int }

type stream struct {
	// sem is held (a value in it) while the stream is used: its gRPC
	// stream, pending bytes and state. Send waits for it honouring its
	// context; the flusher only tries it.
	sem    chan struct{}
	cs     grpc.ClientStream
	cancel context.CancelFunc
	closed bool
	// sizeHint is the size of the last message, to size the next buffer.
	sizeHint int
	// pend holds the encoded elements (AppendElems) of count elements of
	// channel that have not been sent; due is when they must go.
	pend    []byte
	count   int
	channel int
	due     time.Time
	// sent is when the stream's last message went.
	sent time.Time
	// err is the failure of a send the flusher made, for the next Send.
	err error
	// enc encodes the stream's records, whose maps share field names.
	enc value.Encoder
}

func (s *stream) lock(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *stream) unlock() { <-s.sem }

// NewClient returns a client resolving peers with r.
func NewClient(r Resolver) *Client {
	return &Client{resolve: r, conns: map[string]*grpc.ClientConn{}, streams: map[streamKey]*stream{},
		wake: make(chan struct{}, 1), done: make(chan struct{})}
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
	return &stream{sem: make(chan struct{}, 1), cs: cs, cancel: cancel, channel: channel}, nil
}

// stream returns the stream of edge e to target, opening it first.
func (c *Client) stream(ctx context.Context, e *plan.Edge, target, channel int) (*stream, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := streamKey{e.ID, target}
	if s := c.streams[k]; s != nil {
		return s, nil
	}
	s, err := c.open(ctx, e, target, channel)
	if err != nil {
		return nil, err
	}
	c.streams[k] = s
	return s, nil
}

// Connect opens the streams from subtask index of stage st to every
// subtask downstream, waiting until each peer is up. A worker connects
// before its task starts, so a source does not begin reading (and a paced
// or Kafka source does not fall behind) while its first batch waits for a
// consumer that is still starting: the wait is before the job's first
// record, not inside its latency.
func (c *Client) Connect(ctx context.Context, st *plan.Stage, index int) error {
	for _, e := range st.Outputs {
		for t := 0; t < e.To.Parallelism; t++ {
			if _, err := c.stream(ctx, e, t, shuffle.ChannelBase(e)+index); err != nil {
				if ctx.Err() != nil {
					// The wait was cut short (the worker's context has a
					// cause, such as the checkpoint leader failing): say
					// why rather than gRPC's "context canceled".
					return fmt.Errorf("connecting to stage %d subtask %d: %w", e.To.ID, t, context.Cause(ctx))
				}
				return err
			}
		}
	}
	return nil
}

// Send implements task.Sender. A batch ending with End closes the stream
// and waits for the receiver to acknowledge it has read everything. Send
// takes the batch, as a task.Sender does: its slice of elements is reused
// (cleared) once encoded, and the caller must not touch it again.
func (c *Client) Send(ctx context.Context, e *plan.Edge, target int, b task.Batch) error {
	c.sending.RLock()
	defer c.sending.RUnlock()
	s, err := c.stream(ctx, e, target, b.Channel)
	if err != nil {
		return err
	}
	// Deferred before the unlock, so it runs after it (see add).
	var scheduled bool
	defer func() {
		if scheduled {
			c.wakeFlusher()
		}
	}()
	// Waiting for a stream the flusher is sending on is backpressure too.
	start := time.Now()
	if err := s.lock(ctx); err != nil {
		c.Blocked.Add(int64(time.Since(start)))
		return fmt.Errorf("sending to stage %d subtask %d: %w", e.To.ID, target, err)
	}
	defer s.unlock()
	c.Blocked.Add(int64(time.Since(start)))
	if s.err != nil {
		return fmt.Errorf("sending to stage %d subtask %d: %w", e.To.ID, target, s.err)
	}
	if s.closed {
		return fmt.Errorf("send on the finished channel to stage %d subtask %d", e.To.ID, target)
	}
	// The stream lives in the context of the first Send; a later call's
	// ctx must end a Send blocked by backpressure too.
	stop := context.AfterFunc(ctx, s.cancel)
	defer stop()
	n := len(b.Elems)
	ending := n > 0 && b.Elems[n-1].Kind == task.KindEnd
	scheduled, err = c.add(s, b)
	// The batch is encoded (or sent): its slice is ours to recycle.
	task.PutElems(b.Elems)
	if err != nil {
		s.err = err
		return fmt.Errorf("sending to stage %d subtask %d: %w", e.To.ID, target, err)
	}
	if ending {
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

// add encodes b behind what the stream has pending and sends it all now,
// or leaves it pending (small, and nothing in it that must go at once).
// The caller holds the stream; when add left the stream's first pending
// batch (scheduled), it wakes the flusher once it released the stream: a
// flusher woken while the stream is held finds it busy and would only try
// it again a whole Linger later.
func (c *Client) add(s *stream, b task.Batch) (scheduled bool, err error) {
	if s.pend == nil {
		s.pend = (*sendBuffers.Get(s.sizeHint))[:0]
	}
	mark, before := len(s.pend), s.count
	s.pend = AppendElems(s.pend, b.Elems, &s.enc)
	s.count += len(b.Elems)
	if len(s.pend)+2*binary.MaxVarintLen64 > MaxMessageSize {
		// Too big for one message (a few huge records): send what was
		// pending, then this batch as messages of their own.
		s.pend, s.count = s.pend[:mark], before
		if err := c.flush(s, &c.Blocked); err != nil {
			return false, err
		}
		return false, c.sendSplit(s, b)
	}
	if c.Linger <= 0 || len(s.pend) >= FlushBytes || urgent(b.Elems) {
		return false, c.flush(s, &c.Blocked)
	}
	if before == 0 {
		// Throttle, not debounce: a batch waits only for what is left of
		// Linger since the stream's last message, so a sparse stream
		// (a watermark, a window's results) sends at once, while a busy
		// one still sends at most one small message per Linger.
		now := time.Now()
		if s.due = s.sent.Add(c.Linger); !now.Before(s.due) {
			return false, c.flush(s, &c.Blocked)
		}
		return true, nil
	}
	return false, nil
}

// wakeFlusher tells the flusher (started on first use) that a stream has a
// new deadline.
func (c *Client) wakeFlusher() {
	c.flusherOnce.Do(func() { go c.flusher() })
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// urgent reports whether a batch must not wait: a checkpoint barrier
// (alignment waits for it downstream) or the end of the channel.
func urgent(elems []task.Element) bool {
	for i := range elems {
		if k := elems[i].Kind; k == task.KindBarrier || k == task.KindEnd {
			return true
		}
	}
	return false
}

// flush sends the stream's pending elements as one message, adding the
// time SendMsg blocks to blocked if set (a Send's, not the flusher's:
// Blocked is the time Sends spend blocked). The caller holds the stream.
func (c *Client) flush(s *stream, blocked *atomic.Int64) error {
	if s.count == 0 {
		return nil
	}
	hdr := binary.AppendUvarint(make([]byte, 0, 2*binary.MaxVarintLen64), uint64(s.channel))
	hdr = binary.AppendUvarint(hdr, uint64(s.count))
	body := s.pend
	s.pend, s.count, s.sizeHint = nil, 0, len(body)
	s.sent = time.Now()
	return c.sendMsg(s, &frame{hdr: hdr, b: body, pooled: true}, len(hdr)+len(body), blocked)
}

// sendSplit sends a batch as one message, or as several (in order) when
// it encodes larger than MaxMessageSize: batches are cut by count, and a
// few big records can outgrow a message where BATCH would store them.
func (c *Client) sendSplit(s *stream, b task.Batch) error {
	buf := AppendBatch((*sendBuffers.Get(0))[:0], &b)
	if len(buf) > MaxMessageSize && len(b.Elems) > 1 {
		sendBuffers.Put(&buf)
		half := len(b.Elems) / 2
		if err := c.sendSplit(s, task.Batch{Channel: b.Channel, Elems: b.Elems[:half]}); err != nil {
			return err
		}
		return c.sendSplit(s, task.Batch{Channel: b.Channel, Elems: b.Elems[half:]})
	}
	return c.sendMsg(s, &frame{b: buf, pooled: true}, len(buf), &c.Blocked)
}

func (c *Client) sendMsg(s *stream, f *frame, size int, blocked *atomic.Int64) error {
	start := time.Now()
	err := s.cs.SendMsg(f)
	if blocked != nil {
		blocked.Add(int64(time.Since(start)))
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			// The server ended the stream; RecvMsg has its reason.
			err = s.cs.RecvMsg(&frame{})
		}
		return err
	}
	c.BytesOut.Add(int64(size))
	return nil
}

// flusher sends coalesced batches that have waited Linger. It runs from
// the first batch left pending until Close.
func (c *Client) flusher() {
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		select {
		case <-c.wake:
		case <-t.C:
		case <-c.done:
			t.Stop()
			return
		}
		if next := c.flushDue(time.Now()); !next.IsZero() {
			t.Reset(time.Until(next))
		}
	}
}

// flushDue sends what is due on every stream and returns the earliest
// deadline still pending (zero: none). A stream in use by a Send is tried
// again a Linger later: that Send may leave its pending bytes behind.
func (c *Client) flushDue(now time.Time) time.Time {
	c.mu.Lock()
	streams := make([]*stream, 0, len(c.streams))
	for _, s := range c.streams {
		streams = append(streams, s)
	}
	c.mu.Unlock()
	var next time.Time
	later := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for _, s := range streams {
		select {
		case s.sem <- struct{}{}:
		default:
			later(now.Add(c.Linger))
			continue
		}
		if s.count > 0 && s.err == nil {
			if now.Before(s.due) {
				later(s.due)
			} else if err := c.flush(s, nil); err != nil {
				s.err = err
			}
		}
		s.unlock()
	}
	return next
}

// Close releases every connection, once the Sends in progress have
// returned. What waits to be coalesced is dropped: a channel's last
// batch (End) is always sent at once.
func (c *Client) Close() {
	c.sending.Lock()
	defer c.sending.Unlock()
	c.closeOnce.Do(func() { close(c.done) })
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.streams {
		s.cancel()
	}
	for _, cc := range c.conns {
		cc.Close()
	}
}
