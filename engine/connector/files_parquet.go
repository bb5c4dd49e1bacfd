package connector

import (
	"errors"
	"fmt"
	"io"
	"math/big"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/deprecated"
	"github.com/parquet-go/parquet-go/format"

	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// Parquet through github.com/parquet-go/parquet-go.
//
// The sink writes the declared schema (flat: one column per field,
// OPTIONAL when nullable), Snappy-compressed, with timestamps as
// TIMESTAMP(MILLIS, UTC) so Spark, DuckDB and Arrow read them as time.
// The source reads each file with the schema stored in it, nested groups
// and lists included, and turns rows into records: INT32/INT64 become int,
// FLOAT/DOUBLE double, timestamps int ms since the epoch, strings string,
// other byte arrays bytes.

// parquetRowGroupBytes is the buffered (uncompressed) size at which the
// writer flushes a row group: it bounds a writer's memory, since a row
// group is held in memory until flushed.
const parquetRowGroupBytes = 32 << 20

// parquetSchemaOf builds the file schema of a declared schema.
func parquetSchemaOf(s recordSchema) *parquet.Schema {
	g := parquet.Group{}
	for _, f := range s {
		var n parquet.Node
		switch f.typ {
		case spec.TypeString:
			n = parquet.String()
		case spec.TypeInt:
			n = parquet.Int(64)
		case spec.TypeDouble:
			n = parquet.Leaf(parquet.DoubleType)
		case spec.TypeBool:
			n = parquet.Leaf(parquet.BooleanType)
		case spec.TypeTimestamp:
			n = parquet.Timestamp(parquet.Millisecond)
		case spec.TypeBytes:
			n = parquet.Leaf(parquet.ByteArrayType)
		}
		if f.nullable {
			n = parquet.Optional(n)
		} else {
			n = parquet.Required(n)
		}
		g[f.name] = n
	}
	return parquet.NewSchema("record", g)
}

// parquetEncoder writes Parquet part files, one at a time.
type parquetEncoder struct {
	schema recordSchema
	ps     *parquet.Schema
	w      *parquet.Writer
	b      *parquet.RowBuilder
	fields []schemaField // in column order (parquet sorts a group's fields by name)
	// load reads the fields (in column order) of a record into vals.
	load *fieldLoader
	vals []any
	rows []parquet.Row
	// flushedAt is Size() after the last row group flush: Size minus it
	// estimates the row group buffered in memory.
	flushedAt int64
}

func (e *parquetEncoder) reset(out io.Writer) error {
	if e.w == nil {
		e.w = parquet.NewWriter(out, e.ps, parquet.Compression(&parquet.Snappy),
			parquet.CreatedBy("flinkjob", "", ""))
		e.b = parquet.NewRowBuilder(e.ps)
		e.rows = make([]parquet.Row, 1)
		byName := map[string]schemaField{}
		for _, f := range e.schema {
			byName[f.name] = f
		}
		names := make([]string, 0, len(e.schema))
		for _, pf := range e.ps.Fields() {
			e.fields = append(e.fields, byName[pf.Name()])
			names = append(names, pf.Name())
		}
		e.load, e.vals = newFieldLoader(names), make([]any, len(names))
	} else {
		e.w.Reset(out)
	}
	e.flushedAt = 0
	return nil
}

// write adds one record. Each field is converted before anything is
// written, so a record that does not fit leaves the part intact.
func (e *parquetEncoder) write(v any) error {
	if !e.load.load(v, e.vals) {
		return recordError{fmt.Errorf("parquet needs object records, got %s", value.TypeName(v))}
	}
	// What was loaded of the record is let go (ReleasesValues).
	defer clear(e.vals)
	e.b.Reset()
	for i, f := range e.fields {
		x, err := f.convert(e.vals[i])
		if err != nil {
			return recordError{err}
		}
		if x == nil {
			continue // the builder leaves an unset optional column null
		}
		var pv parquet.Value
		switch y := x.(type) {
		case string:
			pv = parquet.ByteArrayValue([]byte(y))
		case int64:
			pv = parquet.Int64Value(y)
		case float64:
			pv = parquet.DoubleValue(y)
		case bool:
			pv = parquet.BooleanValue(y)
		case []byte:
			pv = parquet.ByteArrayValue(append([]byte(nil), y...))
		}
		e.b.Add(i, pv)
	}
	e.rows[0] = e.b.AppendRow(e.rows[0][:0])
	if _, err := e.w.WriteRows(e.rows); err != nil {
		return err
	}
	if e.w.Size()-e.flushedAt > parquetRowGroupBytes {
		if err := e.w.Flush(); err != nil {
			return err
		}
		e.flushedAt = e.w.Size()
	}
	return nil
}

// size estimates the file's size so far (written plus buffered).
func (e *parquetEncoder) size() int64 { return e.w.Size() }

// finish writes the last row group and the footer.
func (e *parquetEncoder) finish() error { return e.w.Close() }

// ---- source ----

// readerAtCloser is what a Parquet file is read through: the footer comes
// first, so the file is read at offsets rather than as a stream.
type readerAtCloser interface {
	io.ReaderAt
	io.Closer
}

// parquetDecoder reads one file's rows as records.
type parquetDecoder struct {
	url string
	f   *parquet.File
	r   *parquet.GenericReader[any]
	buf []any
	// conv converts top-level columns the reader hands over raw: times
	// in their own unit, binary as strings.
	conv map[string]func(any) any
	pos  int // next row of buf
	n    int // rows in buf
	done bool
}

func newParquetDecoder(ra io.ReaderAt, size int64, url string) (*parquetDecoder, error) {
	f, err := parquet.OpenFile(ra, size, parquet.ReadBufferSize(1<<20), parquet.SkipBloomFilters(true))
	if err != nil {
		return nil, fmt.Errorf("%s: not a readable parquet file: %w", url, err)
	}
	d := &parquetDecoder{url: url, f: f, buf: make([]any, 256), conv: columnConversions(f.Schema())}
	if err := func() (err error) {
		// NewGenericReader panics on a schema it cannot map; a bad file
		// must fail the job with its name, not crash the process.
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("%v", p)
			}
		}()
		d.r = parquet.NewGenericReader[any](f)
		return nil
	}(); err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return d, nil
}

