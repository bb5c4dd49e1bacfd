package extsort

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"testing"

	"github.com/flinkjob/flinkjob/engine/value"
)

// randomRecords returns n records with Zipf-skewed keys of several kinds
// (some unkeyed), timestamps from a small range (so ties are common and
// stability matters) and a sequence number in the value to identify each.
func randomRecords(rng *rand.Rand, n int) []value.Record {
	zipf := rand.NewZipf(rng, 1.3, 2, 500)
	recs := make([]value.Record, n)
	for i := range recs {
		r := value.Record{
			Value: map[string]any{"seq": int64(i), "pad": string(make([]byte, rng.Intn(40)))},
			Ts:    rng.Int63n(50) - 10,
		}
		if rng.Intn(20) == 0 {
			r.Ts = value.NoTimestamp
		}
		k := zipf.Uint64()
		switch {
		case k%17 == 0:
			// unkeyed
		case k%5 == 0:
			r.WithKey(int64(k) - 250)
		case k%7 == 0:
			r.WithKey([]any{"composite", int64(k)})
		default:
			r.WithKey(fmt.Sprintf("key-%d", k))
		}
		recs[i] = r
	}
	return recs
}

// stableSorted is the reference: sort.SliceStable by (KeyID, Ts).
func stableSorted(recs []value.Record) []value.Record {
	out := append([]value.Record(nil), recs...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].KeyID != out[j].KeyID {
			return out[i].KeyID < out[j].KeyID
		}
		return out[i].Ts < out[j].Ts
	})
	return out
}

func drain(t testing.TB, it Iterator) []value.Record {
	t.Helper()
	var out []value.Record
	for {
		var rec value.Record
		ok, err := it.Next(&rec)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		out = append(out, rec)
	}
	if ok, err := it.Next(new(value.Record)); ok || err != nil {
		t.Fatalf("Next after the end: %v, %v", ok, err)
	}
	return out
}

func requireEqual(t *testing.T, got, want []value.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].KeyID != want[i].KeyID || got[i].Ts != want[i].Ts ||
			!reflect.DeepEqual(value.Plain(got[i].Key), value.Plain(want[i].Key)) ||
			!reflect.DeepEqual(value.Plain(got[i].Value), value.Plain(want[i].Value)) {
			t.Fatalf("record %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func sortAll(t *testing.T, s *Sorter, recs []value.Record) []value.Record {
	t.Helper()
	for i := range recs {
		if err := s.Add(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	it, err := s.Finish()
	if err != nil {
		t.Fatal(err)
	}
	got := drain(t, it)
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestSortMatchesStableSort(t *testing.T) {
	cases := []struct {
		name   string
		n      int
		budget int64
		fanIn  int // 0: derived from the budget
	}{
		{"in memory", 3000, 0, 0},
		{"tiny budget", 5000, 2 << 10, 0},
		{"one record per run", 300, 1, 0},
		{"multi-pass merge", 5000, 4 << 10, 3},
		{"budget just over input", 2000, 200 << 10, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(tc.n)))
			recs := randomRecords(rng, tc.n)
			want := stableSorted(recs)
			dir := t.TempDir()
			s := New(Options{MemoryBudget: tc.budget, TempDir: dir})
			if tc.fanIn > 0 {
				s.fanIn = tc.fanIn
			}
			got := sortAll(t, s, recs)
			requireEqual(t, got, want)
			if tc.budget > 0 && tc.budget < 100<<10 && s.Spills() < 10 {
				t.Fatalf("only %d spills with a %d byte budget", s.Spills(), tc.budget)
			}
			if tc.budget == 0 && s.Spills() != 0 {
				t.Fatalf("%d spills with the default budget", s.Spills())
			}
			t.Logf("%d records, %d spills", tc.n, s.Spills())
			assertEmptyDir(t, dir)
		})
	}
}

func TestSortEmpty(t *testing.T) {
	s := New(Options{TempDir: t.TempDir()})
	if got := sortAll(t, s, nil); len(got) != 0 {
		t.Fatalf("got %d records", len(got))
	}
}

// TestSortCopiesInput checks that Add keeps no reference to the record.
func TestSortCopiesInput(t *testing.T) {
	s := New(Options{TempDir: t.TempDir()})
	m := map[string]any{"v": int64(1)}
	r := value.Record{Value: m, Ts: 5}
	r.WithKey("b")
	s.Add(&r)
	m["v"] = int64(2)
	r.WithKey("a")
	s.Add(&r)
	it, err := s.Finish()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	got := drain(t, it)
	v0, _ := value.Field(got[0].Value, "v")
	v1, _ := value.Field(got[1].Value, "v")
	if got[0].Key != "a" || v0 != int64(2) || got[1].Key != "b" || v1 != int64(1) {
		t.Fatalf("got %+v", got)
	}
}

func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Fatalf("temp files left behind: %v", ents)
	}
}

