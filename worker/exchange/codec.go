// Package exchange streams records between STREAMING workers over gRPC:
// one client-streaming call per upstream→downstream channel, each message a
// batch of elements (records, watermarks, idleness, end-of-input) in
// engine/value's binary encoding. Backpressure is gRPC's HTTP/2 flow
// control: the receiver stops reading when its bounded inbox is full, the
// stream window fills, and the sender's Send blocks, so memory stays bounded
// on both sides.
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
	"sync"

	"google.golang.org/grpc/encoding"

	"github.com/flinkjob/flinkjob/engine/task"
	"github.com/flinkjob/flinkjob/engine/value"
)

// frame is one gRPC message: encoded bytes.
type frame struct{ b []byte }

// rawCodec passes frames through unchanged.
type rawCodec struct{}

// CodecName is the gRPC content-subtype of the exchange.
const CodecName = "flinkjob-frame"

func (rawCodec) Marshal(v any) ([]byte, error) {
	f, ok := v.(*frame)
	if !ok {
		return nil, fmt.Errorf("exchange: cannot marshal %T", v)
	}
	return f.b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	f, ok := v.(*frame)
	if !ok {
		return fmt.Errorf("exchange: cannot unmarshal into %T", v)
	}
	f.b = append(f.b[:0], data...)
	return nil
}

func (rawCodec) Name() string { return CodecName }

func init() { encoding.RegisterCodec(rawCodec{}) }

// AppendBatch encodes a batch: uvarint channel, uvarint count, then per
// element a kind byte followed by a record body, a watermark, or a
// barrier's checkpoint ID (a varint, like a watermark: both travel in Wm).
func AppendBatch(b []byte, bt *task.Batch) []byte {
	b = binary.AppendUvarint(b, uint64(bt.Channel))
	b = binary.AppendUvarint(b, uint64(len(bt.Elems)))
	for i := range bt.Elems {
		el := &bt.Elems[i]
		b = append(b, byte(el.Kind))
		switch el.Kind {
		case task.KindRecord:
			// Encode the body in place, then slide it behind its length:
			// no buffer per record.
			start := len(b)
			b = value.AppendRecord(b, &el.Rec)
			var l [binary.MaxVarintLen64]byte
			k := binary.PutUvarint(l[:], uint64(len(b)-start))
			b = append(b, l[:k]...)
			copy(b[start+k:], b[start:len(b)-k])
			copy(b[start:], l[:k])
		case task.KindWatermark, task.KindBarrier:
			b = binary.AppendVarint(b, el.Wm)
		}
	}
	return b
}

// decoders recycle value.Decoders, whose interned map keys (a stream's
// records repeat the same field names) then outlive one batch.
var decoders = sync.Pool{New: func() any { return new(value.Decoder) }}

// DecodeBatch decodes a batch written by AppendBatch. Bad bytes give an
// error, never a panic.
func DecodeBatch(b []byte) (task.Batch, error) {
	dec := decoders.Get().(*value.Decoder)
	defer decoders.Put(dec)
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
	bt.Elems = make([]task.Element, cnt)
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
