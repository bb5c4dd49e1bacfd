package local_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/checkpoint"
	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/local"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// txStore is the "external system" of a two-phase-commit test sink: it
// outlives job runs (a restart reuses it), and only committed
// transactions are visible in it.
type txStore struct {
	mu        sync.Mutex
	visible   []string
	committed map[string]bool // transaction names
	closed    []txn           // staged by Close, committed by Finish
	commits   atomic.Int64    // Commit calls
	recovers  atomic.Int64    // Recover calls with transactions in them
	listened  atomic.Int64    // CheckpointComplete calls
}

type txn struct {
	Name string
	Vals []string
}

func newTxStore() *txStore { return &txStore{committed: map[string]bool{}} }

// commit makes a transaction visible once, however often it is committed.
func (s *txStore) commit(t txn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.committed[t.Name] {
		return
	}
	s.committed[t.Name] = true
	s.visible = append(s.visible, t.Vals...)
}

func (s *txStore) sorted() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]string(nil), s.visible...)
	sort.Strings(out)
	return out
}

// txSink is a Transactional sink: records are staged in memory and become
// visible in the store only when the checkpoint covering them completes
// (or, at the end of a bounded input, when the job finishes).
type txSink struct {
	st      *txStore
	attempt int
}

func (s *txSink) Open(_ context.Context, index, _ int) (connector.Writer, error) {
	return &txWriter{st: s.st, index: index, attempt: s.attempt}, nil
}

func (s *txSink) Finish(context.Context) error {
	s.st.mu.Lock()
	closed := s.st.closed
	s.st.closed = nil
	s.st.mu.Unlock()
	for _, t := range closed {
		s.st.commit(t)
	}
	return nil
}

type txWriter struct {
	st      *txStore
	index   int
	attempt int
	cur     []string
	// pending are pre-committed transactions not yet known committed:
	// PreCommit returns all of them, so a restore commits every one even
	// if the notifications of earlier checkpoints were lost.
	pending []pendingTxn
}

type pendingTxn struct {
	ID int64
	T  txn
}

func (w *txWriter) Write(r *value.Record) error {
	w.cur = append(w.cur, string(value.ToJSON(r.Value)))
	return nil
}

func (w *txWriter) PreCommit(_ context.Context, id int64) ([]byte, error) {
	w.pending = append(w.pending, pendingTxn{id, txn{Name: fmt.Sprintf("s%d-c%d", w.index, id), Vals: w.cur}})
	w.cur = nil
	return json.Marshal(w.pending)
}

func (w *txWriter) Commit(_ context.Context, id int64) error {
	w.st.commits.Add(1)
	keep := w.pending[:0]
	for _, p := range w.pending {
		if p.ID <= id {
			w.st.commit(p.T)
		} else {
			keep = append(keep, p)
		}
	}
	w.pending = keep
	return nil
}

func (w *txWriter) Recover(_ context.Context, state []byte) error {
	var ps []pendingTxn
	if err := json.Unmarshal(state, &ps); err != nil {
		return err
	}
	if len(ps) > 0 {
		w.st.recovers.Add(1)
	}
	for _, p := range ps {
		w.st.commit(p.T)
	}
	return nil
}

func (w *txWriter) CheckpointComplete(context.Context, int64) error {
	w.st.listened.Add(1)
	return nil
}

func (w *txWriter) Close() error {
	w.st.mu.Lock()
	defer w.st.mu.Unlock()
	for _, p := range w.pending {
		w.st.closed = append(w.st.closed, p.T)
	}
	w.st.closed = append(w.st.closed, txn{Name: fmt.Sprintf("s%d-a%d-final", w.index, w.attempt), Vals: w.cur})
	w.pending, w.cur = nil, nil
	return nil
}

// Abort drops what is staged: a failed attempt's uncommitted records are
// never visible.
func (w *txWriter) Abort() { w.pending, w.cur = nil, nil }

var (
	_ connector.Transactional      = (*txWriter)(nil)
	_ connector.CheckpointListener = (*txWriter)(nil)
	_ connector.Finisher           = (*txSink)(nil)
)

// txJob is checkpointJob with one source subtask, so every rolling sum
// update (not only the last per key) is the same in every run: a key's
// records reach its reduce subtask in sequence order.
const txJob = `
parallelism: 1
steps:
  - name: nums
    source:
      datagen: {value: "{'k': seq % 13, 'v': seq}", count: 20000, ratePerSecond: 150000}
  - name: sums
    parallelism: 3
    keyBy: record.k
    reduce: "{'k': acc.k, 'v': acc.v + record.v}"
  - name: out
    parallelism: 3
    sink: {call: out}
`

func runTx(t *testing.T, sink *txSink, opts local.Options, ctx context.Context) error {
	t.Helper()
	return runTxJob(t, txJob, sink, opts, ctx)
}

func runTxJob(t *testing.T, job string, sink *txSink, opts local.Options, ctx context.Context) error {
	t.Helper()
	opts.Env.CallSink = func(name string) (connector.Sink, bool) { return sink, name == "out" }
	return local.Run(ctx, newPlan(t, job, spec.Streaming), opts)
}

