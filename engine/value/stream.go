package value

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// A record stream is a sequence of frames, each a uvarint body length
// followed by a body written by AppendRecord. It is the format of spill
// files, sorted runs and objects in S3: the length prefix lets a reader walk
// a stream of any size with one small buffer, without an index and without
// decoding bodies it only forwards.

// MaxFrameSize bounds the body of one frame. A reader trusts a length prefix
// only up to this size, so a damaged length cannot make it allocate
// gigabytes; writers refuse larger records so they never produce a stream
// that cannot be read back.
const MaxFrameSize = 64 << 20

// streamBufferSize is the buffer of readers and writers: large enough that
// writes to files and S3 multipart uploads go out in big chunks, small
// enough that many open streams (one per merged run) stay cheap.
const streamBufferSize = 64 << 10

// RecordWriter writes framed records. It buffers; call Flush at the end.
// It is not safe for concurrent use.
type RecordWriter struct {
	bw      *bufio.Writer
	scratch []byte                      // reused body buffer, so Write does not allocate
	enc     Encoder                     // the stream's records share their field names
	hdr     [binary.MaxVarintLen64]byte // length prefix of the frame being written
	records int64
	bytes   int64
}

// NewRecordWriter returns a writer that frames records onto w through a
// 64 KiB buffer.
func NewRecordWriter(w io.Writer) *RecordWriter {
	return &RecordWriter{bw: bufio.NewWriterSize(w, streamBufferSize)}
}

// Write appends one record to the stream.
func (w *RecordWriter) Write(r *Record) error {
	w.scratch = w.enc.AppendRecord(w.scratch[:0], r)
	err := w.WriteEncoded(w.scratch)
	if cap(w.scratch) > 1<<20 {
		// Do not hold on to the buffer of one outsized record.
		w.scratch = nil
	}
	return err
}

// WriteEncoded appends a body already produced by AppendRecord. It lets
// code that keeps records encoded (sort arenas, shuffle buffers) forward them
// without a decode and re-encode; the body is not checked.
func (w *RecordWriter) WriteEncoded(body []byte) error {
	if len(body) > MaxFrameSize {
		return fmt.Errorf("value: record of %d bytes exceeds the %d byte frame limit", len(body), MaxFrameSize)
	}
	n := binary.PutUvarint(w.hdr[:], uint64(len(body)))
	if _, err := w.bw.Write(w.hdr[:n]); err != nil {
		return err
	}
	if _, err := w.bw.Write(body); err != nil {
		return err
	}
	w.records++
	w.bytes += int64(n + len(body))
	return nil
}

// Flush writes buffered frames to the underlying writer.
func (w *RecordWriter) Flush() error { return w.bw.Flush() }

// Records reports how many records have been written.
func (w *RecordWriter) Records() int64 { return w.records }

// Bytes reports how many bytes have been written, framing included (the
// size of the stream once flushed).
func (w *RecordWriter) Bytes() int64 { return w.bytes }

// RecordReader reads framed records written by RecordWriter. It streams
// through a 64 KiB buffer and holds at most one frame in memory. It decodes
// maps into rows when UseRows is on as it is made (NewRecordReader), as a
// Decoder does. It is not safe for concurrent use.
type RecordReader struct {
	br      *bufio.Reader
	scratch []byte // body buffer for frames larger than br's buffer
	off     int64  // stream offset of the next frame
	peeked  bool   // the current body is still in br's buffer
	err     error  // sticky: once corrupt or failed, the stream stays so
	// The caches of a Decoder but its valueCache: many readers are open
	// at once (one per merged run), and its values cost the most memory.
	dec     decodeCtx
	keys    keyCache
	schemas schemaCache
	recKeys recordKeyCache
}

// NewRecordReader returns a reader of the framed stream r.
func NewRecordReader(r io.Reader) *RecordReader {
	rr := &RecordReader{br: bufio.NewReaderSize(r, streamBufferSize)}
	rr.dec = decodeCtx{keys: &rr.keys, schemas: &rr.schemas, rows: UseRows}
	rr.recKeys.tab = make([]recordKey, readerRecordKeys)
	return rr
}

