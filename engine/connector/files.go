package connector

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// Files: a source (bounded, or continuous with monitorInterval) and a sink
// (files_sink.go) over a Location (local or s3://), in four formats.
//
// Source records:
//   - text:  {"line": "<text>"} per line, the line ending (\n or \r\n)
//     stripped; empty lines are kept as empty strings.
//   - jsonl: value.FromJSON of each non-blank line (integers stay int64). A
//     malformed line fails the read with the file and line number: silently
//     dropping data would make BATCH and STREAMING results differ from the
//     input without anyone noticing.
//   - csv:   a map from column name to cell. Names come from the header line
//     when csv.header is set (each file has its own; csv.columns is then
//     ignored), else from csv.columns (rows must have exactly that many
//     cells), else c0, c1, .... Cells stay strings: guessing numbers
//     would make "007" or "1e3" change meaning depending on the data, so
//     conversion is left to an explicit map step (CEL int(), double()) or
//     to a declared schema.
//   - parquet: a map per row, typed by the schema stored in the file
//     (files_parquet.go).
//
// With a declared schema (jsonl and csv), records hold exactly the schema's
// fields converted to their types (files_schema.go); a record that does not
// fit fails the read with the file and line, like malformed JSON.
//
// With value.UseRows on, the records whose fields are known before the
// data is read (text lines, csv records, declared-schema records) are
// rows, which share one schema; the others stay maps.
//
// A UTF-8 byte order mark at the start of a file is dropped in the text
// formats.

// fileSource is what NewFileSource returns; unexported because callers only
// need the Source interface.
type fileSource struct {
	loc    Location
	format spec.Format
	csv    csvConfig
	schema recordSchema
	// useRows is value.UseRows when the source was created: the decoders
	// whose records' fields are known before the data is read build rows
	// (rows is the shape of declared-schema records).
	useRows bool
	rows    *rowShape
	// monitor is the continuous mode's listing interval; 0 is bounded.
	monitor time.Duration
	// malformed routes records that cannot be read (source.malformedOutput):
	// the reader emits a *Malformed for each instead of failing.
	malformed bool
}

type csvConfig struct {
	header  bool
	comma   rune
	columns []string
}

// NewFileSource reads the files at s.Path: one file, or every file under a
// directory or s3:// prefix (recursively, sorted, skipping names that start
// with "_" or "."). Without monitorInterval it is bounded and files are
// split across subtasks whole: after sorting, file i goes to subtask
// i % parallelism, so a single large file is read by one subtask. With it,
// it is continuous (files_monitor.go). cfg is used only for s3:// paths,
// and s.S3 replaces it when set (withFileS3).
func NewFileSource(s spec.FileSource, cfg S3Config) (Source, error) {
	cfg, err := withFileS3(cfg, s.S3)
	if err != nil {
		return nil, fmt.Errorf("files source %s: %w", s.Path, err)
	}
	loc, err := ParseLocation(s.Path, cfg)
	if err != nil {
		return nil, err
	}
	format := s.Format
	if format == "" {
		format = spec.FormatText
	}
	src := &fileSource{loc: loc, format: format}
	if src.schema, err = parseSchema(s.Schema); err != nil {
		return nil, fmt.Errorf("files source %s: %w", s.Path, err)
	}
	if s.MonitorInterval != "" {
		d, err := s.MonitorInterval.Get()
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("files source %s: monitorInterval %q must be a positive duration", s.Path, s.MonitorInterval)
		}
		src.monitor = d
	}
	switch format {
	case spec.FormatJSONL:
	case spec.FormatText:
		if src.schema != nil {
			return nil, fmt.Errorf("files source %s: format text takes no schema (its records are {\"line\": ...})", s.Path)
		}
	case spec.FormatCSV:
		if src.csv, err = parseCSVOptions(s.CSV); err != nil {
			return nil, fmt.Errorf("files source %s: %w", s.Path, err)
		}
	case spec.FormatParquet:
		if src.schema != nil {
			return nil, fmt.Errorf("files source %s: format parquet takes no schema (each file carries its own)", s.Path)
		}
	default:
		return nil, fmt.Errorf("files source %s: unknown format %q (want text, jsonl, csv or parquet)", s.Path, format)
	}
	src.useRows = value.UseRows
	if src.useRows && src.schema != nil {
		src.rows = src.schema.rowShape()
	}
	return src, nil
}

