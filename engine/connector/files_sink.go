package connector

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// OutputClearer is implemented by sinks whose output location should be
// emptied once before a run (the file sink); the CLI and the controller
// call it, never a subtask, so parallel writers cannot race on it.
type OutputClearer interface {
	ClearOutput(ctx context.Context) error
}

// defaultRollSize is the size at which a writer starts its next part file,
// Flink's default rolling size, so no single file grows without bound.
const defaultRollSize = 128 << 20

// pendingDir is where part files wait, hidden from readers (every reader
// that follows the Hadoop convention, ours included, skips names starting
// with "_" or "."), until they are published under their final names.
const pendingDir = "_pending/"

// FileSink writes part files into a directory (local or s3://) and is
// exactly once in STREAMING with checkpoints: it implements Transactional,
// as Flink's FileSink does, with the three states of a part file:
//
//   - in progress: being written, invisible (locally a hidden temp file
//     _pending/.part-...tmp-*, on S3 an open multipart upload);
//   - pending: complete but not yet visible, at _pending/<name>. A part is
//     finished when it reaches rollingPolicy.maxPartSize, when it has been
//     open rollingPolicy.rolloverInterval (checked at the next record), at
//     every checkpoint barrier (PreCommit, which bulk formats such as
//     Parquet need anyway: a Parquet file is only valid once its footer is
//     written) and at the end of a bounded input (Close);
//   - finished: moved to <name> in the directory (a rename locally, a
//     server-side copy and delete on S3), when the checkpoint that covers
//     it completes (Commit), or, for the parts of the end of the input, by
//     Finish once every subtask has finished.
//
// Pending parts on S3 are complete objects, not open multipart uploads
// (Flink keeps the upload open and completes it on commit): a completed
// object survives bucket lifecycle rules that abort old incomplete uploads
// and the 7-day limits some stores put on them, so a job can be restored
// from an old checkpoint; the price is one server-side copy per part.
//
// Names are part-<subtask>-<epoch>-<n>.<ext> (ext txt, jsonl, csv or
// parquet), epoch being the checkpoint id after which the part was started
// (0 before the first checkpoint and in BATCH) and n counting the parts of
// the epoch. They are deterministic: a retried subtask writes the same
// names again, and since a restored subtask first deletes what an earlier
// attempt of it staged after its checkpoint, a retry never adds a part.
//
// How to use it exactly once (for the operator and workers): nothing to set
// on the sink itself. Run the job in STREAMING with checkpoints
// (spec.checkpointing) and the task drives PreCommit, Commit and Recover;
// optionally set spec.steps[].sink.files.rollingPolicy (maxPartSize bytes,
// rolloverInterval) to bound part sizes and ages between checkpoints.
// Output of checkpoint N is visible once N completes, so the checkpoint
// interval is the output latency. In BATCH, or in STREAMING without
// checkpoints, parts are published by Finish at the job's end; an unbounded
// job without checkpoints therefore never shows output, as in Flink.
//
// ClearOutput empties the directory of earlier runs' parts before a fresh
// run; subtasks never delete published parts.
type FileSink struct {
	loc      Location
	pending  Location // loc's _pending/ directory
	format   spec.Format
	ext      string
	csv      csvConfig
	schema   recordSchema
	csvField []int // csv column i is schema field csvField[i], or -1
	// csvNames are the fields a csv record is read for: the schema's,
	// then the columns not in it; column i is csvNames[csvAt[i]].
	csvNames []string
	csvAt    []int
	// rows is the row form of the schema, for jsonl: a conformed record
	// is written as a row, whose fields are already in JSON's order.
	rows         *rowShape
	pq           *parquet.Schema
	rollSize     int64
	rollInterval time.Duration
	now          func() time.Time
}

