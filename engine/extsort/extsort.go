// Package extsort is an external merge sort of records by key, for BATCH
// execution.
//
// In BATCH mode a keyed operator does not keep state for every key at once
// the way a streaming job does. It sorts its input by key instead, then
// handles one key at a time: it reads all records of a key, emits the
// result, and drops the key's state before the next key. That keeps state
// to one key, but the input itself can be far larger than memory, so the
// sort has to spill: a Sorter keeps encoded records in an arena up to a
// memory budget, sorts the arena and writes it to a temporary file (a
// "run") when the budget is reached, and at the end merges the runs.
// Memory therefore stays flat however large the input is; the disk holds
// the rest.
//
// The order is (KeyID bytes ascending, then Ts ascending, then arrival
// order): records of a key are contiguous, in event-time order, and records
// that tie keep the order they arrived in, so results are deterministic.
// Merge combines streams that are already in that order; a BATCH consumer
// uses it to merge the sorted partitions written by all upstream subtasks.
package extsort

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/flinkjob/flinkjob/engine/value"
)

// DefaultMemoryBudget is the memory budget when Options leaves it zero.
const DefaultMemoryBudget = 64 << 20

// readBufferSize is what one open run costs while merging (the buffer of a
// value.RecordReader). It sizes the merge fan-in so that the buffers of the
// runs merged at once stay within the memory budget.
const readBufferSize = 64 << 10

// maxFanIn caps how many runs are merged at once, bounding open files.
const maxFanIn = 128

// entrySize is the in-memory size of an entry, counted against the budget
// because for small records the index costs as much as the records.
const entrySize = 32

// Options configures a Sorter.
type Options struct {
	// MemoryBudget is roughly how many bytes of records the Sorter holds
	// in memory: encoded records plus a 24-byte index entry for each.
	// When it is exceeded, the records held are sorted and spilled to a
	// run file. Zero means DefaultMemoryBudget (64 MiB).
	MemoryBudget int64
	// TempDir is the directory in which run files are created (inside a
	// private subdirectory). Empty means os.TempDir().
	TempDir string
}

// Iterator yields records in order.
type Iterator interface {
	// Next decodes the next record into rec and reports whether there was
	// one. It returns false with a nil error at the end.
	Next(rec *value.Record) (bool, error)
	// Close releases the iterator's resources; for the iterator of a
	// Sorter that includes removing its temporary files.
	Close() error
}

// EncodedIterator is implemented by the iterators of this package (a
// Sorter's, Merge's and NewReaderIterator's): NextEncoded returns the next
// record's body as value.AppendRecord encoded it, without decoding it, for
// callers that only forward records (value.RecordWriter.WriteEncoded). The
// body is valid until the next call. Do not mix Next and NextEncoded on
// one iterator.
type EncodedIterator interface {
	Iterator
	NextEncoded() ([]byte, bool, error)
}

// Encoded returns it as an EncodedIterator: it itself when it is one, else
// an adapter that decodes and re-encodes.
func Encoded(it Iterator) EncodedIterator {
	if e, ok := it.(EncodedIterator); ok {
		return e
	}
	return &reencoder{Iterator: it}
}

type reencoder struct {
	Iterator
	rec value.Record
	buf []byte
}

func (r *reencoder) NextEncoded() ([]byte, bool, error) {
	ok, err := r.Next(&r.rec)
	if !ok || err != nil {
		return nil, ok, err
	}
	r.buf = value.AppendRecord(r.buf[:0], &r.rec)
	return r.buf, true, nil
}

// entry indexes one encoded record in the arena. It keeps the sort key
// (key ID position and timestamp) so sorting never decodes a record, and
// koff doubles as arrival order because the arena only grows between spills.
type entry struct {
	koff   int    // arena offset of the key ID bytes
	ts     int64  // event timestamp
	prefix uint64 // the key ID's first 8 bytes, big endian, zero padded
	klen   int32  // key ID length
	n      int32  // length of the whole encoded record (AppendRecord body)
}

// keyPrefix is the first 8 bytes of k as a big-endian number (missing
// bytes are zero), so comparing prefixes orders keys as their bytes do,
// up to ties.
func keyPrefix(k string) uint64 {
	var p uint64
	for i := 0; i < 8; i++ {
		p <<= 8
		if i < len(k) {
			p |= uint64(k[i])
		}
	}
	return p
}