func TestTempFilesRemoved(t *testing.T) {
	recs := randomRecords(rand.New(rand.NewSource(1)), 2000)

	t.Run("Close after draining", func(t *testing.T) {
		dir := t.TempDir()
		s := New(Options{MemoryBudget: 4 << 10, TempDir: dir})
		for i := range recs {
			s.Add(&recs[i])
		}
		if s.Spills() == 0 {
			t.Fatal("no spills")
		}
		if files, _ := filepath.Glob(filepath.Join(dir, "extsort-*", "run-*")); len(files) != s.Spills() {
			t.Fatalf("%d run files for %d spills", len(files), s.Spills())
		}
		it, err := s.Finish()
		if err != nil {
			t.Fatal(err)
		}
		drain(t, it)
		if err := it.Close(); err != nil {
			t.Fatal(err)
		}
		assertEmptyDir(t, dir)
		if err := it.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})

	t.Run("Close before draining", func(t *testing.T) {
		dir := t.TempDir()
		s := New(Options{MemoryBudget: 4 << 10, TempDir: dir})
		s.fanIn = 2 // leave merged runs from a pass too
		for i := range recs {
			s.Add(&recs[i])
		}
		it, err := s.Finish()
		if err != nil {
			t.Fatal(err)
		}
		it.Next(new(value.Record))
		if err := it.Close(); err != nil {
			t.Fatal(err)
		}
		assertEmptyDir(t, dir)
		if _, err := it.Next(new(value.Record)); err == nil {
			t.Fatal("Next after Close succeeded")
		}
	})

	t.Run("Sorter.Close without Finish", func(t *testing.T) {
		dir := t.TempDir()
		s := New(Options{MemoryBudget: 4 << 10, TempDir: dir})
		for i := range recs {
			s.Add(&recs[i])
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		assertEmptyDir(t, dir)
		if err := s.Add(&recs[0]); err == nil {
			t.Fatal("Add after Close succeeded")
		}
		if _, err := s.Finish(); err == nil {
			t.Fatal("Finish after Close succeeded")
		}
	})
}

func TestSorterMisuse(t *testing.T) {
	s := New(Options{TempDir: t.TempDir()})
	it, err := s.Finish()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	if err := s.Add(&value.Record{}); err == nil {
		t.Fatal("Add after Finish succeeded")
	}
	if _, err := s.Finish(); err == nil {
		t.Fatal("second Finish succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close after Finish: %v", err)
	}
}

func TestSpillError(t *testing.T) {
	s := New(Options{MemoryBudget: 1, TempDir: filepath.Join(t.TempDir(), "missing")})
	r := value.Record{Value: "x"}
	if err := s.Add(&r); err == nil {
		t.Fatal("spill into a missing directory succeeded")
	}
	if err := s.Add(&r); err == nil {
		t.Fatal("Add after a failed spill succeeded")
	}
	if _, err := s.Finish(); err == nil {
		t.Fatal("Finish after a failed spill succeeded")
	}
	s.Close()
}

// sliceIterator yields records from a slice.
type sliceIterator struct {
	recs   []value.Record
	closed bool
}

func (it *sliceIterator) Next(rec *value.Record) (bool, error) {
	if len(it.recs) == 0 {
		return false, nil
	}
	*rec, it.recs = it.recs[0], it.recs[1:]
	return true, nil
}

func (it *sliceIterator) Close() error { it.closed = true; return nil }

func TestMerge(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for _, k := range []int{0, 1, 2, 3, 8, 33} {
		t.Run(fmt.Sprint(k), func(t *testing.T) {
			var all []value.Record
			inputs := make([]Iterator, k)
			slices := make([]*sliceIterator, k)
			for i := range inputs {
				n := rng.Intn(300)
				if i == 1 {
					n = 0 // an empty input
				}
				recs := stableSorted(randomRecords(rng, n))
				all = append(all, recs...)
				slices[i] = &sliceIterator{recs: recs}
				inputs[i] = slices[i]
			}
			// Concatenating in input order and sorting stably is exactly
			// "ties broken by input index".
			want := stableSorted(all)
			m := Merge(inputs)
			requireEqual(t, drain(t, m), want)
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			for i, s := range slices {
				if !s.closed {
					t.Fatalf("input %d not closed", i)
				}
			}
		})
	}
}

func TestMergeTiesByInputIndex(t *testing.T) {
	rec := func(key string, ts int64, tag string) value.Record {
		r := value.Record{Value: tag, Ts: ts}
		r.WithKey(key)
		return r
	}
	m := Merge([]Iterator{
		&sliceIterator{recs: []value.Record{rec("a", 1, "0a"), rec("b", 1, "0b")}},
		&sliceIterator{recs: []value.Record{rec("a", 1, "1a"), rec("a", 2, "1a2")}},
		&sliceIterator{recs: []value.Record{rec("a", 0, "2a0"), rec("a", 1, "2a")}},
	})
	defer m.Close()
	var tags []string
	for _, r := range drain(t, m) {
		tags = append(tags, r.Value.(string))
	}
	if want := []string{"2a0", "0a", "1a", "2a", "1a2", "0b"}; !reflect.DeepEqual(tags, want) {
		t.Fatalf("got %v, want %v", tags, want)
	}
}

type failingIterator struct{ n int }

var errBoom = errors.New("boom")

func (it *failingIterator) Next(rec *value.Record) (bool, error) {
	if it.n == 0 {
		return false, errBoom
	}
	it.n--
	*rec = value.Record{Value: int64(it.n)}
	return true, nil
}

func (it *failingIterator) Close() error { return nil }

func TestMergeError(t *testing.T) {
	m := Merge([]Iterator{&sliceIterator{recs: randomRecords(rand.New(rand.NewSource(2)), 10)}, &failingIterator{n: 3}})
	defer m.Close()
	var err error
	for ok := true; ok && err == nil; {
		ok, err = m.Next(new(value.Record))
	}
	if !errors.Is(err, errBoom) {
		t.Fatalf("err = %v", err)
	}
	if _, again := m.Next(new(value.Record)); again != err {
		t.Fatalf("error not sticky: %v", again)
	}
}

// TestMergePartitionFiles is the BATCH consumer's path: each upstream
// subtask sorts its output into a framed stream; the consumer merges them.
func TestMergePartitionFiles(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	var all []value.Record
	var inputs []Iterator
	for p := 0; p < 4; p++ {
		recs := stableSorted(randomRecords(rng, 500))
		all = append(all, recs...)
		inputs = append(inputs, encodedInput(t, recs))
	}
	m := Merge(inputs)
	defer m.Close()
	requireEqual(t, drain(t, m), stableSorted(all))
}

// encodedInput writes recs as a partition file in memory and reads them
// back through a ReaderIterator.
func encodedInput(t *testing.T, recs []value.Record) Iterator {
	t.Helper()
	var buf bytes.Buffer
	w := value.NewRecordWriter(&buf)
	for i := range recs {
		if err := w.Write(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return NewReaderIterator(value.NewRecordReader(&buf), nil)
}

func TestReaderIteratorCorrupt(t *testing.T) {
	closed := false
	it := NewReaderIterator(value.NewRecordReader(bytes.NewReader([]byte{5, 1, 2})), closerFunc(func() error { closed = true; return nil }))
	if _, err := it.Next(new(value.Record)); !errors.Is(err, value.ErrCorrupt) {
		t.Fatalf("err = %v", err)
	}
	it.Close()
	if !closed {
		t.Fatal("closer not called")
	}
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// smallRecord fills r with record i of a synthetic input: 10k keys, random
// timestamps, a small value. It reuses r's value map, which Add allows.
func smallRecord(r *value.Record, keyIDs []string, rng *rand.Rand, i int) {
	m, _ := r.Value.(map[string]any)
	if m == nil {
		m = map[string]any{}
		r.Value = m
	}
	m["word"] = "flink"
	m["n"] = int64(i)
	r.KeyID = keyIDs[rng.Intn(len(keyIDs))]
	r.Ts = rng.Int63n(1 << 40)
}

func keyIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = value.KeyID(fmt.Sprintf("key-%d", i))
	}
	return ids
}

// TestMemoryStaysFlat sorts 1M records (about 40 MB encoded) with a 1 MiB
// budget and samples the heap throughout: it must stay far below the size
// of the input, since everything beyond the budget lives on disk.
func TestMemoryStaysFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("sorts 1M records")
	}
	const n = 1_000_000
	const limit = 24 << 20
	ids := keyIDs(10000)
	rng := rand.New(rand.NewSource(1))
	runtime.GC()
	var ms runtime.MemStats
	var peak uint64
	sample := func() {
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
	}
	s := New(Options{MemoryBudget: 1 << 20, TempDir: t.TempDir()})
	var r value.Record
	var encoded int64
	for i := 0; i < n; i++ {
		smallRecord(&r, ids, rng, i)
		if i%1000 == 0 {
			encoded += int64(len(value.AppendRecord(nil, &r))) * 1000
		}
		if err := s.Add(&r); err != nil {
			t.Fatal(err)
		}
		if i%20000 == 0 {
			sample()
		}
	}
	it, err := s.Finish()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var prev, rec value.Record
	count := 0
	for {
		ok, err := it.Next(&rec)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if count > 0 && (rec.KeyID < prev.KeyID || rec.KeyID == prev.KeyID && rec.Ts < prev.Ts) {
			t.Fatalf("record %d out of order", count)
		}
		prev = rec
		count++
		if count%20000 == 0 {
			sample()
		}
	}
	if count != n {
		t.Fatalf("got %d records, want %d", count, n)
	}
	t.Logf("~%d MB encoded, %d spills, fan-in %d, peak HeapInuse %.1f MiB", encoded>>20, s.Spills(), s.fanIn, float64(peak)/(1<<20))
	if peak > limit {
		t.Fatalf("peak HeapInuse %d MiB exceeds %d MiB", peak>>20, limit>>20)
	}
}