func (d *parquetDecoder) decode() (any, error) {
	if d.pos == d.n {
		if d.done {
			return nil, io.EOF
		}
		clear(d.buf)
		n, err := d.r.Read(d.buf)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: %w", d.url, err)
		}
		if err != nil || n == 0 {
			d.done = true
		}
		d.pos, d.n = 0, n
		if n == 0 {
			return nil, io.EOF
		}
	}
	v := d.buf[d.pos]
	d.buf[d.pos] = nil
	d.pos++
	if m, ok := v.(map[string]any); ok {
		for name, conv := range d.conv {
			if x, ok := m[name]; ok && x != nil {
				m[name] = conv(x)
			}
		}
	}
	return normalizeParquet(v), nil
}

// textual reports whether a BYTE_ARRAY column holds text.
func textual(t parquet.Type) bool {
	if lt := t.LogicalType(); lt != nil {
		switch lt.Value.(type) {
		case *format.StringType, *format.EnumType, *format.JsonType:
			return true
		}
	}
	if ct := t.ConvertedType(); ct != nil {
		switch *ct {
		case deprecated.UTF8, deprecated.Enum, deprecated.Json:
			return true
		}
	}
	return false
}

// columnConversions finds the top-level columns whose values need converting:
// binary columns (to bytes) and those holding points in time:
// TIMESTAMP in any unit (also as the legacy TIMESTAMP_MILLIS/MICROS
// annotations), INT96 (Spark's and Impala's old timestamps) and DATE
// (days), and returns how to turn each into ms since the epoch, the
// engine's event-time unit. Time columns nested in groups or lists are
// left in their raw unit.
func columnConversions(s *parquet.Schema) map[string]func(any) any {
	out := map[string]func(any) any{}
	scale := func(div int64) func(any) any {
		return func(x any) any {
			switch v := x.(type) {
			case int64:
				q := v / div
				if v%div < 0 {
					q-- // floor, so times before 1970 round down too
				}
				return q
			case time.Time:
				return v.UnixMilli()
			}
			return x
		}
	}
	for _, f := range s.Fields() {
		if !f.Leaf() {
			continue
		}
		t := f.Type()
		if lt := t.LogicalType(); lt != nil {
			switch v := lt.Value.(type) {
			case *format.TimestampType:
				switch v.Unit.Value.(type) {
				case *format.MilliSeconds:
					out[f.Name()] = scale(1)
				case *format.MicroSeconds:
					out[f.Name()] = scale(1000)
				case *format.NanoSeconds:
					out[f.Name()] = scale(1_000_000)
				}
				continue
			case *format.DateType:
				out[f.Name()] = func(x any) any {
					switch d := x.(type) {
					case int32:
						return int64(d) * 86_400_000
					case int64:
						return d * 86_400_000
					case time.Time:
						return d.UnixMilli()
					}
					return x
				}
				continue
			}
		}
		if ct := t.ConvertedType(); ct != nil {
			switch *ct {
			case deprecated.TimestampMillis:
				out[f.Name()] = scale(1)
				continue
			case deprecated.TimestampMicros:
				out[f.Name()] = scale(1000)
				continue
			}
		}
		if t.Kind() == parquet.ByteArray && !textual(t) {
			// Binary without a text annotation is bytes, not a string.
			out[f.Name()] = func(x any) any {
				if s, ok := x.(string); ok {
					return []byte(s)
				}
				return x
			}
			continue
		}
		if t.Kind() == parquet.Int96 {
			out[f.Name()] = func(x any) any {
				if v, ok := x.(deprecated.Int96); ok {
					nanos := int64(v[1])<<32 | int64(v[0])
					const unixEpochJulianDay = 2_440_588
					return (int64(v[2])-unixEpochJulianDay)*86_400_000 + nanos/1_000_000
				}
				return x
			}
		}
	}
	return out
}

// skip moves past n rows without decoding them (restoring a position).
func (d *parquetDecoder) skip(n int64) error {
	if n > d.f.NumRows() {
		return fmt.Errorf("%s: position %d is past its %d rows", d.url, n, d.f.NumRows())
	}
	if err := d.r.SeekToRow(n); err != nil {
		return fmt.Errorf("%s: seeking to row %d: %w", d.url, n, err)
	}
	d.pos, d.n = 0, 0
	return nil
}

func (d *parquetDecoder) close() { _ = d.r.Close() }

// normalizeParquet turns what the parquet reader reconstructs into the
// engine's dynamic values: timestamps become ms since the epoch, narrow
// numbers widen, decimals become doubles.
func normalizeParquet(v any) any {
	switch x := v.(type) {
	case time.Time:
		return x.UnixMilli()
	case *big.Float:
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeParquet(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = normalizeParquet(e)
		}
		return x
	}
	return value.Normalize(v)
}