// NewFileSink writes to the directory s.Path (local or s3://). The csv
// format needs its columns, from csv.columns or else the schema's field
// names; a missing field is an empty cell. parquet needs a schema. cfg is
// used only for s3:// paths, and s.S3 replaces it when set (withFileS3).
func NewFileSink(s spec.FileSink, cfg S3Config) (Sink, error) {
	cfg, err := withFileS3(cfg, s.S3)
	if err != nil {
		return nil, fmt.Errorf("files sink %s: %w", s.Path, err)
	}
	loc, err := ParseLocation(s.Path, cfg)
	if err != nil {
		return nil, err
	}
	format := s.Format
	if format == "" {
		format = spec.FormatJSONL
	}
	sink := &FileSink{loc: loc, pending: loc.Sub(pendingDir), format: format, rollSize: defaultRollSize, now: time.Now}
	if sink.schema, err = parseSchema(s.Schema); err != nil {
		return nil, fmt.Errorf("files sink %s: %w", s.Path, err)
	}
	if rp := s.RollingPolicy; rp != nil {
		if rp.MaxPartSize < 0 {
			return nil, fmt.Errorf("files sink %s: rollingPolicy.maxPartSize must not be negative", s.Path)
		}
		if rp.MaxPartSize > 0 {
			sink.rollSize = rp.MaxPartSize
		}
		if rp.RolloverInterval != "" {
			d, err := rp.RolloverInterval.Get()
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("files sink %s: rollingPolicy.rolloverInterval %q must be a positive duration", s.Path, rp.RolloverInterval)
			}
			sink.rollInterval = d
		}
	}
	switch format {
	case spec.FormatText:
		sink.ext = "txt"
		if sink.schema != nil {
			return nil, fmt.Errorf("files sink %s: format text takes no schema (it writes one line per record)", s.Path)
		}
	case spec.FormatJSONL:
		sink.ext = "jsonl"
		if sink.schema != nil {
			sink.rows = sink.schema.rowShape()
		}
	case spec.FormatCSV:
		sink.ext = "csv"
		if sink.csv, err = parseCSVOptions(s.CSV); err != nil {
			return nil, fmt.Errorf("files sink %s: %w", s.Path, err)
		}
		if len(sink.csv.columns) == 0 && sink.schema != nil {
			sink.csv.columns = sink.schema.names()
		}
		if len(sink.csv.columns) == 0 {
			return nil, fmt.Errorf("files sink %s: format csv needs csv.columns or a schema (the columns to write, in order)", s.Path)
		}
		sink.csvNames = sink.schema.names()
		for _, c := range sink.csv.columns {
			j := -1
			for k, f := range sink.schema {
				if f.name == c {
					j = k
				}
			}
			sink.csvField = append(sink.csvField, j)
			if j < 0 {
				j = len(sink.csvNames)
				sink.csvNames = append(sink.csvNames, c)
			}
			sink.csvAt = append(sink.csvAt, j)
		}
	case spec.FormatParquet:
		sink.ext = "parquet"
		if sink.schema == nil {
			return nil, fmt.Errorf("files sink %s: format parquet needs a schema (the columns of the files)", s.Path)
		}
		sink.pq = parquetSchemaOf(sink.schema)
	default:
		return nil, fmt.Errorf("files sink %s: unknown format %q (want text, jsonl, csv or parquet)", s.Path, format)
	}
	return sink, nil
}

// Open returns the writer of one subtask. ctx bounds the writer's whole
// life (uploads in flight stop when it is done), not just this call.
func (s *FileSink) Open(ctx context.Context, index, parallelism int) (Writer, error) {
	if parallelism < 1 || index < 0 || index >= parallelism {
		return nil, fmt.Errorf("files sink: subtask %d of %d", index, parallelism)
	}
	w := &fileWriter{sink: s, ctx: ctx, index: index, precommits: map[int64]int{}}
	switch {
	case s.format == spec.FormatParquet:
		w.enc = &parquetEncoder{schema: s.schema, ps: s.pq}
	case s.format == spec.FormatCSV:
		w.enc = &lineEncoder{sink: s, fields: newFieldLoader(s.csvNames), vals: make([]any, len(s.csvNames))}
	case s.schema != nil:
		w.enc = &lineEncoder{sink: s, fields: newFieldLoader(s.schema.names()), vals: make([]any, len(s.schema)), out: value.NewRow(s.rows.schema)}
	default:
		w.enc = &lineEncoder{sink: s}
	}
	return w, nil
}

