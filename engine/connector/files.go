package connector

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// Files: a bounded source and a sink over a Location (local or s3://), in
// three formats.
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
//     conversion is left to an explicit map step (CEL int(), double()).
//
// A UTF-8 byte order mark at the start of a file is dropped in every format.

// fileSource is what NewFileSource returns; unexported because callers only
// need the Source interface.
type fileSource struct {
	loc    Location
	format spec.Format
	csv    csvConfig
}

type csvConfig struct {
	header  bool
	comma   rune
	columns []string
}

// NewFileSource reads the files at s.Path: one file, or every file under a
// directory or s3:// prefix (recursively, sorted, skipping names that start
// with "_" or "."). It is bounded. Files are split across subtasks whole:
// after sorting, file i goes to subtask i % parallelism, so a single large
// file is read by one subtask. cfg is used only for s3:// paths.
func NewFileSource(s spec.FileSource, cfg S3Config) (Source, error) {
	loc, err := ParseLocation(s.Path, cfg)
	if err != nil {
		return nil, err
	}
	format := s.Format
	if format == "" {
		format = spec.FormatText
	}
	src := &fileSource{loc: loc, format: format}
	switch format {
	case spec.FormatText, spec.FormatJSONL:
	case spec.FormatCSV:
		if src.csv, err = parseCSVOptions(s.CSV); err != nil {
			return nil, fmt.Errorf("files source %s: %w", s.Path, err)
		}
	default:
		return nil, fmt.Errorf("files source %s: unknown format %q (want text, jsonl or csv)", s.Path, format)
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

func (s *fileSource) Bounded() bool { return true }

// Open lists the files now (not at construction) because construction may
// happen where the storage is not reachable, e.g. when the controller plans.
func (s *fileSource) Open(ctx context.Context, index, parallelism int) (Reader, error) {
	if parallelism < 1 || index < 0 || index >= parallelism {
		return nil, fmt.Errorf("files source: subtask %d of %d", index, parallelism)
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
	rc    io.ReadCloser
	dec   decoder
	// nrec counts the records decoded from the open file (its position).
	nrec int64
}

// decoder yields one record per call and io.EOF at the end of a file.
type decoder interface {
	decode() (any, error)
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
			return err
		}
		r.nrec++
		emit(v)
		n++
	}
	return nil
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
	for r.nrec < v[1] {
		if _, err := r.dec.decode(); err != nil {
			return fmt.Errorf("files source: seeking to record %d of %s: %w", v[1], r.files[r.next-1].Name, err)
		}
		r.nrec++
	}
	return nil
}

func (r *fileReader) openNext() error {
	f := r.files[r.next]
	r.next++
	url := r.src.loc.URL(f.Name)
	rc, err := r.src.loc.Open(r.ctx, f.Name)
	if err != nil {
		return fmt.Errorf("files source: %w", err)
	}
	br := bufio.NewReaderSize(rc, 64<<10)
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, []byte("\xef\xbb\xbf")) {
		_, _ = br.Discard(3)
	}
	r.rc = rc
	r.nrec = 0
	switch r.src.format {
	case spec.FormatText:
		r.dec = &textDecoder{br: br, url: url}
	case spec.FormatJSONL:
		r.dec = &jsonlDecoder{textDecoder{br: br, url: url}}
	case spec.FormatCSV:
		cr := csv.NewReader(br)
		cr.Comma = r.src.csv.comma
		cr.ReuseRecord = true
		d := &csvDecoder{r: cr, url: url, cfg: r.src.csv}
		if !d.cfg.header && len(d.cfg.columns) > 0 {
			// Rows must match the declared columns; the csv package then
			// reports a short or long row with its line number.
			cr.FieldsPerRecord = len(d.cfg.columns)
			d.columns = d.cfg.columns
		}
		r.dec = d
	}
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
	return s, nil
}

func (d *textDecoder) decode() (any, error) {
	s, err := d.readLine()
	if err != nil {
		return nil, err
	}
	return map[string]any{"line": s}, nil
}