// body returns the position of the entry's encoded record in the arena:
// the record starts with the uvarint length of the key ID.
func (e entry) body() (start, end int) {
	start = e.koff - value.UvarintLen(uint64(e.klen))
	return start, start + int(e.n)
}

// Sorter sorts records that may not fit in memory. Add the records, then
// call Finish for an Iterator over them in order. A Sorter is not safe for
// concurrent use.
type Sorter struct {
	budget  int64
	tempDir string
	fanIn   int

	arena   []byte  // encoded records since the last spill
	entries []entry // one per record in arena
	scratch []byte  // one record's encoding before it is copied to arena

	dir      string   // private temp directory, created at the first spill
	runs     []string // run files, in spill order
	spills   int
	finished bool
	err      error // sticky: a failed spill leaves the Sorter unusable
}

// New returns a Sorter.
func New(opts Options) *Sorter {
	budget := opts.MemoryBudget
	if budget <= 0 {
		budget = DefaultMemoryBudget
	}
	dir := opts.TempDir
	if dir == "" {
		dir = os.TempDir()
	}
	return &Sorter{
		budget:  budget,
		tempDir: dir,
		fanIn:   int(min(max(budget/(2*readBufferSize), 2), maxFanIn)),
	}
}

// Spills reports how many sorted runs have been written to disk so far
// (runs written while merging runs in Finish are not counted).
func (s *Sorter) Spills() int { return s.spills }

// Add adds a copy of r: it is encoded at once, so the caller may reuse r
// and its value afterwards.
func (s *Sorter) Add(r *value.Record) error {
	if s.err != nil {
		return s.err
	}
	if s.finished {
		return errors.New("extsort: Add after Finish")
	}
	s.scratch = value.AppendRecord(s.scratch[:0], r)
	n := len(s.scratch)
	if n > value.MaxFrameSize {
		s.scratch = nil
		return fmt.Errorf("extsort: record of %d bytes exceeds the %d byte limit", n, value.MaxFrameSize)
	}
	s.arena = s.grow(s.arena, n)
	start := len(s.arena)
	s.arena = append(s.arena, s.scratch...)
	s.entries = append(s.entries, entry{
		koff:   start + value.UvarintLen(uint64(len(r.KeyID))),
		ts:     r.Ts,
		prefix: keyPrefix(r.KeyID),
		klen:   int32(len(r.KeyID)),
		n:      int32(n),
	})
	if cap(s.scratch) > 1<<20 {
		s.scratch = nil // do not keep the buffer of one outsized record
	}
	if int64(len(s.arena))+int64(len(s.entries))*entrySize > s.budget {
		if err := s.spill(); err != nil {
			s.err = err
			return err
		}
	}
	return nil
}

// grow makes room for n more bytes in the arena. Plain append would double
// the arena past the budget; growth is capped at the budget instead, so the
// arena settles at about its share of the budget and is reused after every
// spill.
func (s *Sorter) grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	c := max(2*cap(b), len(b)+n, 4096)
	if int64(c) > s.budget {
		c = max(int(s.budget), len(b)+n)
	}
	nb := make([]byte, len(b), c)
	copy(nb, b)
	return nb
}

// compare orders entries by key ID bytes, then timestamp, then arrival.
func (s *Sorter) compare(a, b entry) int {
	switch {
	case a.prefix < b.prefix:
		return -1
	case a.prefix > b.prefix:
		return 1
	case a.klen <= 8 && b.klen <= 8:
		// The prefixes are the whole keys: the shorter one (zero padded)
		// sorts first, as bytes.Compare has it.
		if a.klen != b.klen {
			return cmp.Compare(a.klen, b.klen)
		}
	default:
		ka := s.arena[a.koff : a.koff+int(a.klen)]
		kb := s.arena[b.koff : b.koff+int(b.klen)]
		if c := bytes.Compare(ka, kb); c != 0 {
			return c
		}
	}
	switch {
	case a.ts < b.ts:
		return -1
	case a.ts > b.ts:
		return 1
	case a.koff < b.koff:
		return -1
	case a.koff > b.koff:
		return 1
	}
	return 0
}

