package exchange

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/flinkjob/flinkjob/engine/task"
	"github.com/flinkjob/flinkjob/engine/value"
)

const serviceName = "flinkjob.exchange.v1.Exchange"

// header opens every stream: who it is for and which channel it carries.
type header struct {
	Stage   int `json:"stage"`
	Subtask int `json:"subtask"`
	Channel int `json:"channel"`
}

// Server receives the input channels of one subtask.
type Server struct {
	stage, subtask int
	inbox          chan task.Batch
	grpc           *grpc.Server
	BytesIn        atomic.Int64
	// Channels is the number of input channels of the subtask; set it
	// before Serve. Streams for a channel outside [0, Channels) are refused
	// (the task indexes its per-channel state by it). 0 leaves it unchecked.
	Channels int

	mu     sync.Mutex
	opened map[int]bool // channels that have had a stream
}

// MaxMessageSize bounds one exchange message: room for one record of the
// largest size the engine encodes (value.MaxFrameSize) and its framing.
// The client splits larger batches.
const MaxMessageSize = value.MaxFrameSize + 1<<10

// WindowSize is the HTTP/2 flow-control window per stream and connection.
// A fixed window (no BDP growth) bounds what a fast producer can push
// ahead of a slow consumer.
const WindowSize = 1 << 20

// NewServer returns a server delivering batches for stage/subtask into an
// inbox of the given capacity (in batches).
func NewServer(stage, subtask, capacity int) *Server {
	s := &Server{stage: stage, subtask: subtask, inbox: make(chan task.Batch, capacity), opened: map[int]bool{}}
	s.grpc = grpc.NewServer(
		// Control subscriptions (control.go) idle between checkpoints
		// and ping every ControlKeepalive so a vanished leader is noticed;
		// the default policy would refuse pings more often than 5 min.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: ControlKeepalive / 2, PermitWithoutStream: true}),
		grpc.InitialWindowSize(WindowSize),
		grpc.InitialConnWindowSize(WindowSize),
		grpc.MaxRecvMsgSize(MaxMessageSize),
	)
	s.grpc.RegisterService(&grpc.ServiceDesc{
		ServiceName: serviceName,
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{
			StreamName:    "Push",
			Handler:       func(_ any, st grpc.ServerStream) error { return s.push(st) },
			ClientStreams: true,
		}},
	}, s)
	return s
}

// Inbox is where received batches arrive, in order per channel.
func (s *Server) Inbox() <-chan task.Batch { return s.inbox }

// Serve accepts connections on l until Stop.
func (s *Server) Serve(l net.Listener) error { return s.grpc.Serve(l) }

// Stop closes the server, first letting open streams finish (the senders
// wait for the acknowledgement that ends each stream), at most for grace.
func (s *Server) Stop(grace time.Duration) {
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(grace):
		s.grpc.Stop()
	}
}

func (s *Server) push(st grpc.ServerStream) error {
	var f frame
	if err := st.RecvMsg(&f); err != nil {
		return err
	}
	var h header
	if err := json.Unmarshal(f.b, &h); err != nil {
		return status.Errorf(codes.InvalidArgument, "bad stream header: %v", err)
	}
	if h.Stage != s.stage || h.Subtask != s.subtask {
		return status.Errorf(codes.FailedPrecondition, "this worker runs stage %d subtask %d, not stage %d subtask %d", s.stage, s.subtask, h.Stage, h.Subtask)
	}
	if h.Channel < 0 || (s.Channels > 0 && h.Channel >= s.Channels) {
		return status.Errorf(codes.InvalidArgument, "channel %d does not exist: stage %d subtask %d has %d input channels", h.Channel, s.stage, s.subtask, s.Channels)
	}
	// One stream per channel for the life of the subtask: a second one
	// would deliver the channel's records twice, or after its end.
	s.mu.Lock()
	dup := s.opened[h.Channel]
	s.opened[h.Channel] = true
	s.mu.Unlock()
	if dup {
		return status.Errorf(codes.AlreadyExists, "channel %d of stage %d subtask %d already had a stream", h.Channel, s.stage, s.subtask)
	}
	ctx := st.Context()
	dec := new(value.Decoder)
	for {
		if err := st.RecvMsg(&f); err != nil {
			if errors.Is(err, io.EOF) {
				return st.SendMsg(&frame{})
			}
			return err
		}
		s.BytesIn.Add(int64(len(f.b)))
		b, err := decodeBatch(f.b, dec)
		if err != nil {
			return status.Errorf(codes.DataLoss, "channel %d: %v", h.Channel, err)
		}
		if b.Channel != h.Channel {
			return status.Errorf(codes.InvalidArgument, "batch for channel %d on the stream of channel %d", b.Channel, h.Channel)
		}
		select {
		case s.inbox <- b:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Describe is for logs.
func (s *Server) Describe() string {
	return fmt.Sprintf("exchange server for stage %d subtask %d", s.stage, s.subtask)
}