type jsonlDecoder struct {
	textDecoder
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
			return nil, fmt.Errorf("%s: line %d: invalid JSON: %w", d.url, d.line, err)
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
	row, err := d.r.Read()
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.url, err)
	}
	m := make(map[string]any, len(row))
	for i, cell := range row {
		var name string
		if i < len(d.columns) {
			name = d.columns[i]
		} else {
			name = "c" + strconv.Itoa(i)
		}
		m[name] = cell
	}
	return m, nil
}

// ---- sink ----

// OutputClearer is implemented by sinks whose output location should be
// emptied once before a run (the file sink); the CLI and the controller
// call it, never a subtask, so parallel writers cannot race on it.
type OutputClearer interface {
	ClearOutput(ctx context.Context) error
}

// defaultRollSize is the size at which a writer starts its next part file,
// Flink's default rolling size, so no single file grows without bound.
const defaultRollSize = 128 << 20

// FileSink writes part files part-<subtask>-<seq>.<ext> (ext txt, jsonl or
// csv) into a directory, each made visible only when complete (temp file
// and rename locally, a completed multipart upload on S3), then _SUCCESS
// when the job finishes.
//
// The names are deterministic, so a retried subtask overwrites its own
// earlier parts instead of adding duplicates. The output directory should
// still be fresh: parts of an earlier run with more subtasks or more rolls
// would remain. ClearOutput removes them; call it once before the run.
// Subtasks never delete, because subtask 0 deleting while subtask 1 has
// already committed would lose data.
//
// A subtask that writes no record creates no file. A writer starts a new
// part (seq+1) after about 128 MiB.
type FileSink struct {
	loc      Location
	format   spec.Format
	ext      string
	csv      csvConfig
	rollSize int64
}

// NewFileSink writes to the directory s.Path (local or s3://). The csv
// format requires csv.columns, which fix the column order; a missing field
// is an empty cell. cfg is used only for s3:// paths.
func NewFileSink(s spec.FileSink, cfg S3Config) (Sink, error) {
	loc, err := ParseLocation(s.Path, cfg)
	if err != nil {
		return nil, err
	}
	format := s.Format
	if format == "" {
		format = spec.FormatJSONL
	}
	sink := &FileSink{loc: loc, format: format, rollSize: defaultRollSize}
	switch format {
	case spec.FormatText:
		sink.ext = "txt"
	case spec.FormatJSONL:
		sink.ext = "jsonl"
	case spec.FormatCSV:
		sink.ext = "csv"
		if sink.csv, err = parseCSVOptions(s.CSV); err != nil {
			return nil, fmt.Errorf("files sink %s: %w", s.Path, err)
		}
		if len(sink.csv.columns) == 0 {
			return nil, fmt.Errorf("files sink %s: format csv needs csv.columns (the columns to write, in order)", s.Path)
		}
	default:
		return nil, fmt.Errorf("files sink %s: unknown format %q (want text, jsonl or csv)", s.Path, format)
	}
	return sink, nil
}

// Open returns the writer of one subtask. ctx bounds the writer's whole
// life (uploads in flight stop when it is done), not just this call.
func (s *FileSink) Open(ctx context.Context, index, parallelism int) (Writer, error) {
	if parallelism < 1 || index < 0 || index >= parallelism {
		return nil, fmt.Errorf("files sink: subtask %d of %d", index, parallelism)
	}
	return &fileWriter{sink: s, ctx: ctx, index: index}, nil
}

// Finish writes the empty _SUCCESS marker, which readers (and Hadoop/Spark
// tooling) take as "every part is complete".
func (s *FileSink) Finish(ctx context.Context) error {
	w, err := s.loc.Create(ctx, "_SUCCESS")
	if err != nil {
		return fmt.Errorf("files sink: %w", err)
	}
	if err := w.Commit(); err != nil {
		return fmt.Errorf("files sink: %w", err)
	}
	return nil
}

// ClearOutput deletes the part files, the _SUCCESS marker and temp files
// left by crashed writers of earlier runs. Other files are left alone, so
// pointing a sink at a directory with unrelated data does not destroy it.
func (s *FileSink) ClearOutput(ctx context.Context) error {
	for _, p := range []string{"part-", "_SUCCESS", ".part-"} {
		if err := s.loc.DeletePrefix(ctx, p); err != nil {
			return fmt.Errorf("files sink: clearing %s: %w", s.loc.URL(p), err)
		}
	}
	return nil
}