func parseCSVOptions(o *spec.CSVOptions) (csvConfig, error) {
	c := csvConfig{comma: ','}
	if o == nil {
		return c, nil
	}
	c.header = o.Header
	c.columns = o.Columns
	if o.Delimiter != "" {
		r, n := utf8.DecodeRuneInString(o.Delimiter)
		if r == utf8.RuneError || n != len(o.Delimiter) || r == '"' || r == '\r' || r == '\n' {
			return c, fmt.Errorf("csv delimiter %q must be one character other than a quote or line break", o.Delimiter)
		}
		c.comma = r
	}
	seen := map[string]bool{}
	for _, col := range c.columns {
		if seen[col] {
			return c, fmt.Errorf("csv column %q is listed twice", col)
		}
		seen[col] = true
	}
	return c, nil
}

func (s *fileSource) Bounded() bool { return s.monitor == 0 }

// Open lists the files now (not at construction) because construction may
// happen where the storage is not reachable, e.g. when the controller plans.
func (s *fileSource) Open(ctx context.Context, index, parallelism int) (Reader, error) {
	if parallelism < 1 || index < 0 || index >= parallelism {
		return nil, fmt.Errorf("files source: subtask %d of %d", index, parallelism)
	}
	if s.monitor > 0 {
		return &monitorReader{src: s, ctx: ctx, index: index, parallelism: parallelism, done: map[string]bool{}}, nil
	}
	all, err := s.loc.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("files source: %w", err)
	}
	var mine []FileInfo
	for i := index; i < len(all); i += parallelism {
		mine = append(mine, all[i])
	}
	return &fileReader{src: s, ctx: ctx, files: mine}, nil
}

// fileReader reads its share of files one after the other, keeping one open.
// Files are opened with the ctx of Open, not of Read: an S3 object streams
// across many Read calls, so it must live as long as the reader.
type fileReader struct {
	src   *fileSource
	ctx   context.Context
	files []FileInfo
	next  int
	rc    io.Closer
	dec   decoder
	// nrec counts the records decoded from the open file (its position).
	nrec int64
}

// decoder yields one record per call and io.EOF at the end of a file.
type decoder interface {
	decode() (any, error)
}

// skipper is a decoder that can move past records without decoding them.
type skipper interface {
	skip(n int64) error
}

// openFile opens one file of the source with its format's decoder.
// Files are opened with the ctx of Open, not of Read: an S3 object streams
// across many Read calls, so it must live as long as the reader.
func (s *fileSource) openFile(ctx context.Context, name string) (decoder, io.Closer, error) {
	url := s.loc.URL(name)
	if s.format == spec.FormatParquet {
		ra, size, err := s.loc.OpenAt(ctx, name)
		if err != nil {
			return nil, nil, fmt.Errorf("files source: %w", err)
		}
		d, err := newParquetDecoder(ra, size, url)
		if err != nil {
			_ = ra.Close()
			return nil, nil, fmt.Errorf("files source: %w", err)
		}
		return d, closers{d, ra}, nil
	}
	rc, err := s.loc.Open(ctx, name)
	if err != nil {
		return nil, nil, fmt.Errorf("files source: %w", err)
	}
	var rec *recorder
	var in io.Reader = rc
	if s.malformed && s.format == spec.FormatCSV {
		// A malformed csv row's text comes from the bytes the csv reader
		// consumed for it (it keeps no copy of the line).
		rec = &recorder{r: rc}
		in = rec
	}
	br := bufio.NewReaderSize(in, 64<<10)
	var bom int64
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, []byte("\xef\xbb\xbf")) {
		_, _ = br.Discard(3)
		bom = 3
	}
	switch s.format {
	case spec.FormatText:
		return &textDecoder{br: br, url: url, rows: s.useRows}, rc, nil
	case spec.FormatJSONL:
		d := &jsonlDecoder{textDecoder: textDecoder{br: br, url: url}, schema: s.schema, rows: s.rows}
		if s.schema != nil {
			d.fields, d.vals = newFieldLoader(s.schema.names()), make([]any, len(s.schema))
		}
		return d, rc, nil
	}
	cr := csv.NewReader(br)
	cr.Comma = s.csv.comma
	cr.ReuseRecord = true
	d := &csvDecoder{r: cr, url: url, cfg: s.csv, schema: s.schema, rows: s.rows, useRows: s.useRows, rec: rec, bom: bom}
	if !d.cfg.header {
		d.columns = d.cfg.columns
		if len(d.columns) == 0 && s.schema != nil {
			d.columns = s.schema.names()
		}
		if len(d.columns) > 0 {
			// Rows must match the declared columns; the csv package then
			// reports a short or long row with its line number.
			cr.FieldsPerRecord = len(d.columns)
		}
	}
	return d, rc, nil
}