// Read decodes the next record into rec. It returns io.EOF when the stream
// ends cleanly between frames, and an error wrapping ErrCorrupt that names
// the frame's byte offset when a frame is truncated, too long or does not
// decode. Errors of the underlying reader are returned wrapped.
func (r *RecordReader) Read(rec *Record) error {
	if r.err != nil {
		return r.err
	}
	body, err := r.next()
	if err == nil {
		if err = decodeRecord(body, rec, &r.dec, &r.recKeys); err != nil {
			// DecodeRecord's errors already wrap ErrCorrupt.
			err = fmt.Errorf("value: record stream at byte offset %d: %w", r.off, err)
		}
	}
	if err != nil {
		r.err = err
		return err
	}
	r.off += int64(UvarintLen(uint64(len(body))) + len(body))
	r.discardPeeked(len(body))
	return nil
}

// ReadEncoded returns the next record's body (as AppendRecord wrote it)
// without decoding it, for code that only forwards records. The body is
// valid until the next call on r. Only the framing is checked; the key ID
// and timestamp at the body's front are checked by RecordKeyTs.
func (r *RecordReader) ReadEncoded() ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	body, err := r.next()
	if err == nil {
		if _, _, err = RecordKeyTs(body); err != nil {
			err = fmt.Errorf("value: record stream at byte offset %d: %w", r.off, err)
		}
	}
	if err != nil {
		r.err = err
		return nil, err
	}
	r.off += int64(UvarintLen(uint64(len(body))) + len(body))
	// Discarding peeked bytes only moves bufio's read position: the body
	// stays in its buffer until the next read.
	r.discardPeeked(len(body))
	return body, nil
}

// next reads one frame's length and body. A body that fits in the buffer is
// peeked rather than copied; discardPeeked consumes it once decoded.
func (r *RecordReader) next() ([]byte, error) {
	var n uint64
	var k int
	for shift := uint(0); ; shift += 7 {
		c, err := r.br.ReadByte()
		if err != nil {
			if err == io.EOF {
				if k == 0 {
					return nil, io.EOF
				}
				return nil, r.corrupt("truncated frame length")
			}
			return nil, fmt.Errorf("value: reading record stream at byte offset %d: %w", r.off, err)
		}
		k++
		if k == binary.MaxVarintLen64 && c > 1 || k > binary.MaxVarintLen64 {
			return nil, r.corrupt("frame length overflows")
		}
		n |= uint64(c&0x7f) << shift
		if c < 0x80 {
			break
		}
	}
	if n > MaxFrameSize {
		return nil, r.corrupt("frame of %d bytes exceeds the %d byte limit", n, MaxFrameSize)
	}
	r.peeked = false
	if int(n) <= r.br.Size() {
		body, err := r.br.Peek(int(n))
		if err != nil {
			return nil, r.bodyError(err, n)
		}
		r.peeked = true
		return body, nil
	}
	// Grow the buffer as bytes arrive rather than trusting the length up
	// front, so a damaged prefix on a short stream costs little memory.
	buf := r.scratch[:0]
	for uint64(len(buf)) < n {
		step := min(n-uint64(len(buf)), uint64(max(cap(buf)-len(buf), streamBufferSize)))
		buf = growLen(buf, int(step))
		if _, err := io.ReadFull(r.br, buf[len(buf)-int(step):]); err != nil {
			return nil, r.bodyError(err, n)
		}
	}
	r.scratch = buf
	return buf, nil
}

func (r *RecordReader) bodyError(err error, n uint64) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return r.corrupt("truncated frame: %d byte body cut short", n)
	}
	return fmt.Errorf("value: reading record stream at byte offset %d: %w", r.off, err)
}

func (r *RecordReader) discardPeeked(n int) {
	if r.peeked {
		r.br.Discard(n) // cannot fail: the bytes were peeked
		r.peeked = false
	}
}

// corrupt describes a malformed frame starting at the current offset.
func (r *RecordReader) corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: record stream at byte offset %d: %s", ErrCorrupt, r.off, fmt.Sprintf(format, args...))
}

// growLen extends b by n bytes, reallocating geometrically.
func growLen(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), max(2*cap(b), len(b)+n))
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}

// UvarintLen is the length of x as a uvarint (encoding/binary), without encoding it.
func UvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}