func BenchmarkSort(b *testing.B) {
	const n = 1_000_000
	ids := keyIDs(10000)
	dir := b.TempDir()
	b.ReportAllocs()
	spills := 0
	for b.Loop() {
		rng := rand.New(rand.NewSource(1))
		s := New(Options{MemoryBudget: 8 << 20, TempDir: dir})
		var r value.Record
		for i := 0; i < n; i++ {
			smallRecord(&r, ids, rng, i)
			if err := s.Add(&r); err != nil {
				b.Fatal(err)
			}
		}
		it, err := s.Finish()
		if err != nil {
			b.Fatal(err)
		}
		var rec value.Record
		for {
			ok, err := it.Next(&rec)
			if err != nil {
				b.Fatal(err)
			}
			if !ok {
				break
			}
		}
		it.Close()
		spills = s.Spills()
	}
	b.ReportMetric(float64(b.N)*n/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(spills), "spills")
}

// drainEncoded reads an iterator with NextEncoded and decodes the bodies.
func drainEncoded(t testing.TB, it Iterator) []value.Record {
	t.Helper()
	enc := Encoded(it)
	var out []value.Record
	for {
		body, ok, err := enc.NextEncoded()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		var rec value.Record
		if err := value.DecodeRecord(body, &rec); err != nil {
			t.Fatal(err)
		}
		out = append(out, rec)
	}
	if _, ok, err := enc.NextEncoded(); ok || err != nil {
		t.Fatalf("NextEncoded after the end: %v, %v", ok, err)
	}
	return out
}