// closers closes a decoder and its file.
type closers struct {
	d interface{ close() }
	c io.Closer
}

func (c closers) Close() error {
	c.d.close()
	return c.c.Close()
}

// skipRecords moves an open decoder past n records (restoring a position).
func skipRecords(d decoder, n int64, url string) error {
	if sk, ok := d.(skipper); ok {
		return sk.skip(n)
	}
	for i := int64(0); i < n; i++ {
		if _, err := d.decode(); err != nil {
			var me *malformedError
			if errors.As(err, &me) {
				// Read past (and routed) before the position was taken.
				continue
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("files source: seeking to record %d of %s: %w", n, url, err)
		}
	}
	return nil
}

func (r *fileReader) Read(ctx context.Context, max int, emit func(v any)) error {
	if max < 1 {
		max = 1
	}
	for n := 0; n < max; {
		if err := ctx.Err(); err != nil {
			return err
		}
		if r.dec == nil {
			if r.next == len(r.files) {
				return io.EOF
			}
			if err := r.openNext(); err != nil {
				return err
			}
		}
		v, err := r.dec.decode()
		if err == io.EOF {
			r.closeCurrent()
			continue
		}
		if err != nil {
			m := malformedAt(err, r.src.malformed, r.src.loc.URL(r.files[r.next-1].Name))
			if m == nil {
				return err
			}
			v = m
		}
		r.nrec++
		emit(v)
		n++
	}
	return nil
}

// Locate says where the value emitted last came from (Locator).
func (r *fileReader) Locate() ([]byte, string) {
	if r.dec == nil {
		return nil, ""
	}
	return locate(r.dec, r.src.loc.URL(r.files[r.next-1].Name))
}

// located is a decoder that knows the line of the record it decoded last
// and its text.
type located interface {
	last() (raw []byte, line int)
}

func locate(d decoder, url string) ([]byte, string) {
	l, ok := d.(located)
	if !ok {
		return nil, url
	}
	raw, line := l.last()
	return raw, url + ":" + strconv.Itoa(line)
}

// Position is the index of the file being read (in the subtask's sorted
// list) and the number of records already read from it.
func (r *fileReader) Position() ([]byte, error) {
	if r.dec == nil {
		return encodeInts(int64(r.next), 0), nil
	}
	return encodeInts(int64(r.next-1), r.nrec), nil
}

// Seek reopens the file at a position Position returned and skips the
// records already read from it. The listing must not have changed.
func (r *fileReader) Seek(pos []byte) error {
	v, err := decodeInts(pos, 2)
	if err != nil {
		return err
	}
	if v[0] > int64(len(r.files)) {
		return fmt.Errorf("files source: position %q is past the %d files of this subtask", pos, len(r.files))
	}
	r.closeCurrent()
	r.next = int(v[0])
	if v[1] == 0 {
		return nil
	}
	if r.next == len(r.files) {
		return fmt.Errorf("files source: position %q is past the %d files of this subtask", pos, len(r.files))
	}
	if err := r.openNext(); err != nil {
		return err
	}
	if err := skipRecords(r.dec, v[1], r.src.loc.URL(r.files[r.next-1].Name)); err != nil {
		return err
	}
	r.nrec = v[1]
	return nil
}

func (r *fileReader) openNext() error {
	f := r.files[r.next]
	r.next++
	dec, c, err := r.src.openFile(r.ctx, f.Name)
	if err != nil {
		return err
	}
	r.rc, r.dec, r.nrec = c, dec, 0
	return nil
}

func (r *fileReader) closeCurrent() {
	if r.rc != nil {
		_ = r.rc.Close()
	}
	r.rc, r.dec = nil, nil
}

func (r *fileReader) Close() error {
	r.closeCurrent()
	r.next = len(r.files)
	return nil
}

type textDecoder struct {
	br   *bufio.Reader
	url  string
	line int
	// lastLine is the line read last.
	lastLine string
	// rows makes the text format's records rows of lineSchema
	// (value.UseRows).
	rows bool
}

// readLine returns the next line without its ending. ReadString rather
// than bufio.Scanner so a long line is never an error.
func (d *textDecoder) readLine() (string, error) {
	s, err := d.br.ReadString('\n')
	if err != nil && (err != io.EOF || s == "") {
		if err == io.EOF {
			return "", io.EOF
		}
		return "", fmt.Errorf("%s: line %d: %w", d.url, d.line+1, err)
	}
	d.line++
	if len(s) > 0 && s[len(s)-1] == '\n' {
		s = s[:len(s)-1]
	}
	if len(s) > 0 && s[len(s)-1] == '\r' {
		s = s[:len(s)-1]
	}
	d.lastLine = s
	return s, nil
}

func (d *textDecoder) last() ([]byte, int) { return []byte(d.lastLine), d.line }

// lineSchema is the schema of the text format's records.
var lineSchema = value.MustSchemaOf("line")

func (d *textDecoder) decode() (any, error) {
	s, err := d.readLine()
	if err != nil {
		return nil, err
	}
	if d.rows {
		r := value.NewRow(lineSchema)
		r.Set(0, s)
		return r, nil
	}
	return map[string]any{"line": s}, nil
}

type jsonlDecoder struct {
	textDecoder
	schema recordSchema
	rows   *rowShape // build rows of this shape (nil: maps)
	fields *fieldLoader
	vals   []any
}

func (d *jsonlDecoder) decode() (any, error) {
	for {
		s, err := d.readLine()
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace([]byte(s))) == 0 {
			continue
		}
		v, err := value.FromJSON([]byte(s))
		if err != nil {
			return nil, &malformedError{err: fmt.Errorf("%s: line %d: invalid JSON: %w", d.url, d.line, err), raw: s, line: d.line}
		}
		if d.schema != nil {
			if err := d.schema.conform(d.fields, v, d.vals); err != nil {
				return nil, &malformedError{err: fmt.Errorf("%s: line %d: %w", d.url, d.line, err), raw: s, line: d.line}
			}
			return d.schema.record(d.vals, d.rows), nil
		}
		return v, nil
	}
}