// The two-phase-commit hooks: a job killed at a random moment after a
// checkpoint and restored from the latest complete one leaves in the
// Transactional sink exactly the failure-free run's output: nothing lost,
// nothing twice. Commit runs while the job runs (output becomes visible
// checkpoint by checkpoint), and Recover commits what a restored
// checkpoint pre-committed when the kill came before its notification.
func TestTransactionalSinkExactlyOnce(t *testing.T) {
	ref := newTxStore()
	if err := runTx(t, &txSink{st: ref}, local.Options{}, context.Background()); err != nil {
		t.Fatal(err)
	}
	want := ref.sorted()
	if len(want) != 20000 || firstDup(want) != "" {
		t.Fatalf("reference run committed %d records (first dup %q), want 20000 distinct", len(want), firstDup(want))
	}
	var recovered, midRun int
	for seed := int64(1); seed <= 12; seed++ {
		rng := rand.New(rand.NewSource(seed))
		st := newTxStore()
		dir := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		var n atomic.Int64
		kill := int64(1 + rng.Intn(3))
		delay := time.Duration(rng.Intn(3)) * time.Duration(rng.Intn(20)) * time.Millisecond
		opts := local.Options{CheckpointInterval: 15 * time.Millisecond, CheckpointDir: dir, BatchSize: 64,
			OnCheckpoint: func(int64) {
				if n.Add(1) == kill {
					if delay == 0 {
						cancel() // before the subtasks handle the notification, often
					} else {
						time.AfterFunc(delay, cancel)
					}
				}
			}}
		err1 := runTx(t, &txSink{st: st, attempt: 1}, opts, ctx)
		cancel()
		if n.Load() < kill {
			t.Fatalf("seed %d: %d checkpoints completed, want %d (run error %v)", seed, n.Load(), kill, err1)
		}
		if err1 == nil {
			t.Logf("seed %d: the first run ended before it was killed", seed)
			continue
		}
		first := st.sorted()
		if len(first) > 0 {
			midRun++
		}
		if dup := firstDup(first); dup != "" {
			t.Fatalf("seed %d: %q visible twice after the killed run", seed, dup)
		}
		opts2 := local.Options{CheckpointInterval: 15 * time.Millisecond, CheckpointDir: dir, BatchSize: 64, RestoreFrom: "latest"}
		if err := runTx(t, &txSink{st: st, attempt: 2}, opts2, context.Background()); err != nil {
			t.Fatalf("seed %d: restored run: %v", seed, err)
		}
		if st.recovers.Load() > 0 {
			recovered++
		}
		if got := st.sorted(); !reflect.DeepEqual(got, want) {
			t.Log(diffSorted(got, want))
			t.Fatalf("seed %d (kill after checkpoint %d + %v): %d records visible, want %d (first dup %q)",
				seed, kill, delay, len(got), len(want), firstDup(got))
		}
		if st.commits.Load() == 0 || st.listened.Load() == 0 {
			t.Errorf("seed %d: Commit called %d times, CheckpointComplete %d times; want both > 0", seed, st.commits.Load(), st.listened.Load())
		}
	}
	if midRun == 0 {
		t.Errorf("no killed run had committed anything: commits do not happen while the job runs")
	}
	t.Logf("%d of 12 restores recovered committables; %d killed runs had committed output", recovered, midRun)
}

func firstDup(sorted []string) string {
	for i := 1; i < len(sorted); i++ {
		if sorted[i] == sorted[i-1] {
			return sorted[i]
		}
	}
	return ""
}

// The notification path in isolation: checkpoint.Notify never blocks and
// leaves the newest ID for the subtask.
func TestNotifyKeepsNewest(t *testing.T) {
	ch := make(chan int64, 1)
	checkpoint.Notify(ch, 3)
	checkpoint.Notify(ch, 5)
	checkpoint.Notify(ch, 4)
	if got := <-ch; got != 5 {
		t.Fatalf("got %d, want 5", got)
	}
	select {
	case id := <-ch:
		t.Fatalf("a second notification %d is waiting", id)
	default:
	}
}

