// Package exchange streams records between STREAMING workers over gRPC:
// one client-streaming call per upstream→downstream channel, each message a
// batch of elements (records, watermarks, idleness, end-of-input) in
// engine/value's binary encoding. The sender coalesces small batches of a
// channel into one message for up to Client.Linger (see Client), since
// every message costs both workers goroutine hand-offs and system calls.
// Backpressure is gRPC's HTTP/2 flow control: the receiver stops reading
// when its bounded inbox is full, the stream window fills, and the sender's
// Send blocks, so memory stays bounded on both sides.
//
// The service is declared by hand with a raw-bytes codec rather than
// generated from a .proto, because its only message is an opaque frame.
//
// The same server carries the checkpoint control service of a job's leader
// worker (control.go): barrier triggers and completions streamed to the
// other workers, their acknowledgements back.
package exchange

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"

	"github.com/flinkjob/flinkjob/engine/task"
	"github.com/flinkjob/flinkjob/engine/value"
)

// frame is one gRPC message: encoded bytes. A pooled frame's buffer came
// from sendBuffers and goes back there once gRPC has written it out (gRPC
// frees a marshaled message when the transport is done with it, which may
// be after SendMsg has returned).
type frame struct {
	hdr    []byte // if set, sent before b in the same message
	b      []byte
	pooled bool
}

// sendBuffers recycles the buffers batches are encoded into: without it
// every message would allocate (and zero) a buffer of its size.
var sendBuffers bufferPool

// bufferPool is a mem.BufferPool of byte slices of any capacity.
type bufferPool struct{ p sync.Pool }

// Get returns a slice of length n. A new one gets a quarter more
// capacity, so that it also fits the somewhat larger messages that follow.
func (p *bufferPool) Get(n int) *[]byte {
	if b, ok := p.p.Get().(*[]byte); ok && cap(*b) >= n {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, n+n/4)
	return &b
}

// Put keeps b for a later Get; outsized buffers (a batch of a few huge
// records) are let go.
func (p *bufferPool) Put(b *[]byte) {
	if cap(*b) > 4<<20 {
		return
	}
	p.p.Put(b)
}

// rawCodec passes frames through unchanged. It is a gRPC CodecV2, which
// sees a message as the transport's buffers: a received message is copied
// once, into the frame's own buffer that the server reuses for every
// message of a stream. (A v1 codec gets a freshly allocated copy of every
// message and would copy it again: per message, an allocation of its size
// and a second copy.)
type rawCodec struct{}

// CodecName is the gRPC content-subtype of the exchange.
const CodecName = "flinkjob-frame"

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	f, ok := v.(*frame)
	if !ok {
		return nil, fmt.Errorf("exchange: cannot marshal %T", v)
	}
	body := mem.Buffer(mem.SliceBuffer(f.b))
	if f.pooled {
		body = mem.NewBuffer(&f.b, &sendBuffers)
	}
	if f.hdr != nil {
		return mem.BufferSlice{mem.SliceBuffer(f.hdr), body}, nil
	}
	return mem.BufferSlice{body}, nil
}

// Unmarshal copies the message into f.b: gRPC reuses its buffers once
// Unmarshal returns.
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	f, ok := v.(*frame)
	if !ok {
		return fmt.Errorf("exchange: cannot unmarshal into %T", v)
	}
	n := data.Len()
	f.b = slices.Grow(f.b[:0], n)[:n]
	data.CopyTo(f.b)
	return nil
}

func (rawCodec) Name() string { return CodecName }

func init() { encoding.RegisterCodecV2(rawCodec{}) }

// AppendBatch encodes a batch: uvarint channel, uvarint count, then per
// element a kind byte followed by a record body, a watermark, or a
// barrier's checkpoint ID (a varint, like a watermark: both travel in Wm).
func AppendBatch(b []byte, bt *task.Batch) []byte {
	b = binary.AppendUvarint(b, uint64(bt.Channel))
	b = binary.AppendUvarint(b, uint64(len(bt.Elems)))
	return AppendElems(b, bt.Elems, nil)
}

// AppendElems appends the elements of a batch as AppendBatch encodes them
// after its channel and count: the encodings of several batches of one
// channel, concatenated behind one header with their total count, are
// the encoding of the batch of all their elements. Records are encoded
// with enc (nil: value.AppendRecord).
func AppendElems(b []byte, elems []task.Element, enc *value.Encoder) []byte {
	for i := range elems {
		el := &elems[i]
		b = append(b, byte(el.Kind))
		switch el.Kind {
		case task.KindRecord:
			// Encode the body in place behind a one-byte length (a body
			// under 128 bytes); a longer one is slid behind its longer
			// length. No buffer per record.
			start := len(b)
			b = enc.AppendRecord(append(b, 0), &el.Rec)
			n := len(b) - start - 1
			if n < 0x80 {
				b[start] = byte(n)
			} else {
				var l [binary.MaxVarintLen64]byte
				k := binary.PutUvarint(l[:], uint64(n))
				b = append(b, l[:k-1]...)
				copy(b[start+k:], b[start+1:start+1+n])
				copy(b[start:], l[:k])
			}
		case task.KindWatermark, task.KindBarrier:
			b = binary.AppendVarint(b, el.Wm)
		}
	}
	return b
}

// DecodeBatch decodes a batch written by AppendBatch. Bad bytes give an
// error, never a panic.
func DecodeBatch(b []byte) (task.Batch, error) {
	return decodeBatch(b, new(value.Decoder))
}

// decodeBatch is DecodeBatch with the caller's Decoder: the server keeps
// one per stream, whose caches then see every batch of the stream.
func decodeBatch(b []byte, dec *value.Decoder) (task.Batch, error) {
	var bt task.Batch
	ch, n := binary.Uvarint(b)
	if n <= 0 {
		return bt, value.ErrCorrupt
	}
	b = b[n:]
	cnt, n := binary.Uvarint(b)
	if n <= 0 || cnt > uint64(len(b)) {
		return bt, value.ErrCorrupt
	}
	b = b[n:]
	bt.Channel = int(ch)
	// The task's pool: the Client puts back the slices of the batches it
	// encoded, the task those it processed (task.PutElems).
	bt.Elems = task.GetElems(int(cnt))[:cnt]
	for i := range bt.Elems {
		if len(b) == 0 {
			return bt, value.ErrCorrupt
		}
		el := &bt.Elems[i]
		el.Kind = task.Kind(b[0])
		b = b[1:]
		switch el.Kind {
		case task.KindRecord:
			l, n := binary.Uvarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return bt, value.ErrCorrupt
			}
			if err := dec.DecodeRecord(b[n:n+int(l)], &el.Rec); err != nil {
				return bt, err
			}
			b = b[n+int(l):]
		case task.KindWatermark, task.KindBarrier:
			wm, n := binary.Varint(b)
			if n <= 0 {
				return bt, value.ErrCorrupt
			}
			el.Wm = wm
			b = b[n:]
		case task.KindIdle, task.KindActive, task.KindEnd:
		default:
			return bt, fmt.Errorf("%w: element kind %d", value.ErrCorrupt, el.Kind)
		}
	}
	if len(b) != 0 {
		return bt, fmt.Errorf("%w: %d trailing bytes", value.ErrCorrupt, len(b))
	}
	return bt, nil
}