func (s *Sorter) sortEntries() {
	// The order is total (arrival breaks ties), so an unstable sort gives
	// the stable result and is faster than a stable one.
	slices.SortFunc(s.entries, s.compare)
}

// spill sorts the records in memory, writes them to a new run file and
// empties the arena, keeping its memory for the next records.
func (s *Sorter) spill() error {
	s.sortEntries()
	f, err := s.createRun()
	if err != nil {
		return err
	}
	w := value.NewRecordWriter(f)
	for _, e := range s.entries {
		start, end := e.body()
		if err = w.WriteEncoded(s.arena[start:end]); err != nil {
			break
		}
	}
	if err := s.finishRun(f, w, err); err != nil {
		return err
	}
	s.spills++
	s.arena = s.arena[:0]
	s.entries = s.entries[:0]
	return nil
}

// createRun creates a new run file in the Sorter's private directory and
// appends it to runs.
func (s *Sorter) createRun() (*os.File, error) {
	if s.dir == "" {
		dir, err := os.MkdirTemp(s.tempDir, "extsort-")
		if err != nil {
			return nil, fmt.Errorf("extsort: %w", err)
		}
		s.dir = dir
	}
	f, err := os.CreateTemp(s.dir, "run-")
	if err != nil {
		return nil, fmt.Errorf("extsort: %w", err)
	}
	s.runs = append(s.runs, f.Name())
	return f, nil
}

// finishRun flushes and closes a run being written, after err (the first
// write error, if any).
func (s *Sorter) finishRun(f *os.File, w *value.RecordWriter, err error) error {
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("extsort: writing run %s: %w", f.Name(), err)
	}
	return nil
}

// Finish ends input and returns an Iterator over all records in order.
// Closing the Iterator removes the temporary files; the Sorter must not be
// used afterwards.
func (s *Sorter) Finish() (Iterator, error) {
	if s.err != nil {
		return nil, s.err
	}
	if s.finished {
		return nil, errors.New("extsort: Finish called twice")
	}
	s.finished = true
	s.sortEntries()
	mem := &memIterator{arena: s.arena, entries: s.entries}
	s.arena, s.entries, s.scratch = nil, nil, nil
	if len(s.runs) == 0 {
		return mem, nil
	}
	// Merge runs in passes until the remaining ones can be merged at once
	// with the records still in memory.
	for len(s.runs) > s.fanIn {
		if err := s.mergePass(); err != nil {
			s.err = err
			return nil, errors.Join(err, s.removeAll())
		}
	}
	inputs := make([]Iterator, 0, len(s.runs)+1)
	for _, name := range s.runs {
		it, err := openRun(name)
		if err != nil {
			for _, in := range inputs {
				in.Close()
			}
			s.err = err
			return nil, errors.Join(err, s.removeAll())
		}
		inputs = append(inputs, it)
	}
	// The in-memory records arrived after every spilled one, so they go
	// last: Merge breaks ties by input index, which keeps arrival order.
	if len(mem.entries) > 0 {
		inputs = append(inputs, mem)
	}
	return &sortedIterator{Iterator: Merge(inputs), s: s}, nil
}

// mergePass merges consecutive groups of fanIn runs into one run each.
// Groups are consecutive so that, run order being arrival order, ties keep
// arrival order.
func (s *Sorter) mergePass() error {
	old := s.runs
	s.runs = nil
	for i := 0; i < len(old); i += s.fanIn {
		group := old[i:min(i+s.fanIn, len(old))]
		if len(group) == 1 {
			s.runs = append(s.runs, group[0])
			continue
		}
		if err := s.mergeGroup(group); err != nil {
			s.runs = append(s.runs, old[i:]...) // so removeAll finds them
			return err
		}
	}
	return nil
}