// Event-time windows and a window join (state kept through codecs,
// timers, watermarks) restored after a kill give exactly the failure-free
// output in a two-phase-commit sink. Sources run at parallelism 1 with
// in-order timestamps, so nothing is late and the output is deterministic.
func TestTransactionalWindowsExactlyOnce(t *testing.T) {
	const window = `
parallelism: 2
steps:
  - name: nums
    parallelism: 1
    source:
      datagen: {value: "{'k': seq % 5, 'ts': seq}", count: 20000, ratePerSecond: 100000}
      timestamp: record.ts
      watermarks: {maxOutOfOrderness: 0s}
  - name: win
    keyBy: record.k
    window:
      type: tumbling
      size: 50ms
      aggregate:
        fields:
          - {name: "n", count: true}
          - {name: s, sum: record.ts}
  - name: out
    sink: {call: out}
`
	const join = `
parallelism: 2
steps:
  - name: left
    parallelism: 1
    source:
      datagen: {value: "{'k': seq % 7, 'l': seq}", count: 6000, ratePerSecond: 30000}
      timestamp: record.l
      watermarks: {maxOutOfOrderness: 0s}
  - name: right
    parallelism: 1
    source:
      datagen: {value: "{'k': seq % 7, 'r': seq * 2}", count: 3000, ratePerSecond: 15000}
      timestamp: record.r
      watermarks: {maxOutOfOrderness: 0s}
  - name: joined
    inputs: [left, right]
    join:
      leftKey: record.k
      rightKey: record.k
      window: {type: tumbling, size: 20ms}
      select: "{'k': key, 'l': left.l, 'r': right.r}"
  - name: out
    sink: {call: out}
`
	for name, job := range map[string]string{"window": window, "join": join} {
		t.Run(name, func(t *testing.T) {
			ref := newTxStore()
			if err := runTxJob(t, job, &txSink{st: ref}, local.Options{}, context.Background()); err != nil {
				t.Fatal(err)
			}
			want := ref.sorted()
			if len(want) == 0 {
				t.Fatal("no output")
			}
			killed := 0
			for seed := int64(1); seed <= 4; seed++ {
				st := newTxStore()
				dir := t.TempDir()
				ctx, cancel := context.WithCancel(context.Background())
				var n atomic.Int64
				kill := seed
				opts := local.Options{CheckpointInterval: 15 * time.Millisecond, CheckpointDir: dir, BatchSize: 32,
					OnCheckpoint: func(int64) {
						if n.Add(1) == kill {
							time.AfterFunc(time.Duration(seed*3)*time.Millisecond, cancel)
						}
					}}
				err1 := runTxJob(t, job, &txSink{st: st, attempt: 1}, opts, ctx)
				cancel()
				if err1 == nil {
					t.Logf("seed %d: the first run ended before it was killed", seed)
					continue
				}
				killed++
				opts2 := local.Options{CheckpointInterval: 15 * time.Millisecond, CheckpointDir: dir, BatchSize: 32, RestoreFrom: "latest"}
				if err := runTxJob(t, job, &txSink{st: st, attempt: 2}, opts2, context.Background()); err != nil {
					t.Fatalf("seed %d: restored run: %v", seed, err)
				}
				if got := st.sorted(); !reflect.DeepEqual(got, want) {
					t.Log(diffSorted(got, want))
					t.Fatalf("seed %d: %d records, want %d", seed, len(got), len(want))
				}
			}
			if killed == 0 {
				t.Fatal("every seed's first run ended before it was killed: nothing was restored")
			}
		})
	}
}

// The exactly-once file sink (engine/connector, two-phase commit through
// the task's hooks), killed at random moments and restored: the visible
// part files hold exactly the failure-free run's lines.
func TestFileSinkExactlyOnceAcrossRestores(t *testing.T) {
	job := func(dir string) string {
		return strings.Replace(txJob, "sink: {call: out}", "sink: {files: {path: "+dir+"/, format: jsonl}}", 1)
	}
	lines := func(dir string) []string {
		files, _ := filepath.Glob(filepath.Join(dir, "part-*"))
		var out []string
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range strings.Split(string(b), "\n") {
				if l != "" {
					out = append(out, l)
				}
			}
		}
		sort.Strings(out)
		return out
	}
	refDir := t.TempDir()
	if err := local.Run(context.Background(), newPlan(t, job(refDir), spec.Streaming), local.Options{}); err != nil {
		t.Fatal(err)
	}
	want := lines(refDir)
	if len(want) != 20000 {
		t.Fatalf("reference run wrote %d lines", len(want))
	}
	for seed := int64(1); seed <= 4; seed++ {
		out, ckpt := t.TempDir(), t.TempDir()
		p := newPlan(t, job(out), spec.Streaming)
		// Two kills, then a run to the end.
		for attempt := 0; attempt < 3; attempt++ {
			ctx, cancel := context.WithCancel(context.Background())
			var n atomic.Int64
			opts := local.Options{CheckpointInterval: 15 * time.Millisecond, CheckpointDir: ckpt, BatchSize: 64, RestoreFrom: "latest"}
			if attempt < 2 {
				kill := seed + int64(attempt)
				opts.OnCheckpoint = func(int64) {
					if n.Add(1) == kill {
						time.AfterFunc(time.Duration(seed*5)*time.Millisecond, cancel)
					}
				}
			}
			err := local.Run(ctx, p, opts)
			cancel()
			if attempt == 2 && err != nil {
				t.Fatalf("seed %d: last run: %v", seed, err)
			}
			if attempt < 2 && err == nil {
				break // ended before the kill
			}
			if dup := firstDup(lines(out)); dup != "" {
				t.Fatalf("seed %d attempt %d: %s visible twice", seed, attempt, dup)
			}
		}
		if got := lines(out); !reflect.DeepEqual(got, want) {
			t.Log(diffSorted(got, want))
			t.Fatalf("seed %d: %d lines visible, want %d", seed, len(got), len(want))
		}
	}
}