// The encoded path (Sorter in memory, with spills and multi-pass merges,
// Merge of encoded and of plain inputs) yields the same records in the
// same order as the decoded one.
func TestSortEncodedMatchesStableSort(t *testing.T) {
	cases := []struct {
		name   string
		n      int
		budget int64
		fanIn  int
	}{
		{"in memory", 3000, 0, 0},
		{"tiny budget", 5000, 2 << 10, 0},
		{"multi-pass merge", 5000, 4 << 10, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(tc.n) + 1))
			recs := randomRecords(rng, tc.n)
			dir := t.TempDir()
			s := New(Options{MemoryBudget: tc.budget, TempDir: dir})
			if tc.fanIn > 0 {
				s.fanIn = tc.fanIn
			}
			for i := range recs {
				if err := s.Add(&recs[i]); err != nil {
					t.Fatal(err)
				}
			}
			it, err := s.Finish()
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := it.(EncodedIterator); !ok {
				t.Fatalf("a Sorter's iterator %T is not an EncodedIterator", it)
			}
			requireEqual(t, drainEncoded(t, it), stableSorted(recs))
			if err := it.Close(); err != nil {
				t.Fatal(err)
			}
			assertEmptyDir(t, dir)
		})
	}
	t.Run("merge", func(t *testing.T) {
		rng := rand.New(rand.NewSource(9))
		var all []value.Record
		var inputs []Iterator
		for p := 0; p < 5; p++ {
			recs := stableSorted(randomRecords(rng, 300))
			all = append(all, recs...)
			if p%2 == 0 {
				inputs = append(inputs, &sliceIterator{recs: recs}) // not encoded
				continue
			}
			inputs = append(inputs, encodedInput(t, recs))
		}
		m := Merge(inputs)
		defer m.Close()
		requireEqual(t, drainEncoded(t, m), stableSorted(all))
		if _, err := m.Next(new(value.Record)); err == nil {
			t.Fatal("Next after NextEncoded must fail")
		}
	})
	t.Run("corrupt", func(t *testing.T) {
		it := NewReaderIterator(value.NewRecordReader(bytes.NewReader([]byte{5, 1, 2})), nil)
		if _, _, err := it.(EncodedIterator).NextEncoded(); !errors.Is(err, value.ErrCorrupt) {
			t.Fatalf("err = %v", err)
		}
		it = NewReaderIterator(value.NewRecordReader(bytes.NewReader([]byte{2, 9, 1})), nil)
		if _, _, err := it.(EncodedIterator).NextEncoded(); !errors.Is(err, value.ErrCorrupt) {
			t.Fatalf("bad key length: err = %v", err)
		}
	})
}

