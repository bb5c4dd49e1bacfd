package exchange

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

// The control service carries checkpoint coordination between the workers
// of a STREAMING job (issue #7). It is registered on the exchange server of
// the leader worker (stage 0, subtask 0), which runs the checkpoint
// coordinator; every other worker is a client of it:
//
//   - Subscribe (server streaming): a worker registers its subtask and the
//     leader streams ControlEvents down to it: first a hello naming the
//     checkpoint to restore from, then barrier triggers (source subtasks)
//     and checkpoint completions (every subtask), in order.
//   - Call (unary): acknowledgements of checkpoints, a source reaching the
//     end of its input (final savepoint) and a subtask finishing.
//
// Workers dial the leader, never the other way round: only the leader must
// be reachable, and a worker that cannot reach it fails (the coordinator
// is gone, the job restarts) instead of the leader holding per-worker
// connections. Messages are JSON in the exchange's raw frames: they are few
// and small (one per checkpoint per subtask).
const controlServiceName = "flinkjob.control.v1.Control"

// ControlKeepalive is how often a worker pings the leader on an idle
// control connection.
const ControlKeepalive = 20 * time.Second

// Control operations of Call.
const (
	OpAck         = "ack"
	OpSourceEnded = "sourceEnded"
	OpFinished    = "finished"
)

// ControlRequest is the body of a Call.
type ControlRequest struct {
	Op      string `json:"op"`
	Stage   int    `json:"stage"`
	Subtask int    `json:"subtask"`
	// ID is the acknowledged checkpoint (OpAck).
	ID int64 `json:"id,omitempty"`
	// Carry (OpFinished) says the subtask's end can be carried into later
	// checkpoints, with Snapshot standing for it there (a source's end
	// position; none for other subtasks): see task.Checkpointing.OnFinish
	// and checkpoint.Coordinator.FinishedWith. Without it checkpoints stop.
	Carry    bool              `json:"carry,omitempty"`
	Snapshot map[string][]byte `json:"snapshot,omitempty"`
}

// ControlEvent is one message of a subscription.
type ControlEvent struct {
	// Hello opens every subscription; Restore is then the URL of the
	// checkpoint or savepoint directory every subtask restores from (""
	// for a fresh start), decided once by the leader.
	Hello   bool   `json:"hello,omitempty"`
	Restore string `json:"restore,omitempty"`
	// Trigger asks a source subtask to start checkpoint Trigger; Final
	// marks the final savepoint of a bounded job.
	Trigger int64 `json:"trigger,omitempty"`
	Final   bool  `json:"final,omitempty"`
	// Complete says checkpoint Complete (and every one before) completed.
	Complete int64 `json:"complete,omitempty"`
}

// ControlHandler is the leader's side of the service.
type ControlHandler interface {
	// Call handles one request; an error goes back to the caller.
	Call(ctx context.Context, r ControlRequest) error
	// Subscribe streams events to stage/subtask with send until ctx ends
	// (the subscriber went away) or it returns.
	Subscribe(ctx context.Context, stage, subtask int, send func(ControlEvent) error) error
}

// ServeControl registers the control service with h on the server; call it
// before Serve.
func (s *Server) ServeControl(h ControlHandler) {
	s.grpc.RegisterService(&grpc.ServiceDesc{
		ServiceName: controlServiceName,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Call",
			Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				var f frame
				if err := dec(&f); err != nil {
					return nil, err
				}
				var r ControlRequest
				if err := json.Unmarshal(f.b, &r); err != nil {
					return nil, status.Errorf(codes.InvalidArgument, "bad control request: %v", err)
				}
				if err := h.Call(ctx, r); err != nil {
					return nil, status.Error(codes.FailedPrecondition, err.Error())
				}
				return &frame{}, nil
			},
		}},
		Streams: []grpc.StreamDesc{{
			StreamName:    "Subscribe",
			ServerStreams: true,
			Handler: func(_ any, st grpc.ServerStream) error {
				var f frame
				if err := st.RecvMsg(&f); err != nil {
					return err
				}
				var r ControlRequest
				if err := json.Unmarshal(f.b, &r); err != nil {
					return status.Errorf(codes.InvalidArgument, "bad subscription: %v", err)
				}
				err := h.Subscribe(st.Context(), r.Stage, r.Subtask, func(ev ControlEvent) error {
					b, _ := json.Marshal(ev)
					return st.SendMsg(&frame{b: b})
				})
				if err != nil && status.Code(err) == codes.Unknown {
					return status.Error(codes.FailedPrecondition, err.Error())
				}
				return err
			},
		}},
	}, s)
}