// Finish publishes every part still pending (the parts of the end of a
// bounded input, and of checkpoints whose completion no subtask got to
// commit), deletes what crashed writers left in _pending/, and writes the
// empty _SUCCESS marker, which readers (and Hadoop/Spark tooling) take as
// "every part is complete". It runs once, after every subtask finished.
func (s *FileSink) Finish(ctx context.Context) error {
	names, err := s.pendingParts(ctx, "part-")
	if err != nil {
		return fmt.Errorf("files sink: %w", err)
	}
	for _, n := range names {
		if err := s.publish(ctx, n); err != nil {
			return fmt.Errorf("files sink: %w", err)
		}
	}
	if err := s.pending.DeletePrefix(ctx, ""); err != nil {
		return fmt.Errorf("files sink: %w", err)
	}
	if err := abortUploads(ctx, s.pending, ""); err != nil {
		return fmt.Errorf("files sink: %w", err)
	}
	removeEmptyDir(s.pending)
	if len(names) > 0 {
		slog.Debug("files sink published pending parts at the end of the job", "path", s.loc.String(), "parts", len(names))
	}
	w, err := s.loc.Create(ctx, "_SUCCESS")
	if err != nil {
		return fmt.Errorf("files sink: %w", err)
	}
	if err := w.Commit(); err != nil {
		return fmt.Errorf("files sink: %w", err)
	}
	return nil
}

// ClearOutput deletes the part files, the _SUCCESS marker, staged parts
// and temp files left by crashed writers of earlier runs. Other files are
// left alone, so pointing a sink at a directory with unrelated data does
// not destroy it.
func (s *FileSink) ClearOutput(ctx context.Context) error {
	for _, p := range []string{"part-", "_SUCCESS", ".part-", pendingDir} {
		if err := s.loc.DeletePrefix(ctx, p); err != nil {
			return fmt.Errorf("files sink: clearing %s: %w", s.loc.URL(p), err)
		}
	}
	if err := abortUploads(ctx, s.pending, ""); err != nil {
		return fmt.Errorf("files sink: %w", err)
	}
	removeEmptyDir(s.pending)
	return nil
}