// Keys that tie on their first 8 bytes, or differ only by trailing zero
// bytes, sort as their bytes do.
func TestSortKeyPrefixTies(t *testing.T) {
	ids := []string{"", "\x00", "\x00\x00", "a", "a\x00", "a\x00\x00\x00\x00\x00\x00\x00", "a\x00\x00\x00\x00\x00\x00\x00\x00",
		"abcdefgh", "abcdefgh\x00", "abcdefghi", "abcdefgh\xff", "abcdefg", "abcdefg\xff", "\xff\xff\xff\xff\xff\xff\xff\xff", "\xff"}
	var recs []value.Record
	rng := rand.New(rand.NewSource(5))
	for i := 0; i < 400; i++ {
		recs = append(recs, value.Record{Value: int64(i), KeyID: ids[rng.Intn(len(ids))], Ts: rng.Int63n(3)})
	}
	s := New(Options{})
	for i := range recs {
		if err := s.Add(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	it, err := s.Finish()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	want := stableSorted(recs)
	for i := range want {
		body, ok, err := it.(EncodedIterator).NextEncoded()
		if err != nil || !ok {
			t.Fatalf("record %d: %v %v", i, ok, err)
		}
		kid, ts, _ := value.RecordKeyTs(body)
		if string(kid) != want[i].KeyID || ts != want[i].Ts {
			t.Fatalf("record %d: key %q ts %d, want %q %d", i, kid, ts, want[i].KeyID, want[i].Ts)
		}
	}
}