// ControlClient is a worker's connection to the leader's control service.
type ControlClient struct {
	addr string
	cc   *grpc.ClientConn
	// Attempts and Backoff bound the retries of Call (defaults 8 and
	// 100ms, doubling up to 2s: about 10 s in all, longer than a leader
	// restarting its connection, shorter than a pod restart).
	Attempts int
	Backoff  time.Duration
	// AttemptTimeout bounds one attempt, waiting for the connection
	// included (default 5s).
	AttemptTimeout time.Duration
}

// DialControl returns a client of the control service at addr. It connects
// lazily and waits for the leader while it starts.
func DialControl(addr string) (*ControlClient, error) {
	cc, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
		grpc.WithDefaultCallOptions(grpc.CallContentSubtype(CodecName)),
		// A subscription is idle between checkpoints; pings find a leader
		// whose host vanished without closing the connection.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: ControlKeepalive, Timeout: 10 * time.Second}),
	)
	if err != nil {
		return nil, fmt.Errorf("checkpoint leader at %s: %w", addr, err)
	}
	return &ControlClient{addr: addr, cc: cc, Attempts: 8, Backoff: 100 * time.Millisecond, AttemptTimeout: 5 * time.Second}, nil
}

// Close closes the connection.
func (c *ControlClient) Close() error { return c.cc.Close() }

// Call sends r to the leader, retrying transient failures with backoff. A
// refusal by the leader (FailedPrecondition, InvalidArgument) is not
// retried. The error names the leader and the operation.
func (c *ControlClient) Call(ctx context.Context, r ControlRequest) error {
	b, _ := json.Marshal(r)
	delay := c.Backoff
	var err error
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, c.AttemptTimeout)
		err = c.cc.Invoke(actx, "/"+controlServiceName+"/Call", &frame{b: b}, &frame{}, grpc.WaitForReady(true))
		cancel()
		if err == nil {
			return nil
		}
		code := status.Code(err)
		if code == codes.FailedPrecondition || code == codes.InvalidArgument || ctx.Err() != nil || attempt >= c.Attempts {
			break
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
		}
		delay = min(2*delay, 2*time.Second)
	}
	what := r.Op
	if r.Op == OpAck {
		what = fmt.Sprintf("acknowledging checkpoint %d", r.ID)
	}
	return fmt.Errorf("control: %s of stage %d subtask %d to the checkpoint leader at %s: %w", what, r.Stage, r.Subtask, c.addr, err)
}

// Subscribe opens the subscription of stage/subtask, waiting for the
// leader to be up. recv returns the next event; it fails when the stream
// ends (the leader went away) or ctx ends.
func (c *ControlClient) Subscribe(ctx context.Context, stage, subtask int) (recv func() (ControlEvent, error), err error) {
	cs, err := c.cc.NewStream(ctx, &grpc.StreamDesc{StreamName: "Subscribe", ServerStreams: true},
		"/"+controlServiceName+"/Subscribe", grpc.WaitForReady(true))
	if err != nil {
		return nil, fmt.Errorf("control: subscribing to the checkpoint leader at %s: %w", c.addr, err)
	}
	b, _ := json.Marshal(ControlRequest{Stage: stage, Subtask: subtask})
	if err := cs.SendMsg(&frame{b: b}); err != nil {
		return nil, fmt.Errorf("control: subscribing to the checkpoint leader at %s: %w", c.addr, err)
	}
	if err := cs.CloseSend(); err != nil {
		return nil, err
	}
	return func() (ControlEvent, error) {
		var f frame
		if err := cs.RecvMsg(&f); err != nil {
			if errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled {
				return ControlEvent{}, err
			}
			return ControlEvent{}, fmt.Errorf("control: the subscription to the checkpoint leader at %s ended: %w", c.addr, err)
		}
		var ev ControlEvent
		if err := json.Unmarshal(f.b, &ev); err != nil {
			return ControlEvent{}, fmt.Errorf("control: bad event from the checkpoint leader: %v", err)
		}
		return ev, nil
	}, nil
}