func (s *Sorter) mergeGroup(group []string) error {
	inputs := make([]Iterator, 0, len(group))
	for _, name := range group {
		it, err := openRun(name)
		if err != nil {
			for _, in := range inputs {
				in.Close()
			}
			return err
		}
		inputs = append(inputs, it)
	}
	m := Merge(inputs)
	f, err := s.createRun()
	if err != nil {
		m.Close()
		return err
	}
	w := value.NewRecordWriter(f)
	em := m.(EncodedIterator) // runs merge without decoding
	for {
		var ok bool
		var body []byte
		if body, ok, err = em.NextEncoded(); err != nil || !ok {
			break
		}
		if err = w.WriteEncoded(body); err != nil {
			break
		}
	}
	err = errors.Join(err, m.Close())
	if err = s.finishRun(f, w, err); err != nil {
		return err
	}
	for _, name := range group {
		os.Remove(name) // merged; a leftover is removed with the directory
	}
	return nil
}

func openRun(name string) (Iterator, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("extsort: %w", err)
	}
	return NewReaderIterator(value.NewRecordReader(f), f), nil
}

// removeAll deletes the Sorter's temporary directory and everything in it.
func (s *Sorter) removeAll() error {
	s.runs = nil
	if s.dir == "" {
		return nil
	}
	dir := s.dir
	s.dir = ""
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("extsort: %w", err)
	}
	return nil
}

// Close discards a Sorter that will not be finished (a cancelled or failed
// job): it removes the spilled runs and releases memory. After a successful
// Finish the Iterator owns the files and Close does nothing. Calling Close
// more than once is harmless.
func (s *Sorter) Close() error {
	if s.finished && s.err == nil {
		return nil
	}
	s.finished = true
	if s.err == nil {
		s.err = errors.New("extsort: Sorter closed")
	}
	s.arena, s.entries, s.scratch = nil, nil, nil
	return s.removeAll()
}

// sortedIterator is the Iterator of a Sorter: closing it also removes the
// Sorter's temporary directory.
type sortedIterator struct {
	Iterator
	s *Sorter
}

func (it *sortedIterator) NextEncoded() ([]byte, bool, error) {
	return it.Iterator.(EncodedIterator).NextEncoded()
}

func (it *sortedIterator) Close() error {
	err := it.Iterator.Close()
	return errors.Join(err, it.s.removeAll())
}

// memIterator yields the sorted records still in memory.
type memIterator struct {
	arena   []byte
	entries []entry
	i       int
	dec     value.Decoder
}

func (it *memIterator) Next(rec *value.Record) (bool, error) {
	if it.i >= len(it.entries) {
		return false, nil
	}
	start, end := it.entries[it.i].body()
	it.i++
	if err := it.dec.DecodeRecord(it.arena[start:end], rec); err != nil {
		return false, fmt.Errorf("extsort: %w", err)
	}
	return true, nil
}

func (it *memIterator) NextEncoded() ([]byte, bool, error) {
	if it.i >= len(it.entries) {
		return nil, false, nil
	}
	start, end := it.entries[it.i].body()
	it.i++
	return it.arena[start:end], true, nil
}

func (it *memIterator) Close() error {
	it.arena, it.entries, it.i = nil, nil, 0
	return nil
}

// readerIterator adapts a framed record stream.
type readerIterator struct {
	r      *value.RecordReader
	closer io.Closer
	done   bool
}

// NewReaderIterator turns a framed record stream (a run, or a sorted
// partition file or object written with value.RecordWriter) into an
// Iterator. Close calls closer.Close, if closer is not nil.
func NewReaderIterator(r *value.RecordReader, closer io.Closer) Iterator {
	return &readerIterator{r: r, closer: closer}
}

func (it *readerIterator) Next(rec *value.Record) (bool, error) {
	if it.done {
		return false, nil
	}
	switch err := it.r.Read(rec); err {
	case nil:
		return true, nil
	case io.EOF:
		it.done = true
		return false, nil
	default:
		return false, err
	}
}

func (it *readerIterator) NextEncoded() ([]byte, bool, error) {
	if it.done {
		return nil, false, nil
	}
	body, err := it.r.ReadEncoded()
	switch err {
	case nil:
		return body, true, nil
	case io.EOF:
		it.done = true
		return nil, false, nil
	default:
		return nil, false, err
	}
}

func (it *readerIterator) Close() error {
	it.done = true
	if c := it.closer; c != nil {
		it.closer = nil
		return c.Close()
	}
	return nil
}
