package exchange

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/mem"

	"github.com/flinkjob/flinkjob/engine/task"
	"github.com/flinkjob/flinkjob/engine/value"
)

// sampleBatch has one element of every kind and records of every value type.
func sampleBatch() task.Batch {
	keyed := value.Record{Value: map[string]any{"word": "flink", "n": int64(3)}, Ts: 1700000000000}
	keyed.WithKey("flink")
	return task.Batch{Channel: 7, Elems: []task.Element{
		{Kind: task.KindRecord, Rec: value.Record{Value: nil, Ts: value.NoTimestamp}},
		{Kind: task.KindRecord, Rec: value.Record{Value: true, Ts: 0}},
		{Kind: task.KindRecord, Rec: value.Record{Value: int64(-42), Ts: -5}},
		{Kind: task.KindRecord, Rec: value.Record{Value: uint64(math.MaxUint64), Ts: 1}},
		{Kind: task.KindRecord, Rec: value.Record{Value: 2.5, Ts: 2}},
		{Kind: task.KindRecord, Rec: value.Record{Value: "héllo", Ts: 3}},
		{Kind: task.KindRecord, Rec: value.Record{Value: []byte{0, 1, 255}, Ts: 4}},
		{Kind: task.KindRecord, Rec: value.Record{Value: []any{int64(1), "two", []any{}, map[string]any{}}, Ts: 5}},
		{Kind: task.KindRecord, Rec: keyed},
		{Kind: task.KindWatermark, Wm: value.MinWatermark},
		{Kind: task.KindWatermark, Wm: -1},
		{Kind: task.KindWatermark, Wm: 123456789},
		{Kind: task.KindIdle},
		{Kind: task.KindActive},
		{Kind: task.KindBarrier, Wm: 1},
		{Kind: task.KindBarrier, Wm: math.MaxInt64},
		{Kind: task.KindWatermark, Wm: value.MaxWatermark},
		{Kind: task.KindEnd},
	}}
}

// plainBatch is b with its records' rows made maps (value.Plain), for
// comparing with batches of maps whether records decode into rows or not.
func plainBatch(b task.Batch) task.Batch {
	out := task.Batch{Channel: b.Channel, Elems: slices.Clone(b.Elems)}
	for i := range out.Elems {
		r := &out.Elems[i].Rec
		r.Value, r.Key = value.Plain(r.Value), value.Plain(r.Key)
	}
	return out
}

// field is a field of a record value, a map or a row.
func field(v any, name string) any {
	f, _ := value.Field(v, name)
	return f
}

// A batch of records holding rows is the batch of their maps: the same
// bytes. Decoded with rows on, its maps come back as rows, equal to them.
func TestCodecRows(t *testing.T) {
	batch := func(form func(map[string]any) any) task.Batch {
		var b task.Batch
		for i := range 20 {
			in := form(map[string]any{"id": int64(i), "tags": []any{"a", nil}})
			r := value.Record{Value: form(map[string]any{"z": "last", "a": in, "m": nil, "n": []any{form(map[string]any{"x": 1.5})}}), Ts: int64(i)}
			r.WithKey(form(map[string]any{"k": int64(i % 3)}))
			b.Elems = append(b.Elems, task.Element{Kind: task.KindRecord, Rec: r}, task.Element{Kind: task.KindWatermark, Wm: int64(i)})
		}
		return b
	}
	maps := batch(func(m map[string]any) any { return m })
	rows := batch(func(m map[string]any) any { return value.RowOf(m) })
	enc := AppendBatch(nil, &maps)
	if got := AppendBatch(nil, &rows); !bytes.Equal(got, enc) {
		t.Fatal("a batch of rows encodes differently from the batch of their maps")
	}
	var e value.Encoder
	if got := AppendElems(nil, rows.Elems, &e); !bytes.Equal(got, AppendElems(nil, maps.Elems, nil)) {
		t.Fatal("an Encoder writes rows differently from their maps")
	}
	for _, on := range []bool{false, true} {
		old := value.UseRows
		value.UseRows = on
		got, err := DecodeBatch(enc)
		value.UseRows = old
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(plainBatch(got), maps) {
			t.Fatalf("rows %v: decoded %+v", on, got)
		}
		if _, isRow := got.Elems[0].Rec.Value.(*value.Row); isRow != on {
			t.Fatalf("rows %v: decoded a %T", on, got.Elems[0].Rec.Value)
		}
		if again := AppendBatch(nil, &got); !bytes.Equal(again, enc) {
			t.Fatalf("rows %v: a decoded batch re-encodes differently", on)
		}
	}
}

func TestCodecRoundTrip(t *testing.T) {
	// Record bodies on both sides of a length prefix's one, two and three
	// bytes (128 and 16384 bytes).
	var sized task.Batch
	for _, n := range []int{0, 100, 120, 121, 122, 123, 124, 125, 126, 127, 128, 200, 16370, 16374, 16375, 16376, 16377, 16378, 16380, 16400} {
		sized.Elems = append(sized.Elems, task.Element{Kind: task.KindRecord, Rec: value.Record{Value: strings.Repeat("s", n), Ts: 1}})
	}
	var ref []byte // the format spelled out: kind, uvarint body length, body
	ref = binary.AppendUvarint(ref, 0)
	ref = binary.AppendUvarint(ref, uint64(len(sized.Elems)))
	for i := range sized.Elems {
		body := value.AppendRecord(nil, &sized.Elems[i].Rec)
		ref = append(binary.AppendUvarint(append(ref, byte(task.KindRecord)), uint64(len(body))), body...)
	}
	if got := AppendBatch(nil, &sized); !bytes.Equal(got, ref) {
		t.Fatalf("records of many sizes: AppendBatch differs from the format")
	}
	for _, b := range []task.Batch{
		sampleBatch(),
		sized,
		{Channel: 0, Elems: []task.Element{}},
		{Channel: 1 << 40, Elems: []task.Element{{Kind: task.KindEnd}}},
	} {
		enc := AppendBatch(nil, &b)
		got, err := DecodeBatch(enc)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if !reflect.DeepEqual(plainBatch(got), b) {
			t.Fatalf("round trip:\n got %#v\nwant %#v", got, b)
		}
		// AppendBatch appends: a prefix is kept.
		if again := AppendBatch([]byte("xy"), &got); !bytes.Equal(again[2:], enc) || string(again[:2]) != "xy" {
			t.Fatalf("re-encoding differs")
		}
	}
}

