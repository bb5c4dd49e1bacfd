package value

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func streamRecords() []Record {
	var recs []Record
	for i := 0; i < 500; i++ {
		r := Record{Value: map[string]any{"i": int64(i), "s": strings.Repeat("x", i%37)}, Ts: int64(i * 1000)}
		if i%3 != 0 {
			r.WithKey(fmt.Sprintf("k%d", i%11))
		}
		recs = append(recs, r)
	}
	// Bodies larger than the reader's buffer take the copying path.
	recs = append(recs,
		Record{Value: strings.Repeat("big", 50000), Ts: 1},
		Record{Value: []byte{}, Ts: NoTimestamp},
		Record{Value: bytes.Repeat([]byte{1}, 3*streamBufferSize+7), Ts: 2},
		Record{Value: "after big", Ts: 3},
	)
	return recs
}

func writeStream(t testing.TB, recs []Record) []byte {
	var buf bytes.Buffer
	w := NewRecordWriter(&buf)
	for i := range recs {
		if err := w.Write(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if w.Records() != int64(len(recs)) {
		t.Fatalf("Records() = %d, want %d", w.Records(), len(recs))
	}
	if w.Bytes() != int64(buf.Len()) {
		t.Fatalf("Bytes() = %d, stream is %d bytes", w.Bytes(), buf.Len())
	}
	return buf.Bytes()
}

func TestStreamRoundTrip(t *testing.T) {
	recs := streamRecords()
	data := writeStream(t, recs)
	for name, src := range map[string]io.Reader{
		"buffer":   bytes.NewReader(data),
		"one byte": iotest.OneByteReader(bytes.NewReader(data)),
		"half":     iotest.HalfReader(bytes.NewReader(data)),
		"data+EOF": iotest.DataErrReader(bytes.NewReader(data)),
	} {
		t.Run(name, func(t *testing.T) {
			r := NewRecordReader(src)
			var got Record
			for i := range recs {
				if err := r.Read(&got); err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
				if !equalRecords(&got, &recs[i]) {
					t.Fatalf("record %d: got %+v, want %+v", i, got, recs[i])
				}
			}
			for j := 0; j < 2; j++ {
				if err := r.Read(&got); err != io.EOF {
					t.Fatalf("after the last record: err = %v, want io.EOF", err)
				}
			}
		})
	}
}

func TestStreamEmpty(t *testing.T) {
	var buf bytes.Buffer
	w := NewRecordWriter(&buf)
	if err := w.Flush(); err != nil || buf.Len() != 0 || w.Bytes() != 0 || w.Records() != 0 {
		t.Fatalf("empty stream: %v, %d bytes", err, buf.Len())
	}
	var rec Record
	if err := NewRecordReader(&buf).Read(&rec); err != io.EOF {
		t.Fatalf("err = %v, want io.EOF", err)
	}
}

func TestStreamWriteDoesNotAllocate(t *testing.T) {
	w := NewRecordWriter(io.Discard)
	r := typicalRecord()
	w.Write(r)
	if n := testing.AllocsPerRun(1000, func() {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("Write allocates %v times per record", n)
	}
}

// TestStreamTruncated cuts a stream at every byte: a cut between frames is
// a clean io.EOF after the frames before it; any other cut is ErrCorrupt
// naming the offset of the frame that was cut.
func TestStreamTruncated(t *testing.T) {
	recs := streamRecords()[:40]
	data := writeStream(t, recs)
	boundaries := map[int]int{0: 0} // offset -> records before it
	off := 0
	for i := range recs {
		off += len(AppendRecord(nil, &recs[i]))
		off += UvarintLen(uint64(len(AppendRecord(nil, &recs[i]))))
		boundaries[off] = i + 1
	}
	for cut := 0; cut <= len(data); cut++ {
		r := NewRecordReader(bytes.NewReader(data[:cut]))
		var rec Record
		n := 0
		var err error
		for {
			if err = r.Read(&rec); err != nil {
				break
			}
			n++
		}
		if want, ok := boundaries[cut]; ok {
			if err != io.EOF || n != want {
				t.Fatalf("cut at frame boundary %d: %d records, err %v", cut, n, err)
			}
			continue
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("cut at %d: err = %v, want ErrCorrupt", cut, err)
		}
		frameStart := 0
		for b := range boundaries {
			if b < cut && b > frameStart {
				frameStart = b
			}
		}
		if want := fmt.Sprintf("byte offset %d:", frameStart); !strings.Contains(err.Error(), want) {
			t.Fatalf("cut at %d: error %q does not name %q", cut, err, want)
		}
		if n != boundaries[frameStart] {
			t.Fatalf("cut at %d: read %d records before the error, want %d", cut, n, boundaries[frameStart])
		}
	}
}

func TestStreamCorrupt(t *testing.T) {
	good := writeStream(t, streamRecords()[:2])
	frame := func(body []byte) []byte {
		return append(binary.AppendUvarint(nil, uint64(len(body))), body...)
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"frame too long", binary.AppendUvarint(nil, MaxFrameSize+1)},
		{"frame length max", binary.AppendUvarint(nil, 1<<63)},
		{"frame length overflow", bytes.Repeat([]byte{0xff}, 11)},
		{"frame length unterminated", []byte{0x80, 0x80}},
		{"long frame cut short", append(binary.AppendUvarint(nil, MaxFrameSize), make([]byte, 1000)...)},
		{"empty body", frame(nil)},
		{"body does not decode", frame([]byte{0, 0, 0x42})},
		{"trailing bytes in body", frame([]byte{0, 0, tagNil, tagNil})},
		{"garbage after good frames", append(append([]byte{}, good...), frame([]byte{7})...)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRecordReader(bytes.NewReader(tc.data))
			var rec Record
			var err error
			for err == nil {
				err = r.Read(&rec)
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "byte offset") {
				t.Fatalf("err = %v, want ErrCorrupt naming an offset", err)
			}
			if again := r.Read(&rec); again != err {
				t.Fatalf("error not sticky: %v then %v", err, again)
			}
		})
	}
}

func TestStreamRejectsOversizedRecord(t *testing.T) {
	var buf bytes.Buffer
	w := NewRecordWriter(&buf)
	if err := w.Write(&Record{Value: make([]byte, MaxFrameSize)}); err == nil {
		t.Fatal("wrote a record larger than MaxFrameSize")
	}
	if err := w.Write(&Record{Value: "ok"}); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	if w.Records() != 1 || w.Bytes() != int64(buf.Len()) {
		t.Fatalf("counts after a rejected record: %d records, %d bytes (stream %d)", w.Records(), w.Bytes(), buf.Len())
	}
}

func TestStreamReaderError(t *testing.T) {
	boom := errors.New("boom")
	data := writeStream(t, streamRecords()[:3])
	r := NewRecordReader(io.MultiReader(bytes.NewReader(data[:len(data)-2]), iotest.ErrReader(boom)))
	var rec Record
	var err error
	for err == nil {
		err = r.Read(&rec)
	}
	if !errors.Is(err, boom) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want the reader's error", err)
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestStreamReadsIncrementally checks that the reader streams: reading the
// first record of a large input consumes about one buffer, not the input.
func TestStreamReadsIncrementally(t *testing.T) {
	recs := make([]Record, 20000)
	for i := range recs {
		recs[i] = *typicalRecord()
	}
	data := writeStream(t, recs)
	src := &countingReader{r: bytes.NewReader(data)}
	r := NewRecordReader(src)
	var rec Record
	if err := r.Read(&rec); err != nil {
		t.Fatal(err)
	}
	if src.n > 2*streamBufferSize || src.n >= int64(len(data)) {
		t.Fatalf("reading one record consumed %d of %d bytes", src.n, len(data))
	}
}

func BenchmarkRecordWriter(b *testing.B) {
	r := typicalRecord()
	w := NewRecordWriter(io.Discard)
	b.SetBytes(int64(len(AppendRecord(nil, r)) + 1))
	b.ReportAllocs()
	for b.Loop() {
		w.Write(r)
	}
}

func BenchmarkRecordReader(b *testing.B) {
	recs := make([]Record, 10000)
	for i := range recs {
		recs[i] = *typicalRecord()
	}
	data := writeStream(b, recs)
	b.SetBytes(int64(len(data) / len(recs)))
	b.ReportAllocs()
	rd := bytes.NewReader(data)
	r := NewRecordReader(rd)
	var rec Record
	for b.Loop() {
		if err := r.Read(&rec); err == io.EOF {
			rd.Reset(data)
			r = NewRecordReader(rd)
		} else if err != nil {
			b.Fatal(err)
		}
	}
}