type csvDecoder struct {
	r       *csv.Reader
	url     string
	cfg     csvConfig
	columns []string
	started bool
	schema  recordSchema
	rows    *rowShape // typed records as rows of this shape (nil: maps)
	vals    []any
	// useRows makes untyped records rows too: rowSchema is theirs, for
	// rows of len(rowAt) cells, cell i going to field rowAt[i] (a file's
	// rows all have the header's or the first row's number of cells).
	useRows   bool
	rowSchema *value.Schema
	rowAt     []int
	// cols[i] is the column of schema field i, or -1 when the file has no
	// such column (set on the first row, once the columns are known).
	cols []int
	// rec records the file's bytes when malformed rows are routed (else
	// nil); bom is the length of the byte order mark skipped before the
	// csv reader's offsets start. lastRaw and lastLine are the row read
	// last: its text (with rec) and first line.
	rec      *recorder
	bom      int64
	lastRaw  []byte
	lastLine int
}

func (d *csvDecoder) last() ([]byte, int) { return d.lastRaw, d.lastLine }

// recorder keeps the bytes read from r since the last take, so a csv row's
// text can be cut out of what the csv reader consumed.
type recorder struct {
	r    io.Reader
	buf  []byte // the bytes from offset base on
	base int64
}

func (x *recorder) Read(p []byte) (int, error) {
	n, err := x.r.Read(p)
	x.buf = append(x.buf, p[:n]...)
	return n, err
}