// pendingParts lists the pending parts whose names start with prefix.
// In-progress temp files are hidden and not listed.
func (s *FileSink) pendingParts(ctx context.Context, prefix string) ([]string, error) {
	files, err := s.pending.List(ctx)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range files {
		if strings.HasPrefix(f.Name, prefix) {
			out = append(out, f.Name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// publish moves a pending part to its final name. It is idempotent: a part
// already published (by an earlier attempt that crashed after the move, or
// by a commit racing Finish) is left alone.
func (s *FileSink) publish(ctx context.Context, name string) error {
	err := s.loc.Rename(ctx, pendingDir+name, name)
	if err == nil {
		return nil
	}
	staged, serr := s.loc.Exists(ctx, pendingDir+name)
	final, ferr := s.loc.Exists(ctx, name)
	if serr == nil && ferr == nil && !staged && final {
		return nil
	}
	if serr == nil && ferr == nil && !staged && !final {
		return fmt.Errorf("part %s is neither pending nor published (was the output directory changed during the run?)", s.loc.URL(name))
	}
	return err
}

// removeEmptyDir removes a local directory if it is empty (S3 has no
// directories). Best effort: a leftover empty hidden directory is harmless.
func removeEmptyDir(l Location) {
	if ll, ok := l.(*localLocation); ok {
		_ = os.Remove(ll.root)
	}
}

// fileSinkState is what PreCommit returns and Recover reads: the pending
// parts a checkpoint covers.
type fileSinkState struct {
	Subtask    int   `json:"subtask"`
	Checkpoint int64 `json:"checkpoint"`
	// NextEpoch is the epoch of the parts started after the checkpoint.
	NextEpoch int64 `json:"nextEpoch"`
	// Pending are the names of the parts to publish once the checkpoint
	// completes: every part finished before its barrier and not yet
	// published (a checkpoint that failed leaves its parts to the next).
	Pending []string `json:"pending"`
}

// fileWriter writes one subtask's part files. Its methods are safe to call
// from different goroutines (the task may deliver Commit from the one that
// learns of checkpoint completion), though never at once in practice.
type fileWriter struct {
	sink  *FileSink
	ctx   context.Context
	index int

	mu sync.Mutex
	// started is set once the writer has cleaned up after earlier attempts
	// (a fresh start) or recovered from a checkpoint.
	started bool
	epoch   int64
	seq     int // next part number within the epoch
	cur     FileWriter
	curName string
	opened  time.Time
	enc     partEncoder
	// pending are finished parts not yet published, in the order they
	// were finished; pre is the PreCommit (by sequence) that covered the
	// part, or -1.
	pending []pendingPart
	// precommits maps a checkpoint id to its PreCommit's sequence number,
	// so Commit(id) publishes exactly what that PreCommit covered.
	precommits map[int64]int
	nprecommit int
	err        error // sticky: after a failed write the part cannot be trusted
	closed     bool
}

type pendingPart struct {
	name string
	pre  int
}

// partEncoder encodes records into one part file at a time.
type partEncoder interface {
	// reset starts a new part written to out.
	reset(out io.Writer) error
	// write encodes one record. A recordError leaves the part intact.
	write(v any) error
	// size is the part's size so far (an estimate for buffered formats).
	size() int64
	// finish writes what the format needs at the end (Parquet's footer).
	finish() error
}

// recordError is a record the format cannot encode: the job fails with it,
// but the part file is still intact.
type recordError struct{ err error }

func (e recordError) Error() string { return e.err.Error() }
func (e recordError) Unwrap() error { return e.err }

// ReleasesValues: every format encodes a record before Write returns (the
// Parquet writer keeps column values, which are never changed, not the
// maps holding them).
func (w *fileWriter) ReleasesValues() bool { return true }

func (w *fileWriter) Write(r *value.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errors.New("files sink: write after close")
	}
	if w.err != nil {
		return w.err
	}
	if err := w.start(); err != nil {
		return err
	}
	if w.cur != nil && w.sink.rollInterval > 0 && w.sink.now().Sub(w.opened) >= w.sink.rollInterval {
		if err := w.finishPart(); err != nil {
			return err
		}
	}
	if w.cur == nil {
		if err := w.startPart(); err != nil {
			return err
		}
	}
	if err := w.enc.write(r.Value); err != nil {
		var re recordError
		if errors.As(err, &re) {
			return fmt.Errorf("files sink %s: %w", w.sink.loc.URL(w.curName), re.err)
		}
		w.err = fmt.Errorf("files sink %s: %w", w.sink.loc.URL(w.curName), err)
		return w.err
	}
	if w.enc.size() >= w.sink.rollSize {
		return w.finishPart()
	}
	return nil
}

// start cleans up, on the first call of a writer that was not recovered,
// what earlier attempts of this subtask staged: their parts were never
// covered by a completed checkpoint, or this attempt would have been
// recovered from it.
func (w *fileWriter) start() error {
	if w.started {
		return nil
	}
	w.started = true
	if err := w.deleteStaged(w.ctx); err != nil {
		w.err = err
		return err
	}
	return nil
}

// deleteStaged deletes this subtask's pending parts, temp files and open
// uploads.
func (w *fileWriter) deleteStaged(ctx context.Context) error {
	for _, p := range []string{fmt.Sprintf("part-%d-", w.index), fmt.Sprintf(".part-%d-", w.index)} {
		if err := w.sink.pending.DeletePrefix(ctx, p); err != nil {
			return fmt.Errorf("files sink: deleting parts staged by an earlier attempt: %w", err)
		}
	}
	if err := abortUploads(ctx, w.sink.pending, fmt.Sprintf("part-%d-", w.index)); err != nil {
		return fmt.Errorf("files sink: aborting uploads of an earlier attempt: %w", err)
	}
	return nil
}

func (w *fileWriter) startPart() error {
	name := fmt.Sprintf("part-%d-%d-%d.%s", w.index, w.epoch, w.seq, w.sink.ext)
	fw, err := w.sink.loc.Create(w.ctx, pendingDir+name)
	if err != nil {
		w.err = fmt.Errorf("files sink: %w", err)
		return w.err
	}
	if err := w.enc.reset(fw); err != nil {
		fw.Abort()
		w.err = fmt.Errorf("files sink %s: %w", w.sink.loc.URL(name), err)
		return w.err
	}
	w.seq++
	w.cur, w.curName, w.opened = fw, name, w.sink.now()
	return nil
}

// finishPart completes the part in progress and makes it pending.
func (w *fileWriter) finishPart() error {
	cur := w.cur
	w.cur = nil
	err := w.enc.finish()
	if err != nil {
		cur.Abort()
	} else {
		err = cur.Commit()
	}
	if err != nil {
		w.err = fmt.Errorf("files sink %s: %w", w.sink.loc.URL(w.curName), err)
		return w.err
	}
	w.pending = append(w.pending, pendingPart{name: w.curName, pre: -1})
	return nil
}

// PreCommit finishes the part in progress and returns every pending part,
// to be published when checkpoint id completes.
func (w *fileWriter) PreCommit(_ context.Context, id int64) ([]byte, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return nil, w.err
	}
	if err := w.start(); err != nil {
		return nil, err
	}
	if w.cur != nil {
		if err := w.finishPart(); err != nil {
			return nil, err
		}
	}
	seq := w.nprecommit
	w.nprecommit++
	w.precommits[id] = seq
	st := fileSinkState{Subtask: w.index, Checkpoint: id, Pending: []string{}}
	for i := range w.pending {
		if w.pending[i].pre < 0 {
			w.pending[i].pre = seq
		}
		st.Pending = append(st.Pending, w.pending[i].name)
	}
	w.epoch = max(w.epoch+1, id)
	w.seq = 0
	st.NextEpoch = w.epoch
	return json.Marshal(st)
}

// Commit publishes the parts that checkpoint id's PreCommit covered. An id
// this writer never pre-committed (one from before a restore, which
// Recover already handled) commits nothing.
func (w *fileWriter) Commit(ctx context.Context, id int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	seq, ok := w.precommits[id]
	if !ok {
		return nil
	}
	kept := w.pending[:0]
	var err error
	n := 0
	for _, p := range w.pending {
		if err == nil && p.pre >= 0 && p.pre <= seq {
			if err = w.sink.publish(ctx, p.name); err == nil {
				n++
				continue
			}
		}
		kept = append(kept, p)
	}
	w.pending = kept
	if err != nil {
		return fmt.Errorf("files sink: committing checkpoint %d: %w", id, err)
	}
	for k, s := range w.precommits {
		if s <= seq {
			delete(w.precommits, k)
		}
	}
	if n > 0 {
		slog.Debug("files sink committed", "path", w.sink.loc.String(), "subtask", w.index, "checkpoint", id, "parts", n)
	}
	return nil
}

// Recover publishes the parts of the checkpoint this subtask is restored
// from (some may already be published) and deletes everything else this
// subtask staged: parts, temp files and uploads of an earlier attempt after
// that checkpoint, whose records will be written again.
func (w *fileWriter) Recover(ctx context.Context, state []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var st fileSinkState
	if err := json.Unmarshal(state, &st); err != nil {
		return fmt.Errorf("files sink: checkpointed state: %w", err)
	}
	for _, n := range st.Pending {
		if err := w.sink.publish(ctx, n); err != nil {
			return fmt.Errorf("files sink: recovering checkpoint %d: %w", st.Checkpoint, err)
		}
	}
	if err := w.deleteStaged(ctx); err != nil {
		return err
	}
	w.started = true
	w.epoch = max(st.NextEpoch, st.Checkpoint)
	w.seq = 0
	slog.Info("files sink recovered", "path", w.sink.loc.String(), "subtask", w.index, "checkpoint", st.Checkpoint, "published", len(st.Pending))
	return nil
}

// Close finishes the part in progress; it stays pending until Finish
// publishes it, once every subtask has finished. A writer whose write
// failed is aborted instead and reports that failure, so a torn part never
// becomes visible.
func (w *fileWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err != nil {
		w.abortLocked()
		return w.err
	}
	// A subtask that wrote nothing this time must still remove what an
	// earlier attempt staged, or Finish would publish it.
	if err := w.start(); err != nil {
		return err
	}
	if w.cur == nil {
		return nil
	}
	return w.finishPart()
}

// Abort discards the part in progress. Pending parts stay: a checkpoint
// that covers them may have completed, and the next attempt's Recover
// publishes or deletes them.
func (w *fileWriter) Abort() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.abortLocked()
}

func (w *fileWriter) abortLocked() {
	if w.cur != nil {
		w.cur.Abort()
		w.cur = nil
	}
}

// ---- line formats ----

// lineEncoder writes text, jsonl and csv, one line per record.
type lineEncoder struct {
	sink  *FileSink
	w     io.Writer
	n     int64
	buf   []byte
	cells []string
	// fields loads the fields a csv or a declared-schema jsonl record is
	// written from into vals; out is the row a jsonl record is conformed
	// into and written from (it is encoded at once, so refilled for the
	// next record).
	fields *fieldLoader
	vals   []any
	out    *value.Row
	csvBuf bytes.Buffer
	csvW   *csv.Writer
}

func (e *lineEncoder) reset(out io.Writer) error {
	e.w, e.n = out, 0
	if e.sink.format == spec.FormatCSV && e.sink.csv.header {
		h, err := e.csvLine(nil, e.sink.csv.columns)
		if err != nil {
			return err
		}
		if _, err := out.Write(h); err != nil {
			return err
		}
		e.n += int64(len(h))
	}
	return nil
}

func (e *lineEncoder) write(v any) error {
	b, err := e.encode(e.buf[:0], v)
	// What was loaded of the record is let go (ReleasesValues).
	clear(e.vals)
	if e.out != nil {
		clear(e.out.Values())
	}
	if err != nil {
		return recordError{err}
	}
	e.buf = b
	if _, err := e.w.Write(b); err != nil {
		return err
	}
	e.n += int64(len(b))
	return nil
}

func (e *lineEncoder) size() int64   { return e.n }
func (e *lineEncoder) finish() error { return nil }

func (e *lineEncoder) encode(b []byte, v any) ([]byte, error) {
	s := e.sink
	switch s.format {
	case spec.FormatJSONL:
		if s.schema != nil {
			if err := s.schema.conform(e.fields, v, e.vals); err != nil {
				return b, err
			}
			for i, f := range s.schema {
				x := e.vals[i]
				// Timestamps as RFC 3339 text, readable without the schema.
				if ms, ok := x.(int64); ok && f.typ == spec.TypeTimestamp {
					x = formatTimestamp(ms)
				}
				e.out.Set(s.rows.at[i], x)
			}
			v = e.out
		}
		b = value.AppendJSON(b, v)
	case spec.FormatText:
		if x, ok := v.(string); ok {
			b = append(b, x...)
		} else if l, ok := value.Field(v, "line"); ok {
			if s, ok := l.(string); ok {
				b = append(b, s...)
			} else {
				b = value.AppendJSON(b, l)
			}
		} else {
			b = value.AppendJSON(b, v)
		}
	case spec.FormatCSV:
		if !e.fields.load(v, e.vals) {
			return b, fmt.Errorf("csv needs map records, got %s", value.TypeName(v))
		}
		// Every schema field is checked, even one not written.
		for j, f := range s.schema {
			x, err := f.convert(e.vals[j])
			if err != nil {
				return b, err
			}
			e.vals[j] = x
		}
		e.cells = e.cells[:0]
		for i, j := range s.csvField {
			x := e.vals[s.csvAt[i]]
			if j >= 0 {
				e.cells = append(e.cells, s.schema[j].formatCell(x))
			} else {
				e.cells = append(e.cells, csvCell(x))
			}
		}
		return e.csvLine(b, e.cells)
	}
	return append(b, '\n'), nil
}

// csvLine appends one CSV line; encoding/csv does the quoting.
func (e *lineEncoder) csvLine(b []byte, cells []string) ([]byte, error) {
	if e.csvW == nil {
		e.csvW = csv.NewWriter(&e.csvBuf)
		e.csvW.Comma = e.sink.csv.comma
	}
	e.csvBuf.Reset()
	if err := e.csvW.Write(cells); err != nil {
		return b, err
	}
	e.csvW.Flush()
	if err := e.csvW.Error(); err != nil {
		return b, err
	}
	return append(b, e.csvBuf.Bytes()...), nil
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