func TestRawCodec(t *testing.T) {
	c := rawCodec{}
	b, err := c.Marshal(&frame{b: []byte("abc")})
	if err != nil || string(b.Materialize()) != "abc" {
		t.Fatalf("Marshal: %q %v", b.Materialize(), err)
	}
	var f frame
	src1, src2 := []byte("da"), []byte("ta")
	msg := mem.BufferSlice{mem.SliceBuffer(src1), mem.SliceBuffer(src2)} // a message over two transport buffers
	if err := c.Unmarshal(msg, &f); err != nil || string(f.b) != "data" {
		t.Fatalf("Unmarshal: %q %v", f.b, err)
	}
	src1[0] = 'X' // gRPC may reuse its buffer: the frame must own a copy
	if string(f.b) != "data" {
		t.Fatalf("Unmarshal aliases its input: %q", f.b)
	}
	// The frame's buffer is reused for the next, shorter message.
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer([]byte("ok"))}, &f); err != nil || string(f.b) != "ok" {
		t.Fatalf("second Unmarshal: %q %v", f.b, err)
	}
	if err := c.Unmarshal(nil, &f); err != nil || len(f.b) != 0 {
		t.Fatalf("empty Unmarshal: %q %v", f.b, err)
	}
	if _, err := c.Marshal("not a frame"); err == nil {
		t.Fatal("Marshal of a non-frame succeeded")
	}
	if err := c.Unmarshal(nil, new(int)); err == nil {
		t.Fatal("Unmarshal into a non-frame succeeded")
	}
}

func TestDecodeBatchRejectsDamage(t *testing.T) {
	b := sampleBatch()
	enc := AppendBatch(nil, &b)
	// Every strict prefix is incomplete: an error, never a panic.
	for n := 0; n < len(enc); n++ {
		if _, err := DecodeBatch(enc[:n]); err == nil {
			t.Fatalf("prefix of %d/%d bytes decoded", n, len(enc))
		}
	}
	if _, err := DecodeBatch(append(append([]byte{}, enc...), 0)); !errors.Is(err, value.ErrCorrupt) {
		t.Fatalf("trailing byte: %v", err)
	}
	bad := AppendBatch(nil, &task.Batch{Channel: 1, Elems: []task.Element{{Kind: task.KindEnd}}})
	bad[len(bad)-1] = 99
	if _, err := DecodeBatch(bad); !errors.Is(err, value.ErrCorrupt) {
		t.Fatalf("unknown element kind: %v", err)
	}
	// A count larger than the bytes that follow must not allocate it.
	huge := []byte{0, 0xff, 0xff, 0xff, 0xff, 0x0f}
	if _, err := DecodeBatch(huge); !errors.Is(err, value.ErrCorrupt) {
		t.Fatalf("huge count: %v", err)
	}
}

func FuzzDecodeBatch(f *testing.F) {
	b := sampleBatch()
	f.Add(AppendBatch(nil, &b))
	f.Add(AppendBatch(nil, &task.Batch{}))
	f.Add(AppendBatch(nil, &task.Batch{Channel: 3, Elems: []task.Element{{Kind: task.KindWatermark, Wm: 5}, {Kind: task.KindEnd}}}))
	f.Add([]byte{})
	f.Add([]byte{0x80})
	f.Add([]byte{0, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := DecodeBatch(data)
		if err != nil {
			return
		}
		// What decodes re-encodes to something that decodes, and from
		// there the encoding is stable (bytes, so NaN compares too).
		enc := AppendBatch(nil, &got)
		again, err := DecodeBatch(enc)
		if err != nil {
			t.Fatalf("re-encoded batch does not decode: %v", err)
		}
		if enc2 := AppendBatch(nil, &again); !bytes.Equal(enc, enc2) {
			t.Fatalf("unstable round trip:\n%x\n%x", enc, enc2)
		}
	})
}

// A slice the Client recycled (still holding the records of the batch it
// encoded) comes back to DecodeBatch cleared: elements that carry no
// record or watermark decode as zero, not as what the slice held.
func TestDecodeBatchReusesCleanSlices(t *testing.T) {
	want := task.Batch{Channel: 1, Elems: []task.Element{{Kind: task.KindIdle}, {Kind: task.KindActive}, {Kind: task.KindEnd}}}
	enc := AppendBatch(nil, &want)
	for i := 0; i < 20; i++ {
		dirty := make([]task.Element, 3, 512)
		for j := range dirty {
			dirty[j] = task.Element{Kind: task.KindWatermark, Wm: 99, Rec: value.Record{Value: "stale", KeyID: "k", Ts: 5}}
		}
		task.PutElems(dirty)
		got, err := DecodeBatch(enc)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decoded %+v, want %+v", got, want)
		}
	}
}