// take returns the bytes at [from, to) of the input and forgets those
// before to.
func (x *recorder) take(from, to int64) []byte {
	if from < x.base || to < from || to-x.base > int64(len(x.buf)) {
		return nil
	}
	b := x.buf[from-x.base : to-x.base : to-x.base]
	x.buf, x.base = x.buf[to-x.base:], to
	return b
}

// trimEOL drops a line ending.
func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

func (d *csvDecoder) decode() (any, error) {
	if !d.started && d.cfg.header {
		d.started = true
		head, err := d.r.Read()
		if err == io.EOF {
			return nil, io.EOF
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d.url, err)
		}
		d.columns = append([]string(nil), head...)
		seen := map[string]bool{}
		for _, c := range d.columns {
			if seen[c] {
				return nil, fmt.Errorf("%s: header names column %q twice", d.url, c)
			}
			seen[c] = true
		}
	}
	d.started = true
	start := d.r.InputOffset()
	row, err := d.r.Read()
	if err == io.EOF {
		return nil, io.EOF
	}
	if d.rec != nil {
		d.lastRaw = trimEOL(d.rec.take(start+d.bom, d.r.InputOffset()+d.bom))
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		d.lastLine = pe.StartLine
		return nil, &malformedError{err: fmt.Errorf("%s: %w", d.url, err), raw: string(d.lastRaw), line: pe.StartLine}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.url, err)
	}
	d.lastLine, _ = d.r.FieldPos(0)
	if d.schema != nil {
		return d.typed(row)
	}
	if d.useRows {
		if d.rowSchema == nil || len(d.rowAt) != len(row) {
			d.rowSchema, d.rowAt = nil, d.rowAt[:0]
			names := make([]string, len(row))
			for i := range row {
				names[i] = d.columnName(i)
			}
			if s, err := value.SchemaOf(names...); err == nil {
				d.rowSchema = s
				for _, n := range names {
					d.rowAt = append(d.rowAt, s.Index(n))
				}
			}
		}
		if d.rowSchema != nil {
			r := value.NewRow(d.rowSchema)
			for i, cell := range row {
				r.Set(d.rowAt[i], cell)
			}
			return r, nil
		}
	}
	m := make(map[string]any, len(row))
	for i, cell := range row {
		m[d.columnName(i)] = cell
	}
	return m, nil
}

// columnName names cell i of an untyped record.
func (d *csvDecoder) columnName(i int) string {
	if i < len(d.columns) {
		return d.columns[i]
	}
	return "c" + strconv.Itoa(i)
}

// typed converts a row by the declared schema: each field from the column
// of the same name, other columns dropped.
func (d *csvDecoder) typed(row []string) (any, error) {
	if d.cols == nil {
		d.cols = make([]int, len(d.schema))
		for i, f := range d.schema {
			d.cols[i] = -1
			for j, c := range d.columns {
				if c == f.name {
					d.cols[i] = j
				}
			}
			if d.cols[i] < 0 && !f.nullable {
				return nil, fmt.Errorf("%s: schema field %q is required but the file has no such column (columns %v)", d.url, f.name, d.columns)
			}
		}
	}
	if d.vals == nil {
		d.vals = make([]any, len(d.schema))
	}
	for i, f := range d.schema {
		var v any
		if j := d.cols[i]; j >= 0 && j < len(row) {
			var err error
			if v, err = f.parseCell(row[j]); err != nil {
				line, _ := d.r.FieldPos(j)
				return nil, &malformedError{err: fmt.Errorf("%s: line %d: %w", d.url, line, err), raw: string(d.lastRaw), line: d.lastLine}
			}
		} else if !f.nullable {
			line, _ := d.r.FieldPos(0)
			return nil, &malformedError{err: fmt.Errorf("%s: line %d: field %q is required but the row has no cell for it", d.url, line, f.name), raw: string(d.lastRaw), line: d.lastLine}
		}
		d.vals[i] = v
	}
	return d.schema.record(d.vals, d.rows), nil
}