// fileWriter writes one subtask's part files.
type fileWriter struct {
	sink    *FileSink
	ctx     context.Context
	index   int
	seq     int
	cur     FileWriter
	written int64
	buf     []byte
	cells   []string
	csvBuf  bytes.Buffer
	csvW    *csv.Writer
	err     error // sticky: after a failed write the part cannot be trusted
	closed  bool
}

func (w *fileWriter) Write(r *value.Record) error {
	if w.closed {
		return errors.New("files sink: write after close")
	}
	if w.err != nil {
		return w.err
	}
	if w.cur == nil {
		if err := w.startPart(); err != nil {
			w.err = err
			return err
		}
	}
	b, err := w.encode(w.buf[:0], r.Value)
	if err != nil {
		return err // a bad record leaves the part intact
	}
	w.buf = b
	if _, err := w.cur.Write(b); err != nil {
		w.err = err
		return err
	}
	w.written += int64(len(b))
	if w.written >= w.sink.rollSize {
		cur := w.cur
		w.cur = nil
		w.seq++
		if err := cur.Commit(); err != nil {
			w.err = err
			return err
		}
	}
	return nil
}

func (w *fileWriter) startPart() error {
	name := fmt.Sprintf("part-%d-%d.%s", w.index, w.seq, w.sink.ext)
	fw, err := w.sink.loc.Create(w.ctx, name)
	if err != nil {
		return fmt.Errorf("files sink: %w", err)
	}
	w.cur, w.written = fw, 0
	if w.sink.format == spec.FormatCSV && w.sink.csv.header {
		h, err := w.csvLine(nil, w.sink.csv.columns)
		if err == nil {
			_, err = fw.Write(h)
		}
		if err != nil {
			fw.Abort()
			w.cur = nil
			return fmt.Errorf("files sink: %w", err)
		}
		w.written += int64(len(h))
	}
	return nil
}

func (w *fileWriter) encode(b []byte, v any) ([]byte, error) {
	switch w.sink.format {
	case spec.FormatJSONL:
		b = value.AppendJSON(b, v)
	case spec.FormatText:
		switch x := v.(type) {
		case string:
			b = append(b, x...)
		case map[string]any:
			if l, ok := x["line"]; ok {
				if s, ok := l.(string); ok {
					b = append(b, s...)
				} else {
					b = value.AppendJSON(b, l)
				}
			} else {
				b = value.AppendJSON(b, x)
			}
		default:
			b = value.AppendJSON(b, v)
		}
	case spec.FormatCSV:
		m, ok := v.(map[string]any)
		if !ok {
			return b, fmt.Errorf("files sink: csv needs map records, got %s", value.TypeName(v))
		}
		w.cells = w.cells[:0]
		for _, c := range w.sink.csv.columns {
			w.cells = append(w.cells, csvCell(m[c]))
		}
		return w.csvLine(b, w.cells)
	}
	return append(b, '\n'), nil
}

// csvLine appends one CSV line; encoding/csv does the quoting.
func (w *fileWriter) csvLine(b []byte, cells []string) ([]byte, error) {
	if w.csvW == nil {
		w.csvW = csv.NewWriter(&w.csvBuf)
		w.csvW.Comma = w.sink.csv.comma
	}
	w.csvBuf.Reset()
	if err := w.csvW.Write(cells); err != nil {
		return b, err
	}
	w.csvW.Flush()
	if err := w.csvW.Error(); err != nil {
		return b, err
	}
	return append(b, w.csvBuf.Bytes()...), nil
}

// csvCell renders one field: strings as they are, null and missing as an
// empty cell, bytes as base64, and everything else as its JSON text.
func csvCell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []byte:
		return base64.StdEncoding.EncodeToString(x)
	}
	return string(value.AppendJSON(nil, v))
}

// Close commits the current part. A writer whose write failed is aborted
// instead and reports that failure, so a torn part never becomes visible.
func (w *fileWriter) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err != nil {
		w.Abort()
		return w.err
	}
	if w.cur == nil {
		return nil
	}
	cur := w.cur
	w.cur = nil
	if err := cur.Commit(); err != nil {
		w.err = err
		return err
	}
	return nil
}

func (w *fileWriter) Abort() {
	if w.cur != nil {
		w.cur.Abort()
		w.cur = nil
	}
}
