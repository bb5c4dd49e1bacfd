package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/checkpoint"
	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/internal/testminio"
	"github.com/flinkjob/flinkjob/worker/control"
	"github.com/flinkjob/flinkjob/worker/runner"
)

// Exactly-once STREAMING across worker processes (issue #7): checkpoints
// coordinated by the leader worker over gRPC, snapshots in a real MinIO,
// output through the exactly-once files sink (two-phase commit: parts
// published when their checkpoint completes) into MinIO too.

// ckptJob is a 3-stage keyed STREAMING job at parallelism 2 (six worker
// processes) over a bounded, rate-limited datagen. Its output is a running
// count per key, so the multiset of output lines is the same whatever the
// interleaving of the two source subtasks: {k, c} for c = 1..n_k. A record
// lost or processed twice shows as a missing or repeated line.
func ckptJob(t testing.TB, count, rate int, out string) *spec.Job {
	return loadJob(t, fmt.Sprintf(`
runtimeMode: STREAMING
parallelism: 2
steps:
  - name: gen
    source:
      datagen: {value: "{'k': seq %% 23, 'c': 1}", count: %d, ratePerSecond: %d}
  - name: spread
    partitioning: REBALANCE
    map: "record"
  - name: counts
    keyBy: record.k
    reduce: "{'k': acc.k, 'c': acc.c + record.c}"
  - name: out
    sink: {files: {path: "%s", format: jsonl}}
`, count, rate, out))
}

// ckptEnv is the worker environment of one job: checkpoints, savepoints
// and control objects under a MinIO prefix of its own, the tx sink's
// directory, and extra settings.
type ckptEnv struct {
	s3                                    connector.S3Config
	checkpoints, savepoints, control, out string
}

func newCkptEnv(t testing.TB, s3 connector.S3Config, bucket, name string) ckptEnv {
	base := fmt.Sprintf("s3://%s/flinkjob/ns/%s/", bucket, name)
	return ckptEnv{s3: s3, checkpoints: base + "uid/checkpoints/", savepoints: base + "savepoints/",
		control: base + "uid/control/", out: base + "out/"}
}

func (e ckptEnv) env(extra ...string) []string {
	return append(append(testminio.Env(e.s3),
		"FLINKJOB_CHECKPOINT_URL="+e.checkpoints, "FLINKJOB_SAVEPOINT_URL="+e.savepoints,
		"FLINKJOB_CONTROL_URL="+e.control, "FLINKJOB_CONTROL_POLL=50ms"), extra...)
}

// control opens the job's control objects.
func (e ckptEnv) controlStore(t testing.TB) checkpoint.Store {
	s, err := checkpoint.OpenURL(e.s3)(e.control)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// readJSON reads a control object into v; false if it does not exist.
func readJSON(t testing.TB, s checkpoint.Store, name string, v any) bool {
	b, err := s.Get(context.Background(), name)
	if err == checkpoint.ErrNotFound {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v: %s", name, err, b)
	}
	return true
}

// sinkLines reads the visible output of a files sink (the published part
// files; pending ones are hidden), sorted.
func sinkLines(t testing.TB, s3 connector.S3Config, url string) []string {
	t.Helper()
	ctx := context.Background()
	loc, err := connector.ParseLocation(url, s3)
	if err != nil {
		t.Fatal(err)
	}
	files, err := loc.List(ctx)
	if err != nil {
		if strings.Contains(err.Error(), "no such file or prefix") {
			return nil // nothing published yet
		}
		t.Fatal(err)
	}
	var lines []string
	for _, f := range files {
		if !strings.HasPrefix(f.Name, "part-") {
			t.Errorf("unexpected file %s in %s", f.Name, url)
			continue
		}
		rc, err := loc.Open(ctx, f.Name)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, nonEmptyLines(t, rc)...)
		rc.Close()
	}
	sort.Strings(lines)
	return lines
}

// wantCounts is the expected output of ckptJob: {k, c} for c = 1..n_k.
func wantCounts(count int) []string {
	var want []string
	for k := 0; k < 23; k++ {
		n := 0
		for s := 0; s < count; s++ {
			if s%23 == k {
				n++
			}
		}
		for c := 1; c <= n; c++ {
			want = append(want, fmt.Sprintf(`{"c":%d,"k":%d}`, c, k))
		}
	}
	sort.Strings(want)
	return want
}

// procs tracks the worker processes of a run, to kill one.
type procs struct {
	mu sync.Mutex
	ps []*os.Process
}

func (p *procs) add(_, _, _ int, proc *os.Process) {
	p.mu.Lock()
	p.ps = append(p.ps, proc)
	p.mu.Unlock()
}

func (p *procs) pick(rng *rand.Rand) (*os.Process, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ps) == 0 {
		return nil, 0
	}
	i := rng.Intn(len(p.ps))
	return p.ps[i], i
}

// TestStreamingKillRandomWorkerExactlyOnce kills a random worker process
// at a random moment of a STREAMING job with checkpoints every 100 ms,
// then restarts every subtask from the latest complete checkpoint (what
// the operator does: RESTORE_FROM=latest), possibly killing again, until
// the job finishes; 20 times with seeded kill moments. The exactly-once
// sink's output equals the failure-free run's every time.
func TestStreamingKillRandomWorkerExactlyOnce(t *testing.T) {
	const (
		count  = 4000
		rate   = 4000 // about 1 s of input
		rounds = 20
	)
	s3 := testminio.Start(t)
	bucket := testminio.Bucket(t, s3)
	want := wantCounts(count)

	// The failure-free run, with checkpoints on, gives the reference. Its
	// source is 4 times slower so that a checkpoint completes before its
	// end on a loaded machine too (checked below).
	ref := newCkptEnv(t, s3, bucket, "reference")
	job := ckptJob(t, count, rate/4, ref.out)
	r, err := runner.New(job, runner.Options{Worker: workerBin, Dir: t.TempDir(), Env: ref.env("FLINKJOB_CHECKPOINT_INTERVAL=100ms")})
	if err != nil {
		t.Fatal(err)
	}
	// Generous: a round is a few seconds, a slow machine's round more.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	reference := sinkLines(t, s3, ref.out)
	equalLines(t, "failure-free output", reference, want)
	var latest control.LatestCheckpoint
	if !readJSON(t, ref.controlStore(t), control.LatestObject, &latest) || latest.ID == 0 || !strings.HasSuffix(latest.Path, fmt.Sprintf("/chk-%d/", latest.ID)) {
		t.Fatalf("failure-free run: checkpoint-latest.json %+v", latest)
	}

	restarts, fromCheckpoint := 0, 0
	start := time.Now()
	for round := 0; round < rounds; round++ {
		// A round whose first attempt was to be killed after its first
		// checkpoint, but ended before one completed (a loaded machine
		// starting six processes can take most of the second of input),
		// runs again, same seed, with the source 4 times slower (same
		// output: the source's position is its sequence number).
		for pace := rate; ; pace /= 4 {
			if pace < rate/64 {
				t.Fatalf("round %d: no checkpoint completed even at %d records/s", round, pace*4)
			}
			if !killRound(t, round, count, pace, s3, bucket, reference, &restarts, &fromCheckpoint, ctx) {
				break
			}
			t.Logf("round %d: the job ended before its first checkpoint at %d records/s; again slower", round, pace)
		}
		if t.Failed() {
			return
		}
	}
	t.Logf("%d rounds in %s; %d of %d restarts restored a checkpoint", rounds, time.Since(start).Round(time.Millisecond), fromCheckpoint, restarts)
	// Most restarts must have had a checkpoint to restore from, or this
	// test would only prove fresh starts.
	if fromCheckpoint < rounds/2 {
		t.Errorf("only %d of %d restarts restored a checkpoint", fromCheckpoint, restarts)
	}
}

// killRound runs one round of TestStreamingKillRandomWorkerExactlyOnce
// with the source at pace records/s. again reports that the first attempt,
// to be killed after its first checkpoint, ended before any checkpoint
// completed (the round proved nothing; run it again slower).
func killRound(t *testing.T, round, count, pace int, s3 connector.S3Config, bucket string, reference []string, restarts, fromCheckpoint *int, ctx context.Context) (again bool) {
	rng := rand.New(rand.NewSource(int64(round)))
	e := newCkptEnv(t, s3, bucket, fmt.Sprintf("round-%d-%d", round, pace))
	job := ckptJob(t, count, pace, e.out)
	ctl := e.controlStore(t)
	kills := 0
	for attempt := 0; ; attempt++ {
		if attempt > 6 {
			t.Fatalf("round %d: the job did not finish in %d attempts", round, attempt)
		}
		var ps procs
		var before control.LatestCheckpoint
		if attempt > 0 {
			*restarts++
			if readJSON(t, ctl, control.LatestObject, &before) {
				*fromCheckpoint++
			}
		}
		r, err := runner.New(job, runner.Options{Worker: workerBin, Dir: t.TempDir(), OnStart: ps.add,
			Env: e.env("FLINKJOB_CHECKPOINT_INTERVAL=100ms", "FLINKJOB_RESTORE_FROM=latest")})
		if err != nil {
			t.Fatal(err)
		}
		// Kill in the first attempt always, in the second one time in
		// two; at a random moment after the start (at start-up too), or,
		// one time in two, at a random moment after the attempt's first
		// checkpoint completed (so that restarts restore checkpoints
		// however slow the machine).
		kill := attempt == 0 || attempt == 1 && rng.Intn(2) == 0
		afterCheckpoint := rng.Intn(2) == 0
		killAt := time.Duration(150+rng.Intn(1000)) * time.Millisecond
		if afterCheckpoint {
			killAt = time.Duration(rng.Intn(500)) * time.Millisecond
		}
		killed := make(chan string, 1)
		runDone := make(chan struct{})
		var sawCheckpoint atomic.Bool
		if kill {
			pick := rand.New(rand.NewSource(rng.Int63()))
			go func() {
				defer close(killed)
				for afterCheckpoint && !newCheckpoint(ctl, before.ID) {
					select {
					case <-runDone:
						return
					case <-time.After(10 * time.Millisecond):
					}
				}
				sawCheckpoint.Store(true)
				select {
				case <-runDone:
					return
				case <-time.After(killAt):
				}
				p, i := ps.pick(pick)
				if p != nil && p.Kill() == nil {
					killed <- fmt.Sprintf("process %d (pid %d) at %s (after a checkpoint: %v)", i, p.Pid, killAt, afterCheckpoint)
				}
			}()
		}
		err = r.Run(ctx)
		close(runDone)
		what := ""
		if kill {
			what = <-killed
		}
		if err == nil {
			if attempt == 0 && afterCheckpoint && !sawCheckpoint.Load() {
				return true
			}
			t.Logf("round %d: finished in attempt %d after %d kill(s) (last restore from checkpoint %d)", round, attempt, kills, before.ID)
			break
		}
		if what == "" {
			t.Fatalf("round %d attempt %d failed without a kill: %v", round, attempt, err)
		}
		kills++
	}
	equalLines(t, fmt.Sprintf("round %d output", round), sinkLines(t, s3, e.out), reference)
	return false
}

// newCheckpoint reports whether a checkpoint newer than after completed.
func newCheckpoint(ctl checkpoint.Store, after int64) bool {
	b, err := ctl.Get(context.Background(), control.LatestObject)
	if err != nil {
		return false
	}
	var l control.LatestCheckpoint
	return json.Unmarshal(b, &l) == nil && l.ID > after
}

// TestStreamingStopWithSavepointAndRestore: the manager's stop-with-
// savepoint across processes. A savepoint request (stop=true) is written
// to the control URL while the job runs; the leader takes the savepoint,
// stops checkpointing, and writes the result; the processes are killed
// (or, not killed in time, the bounded job reaches its end and fails
// without publishing anything after the savepoint); a new run restored
// from the savepoint's path finishes, and the output continues exactly.
func TestStreamingStopWithSavepointAndRestore(t *testing.T) {
	t.Run("killed", func(t *testing.T) { stopWithSavepoint(t, true) })
	t.Run("not-killed", func(t *testing.T) { stopWithSavepoint(t, false) })
}

func stopWithSavepoint(t *testing.T, kill bool) {
	// About 6 s of input: the savepoint is requested after the first
	// checkpoint, which on a loaded machine (six processes starting) came
	// after the 2 s this job had before, so the job ended first. The
	// restored run reads the rest at full speed.
	const count, rate = 6000, 1000
	s3 := testminio.Start(t)
	bucket := testminio.Bucket(t, s3)
	e := newCkptEnv(t, s3, bucket, "savepoint")
	job := ckptJob(t, count, rate, e.out)
	ctl := e.controlStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	r, err := runner.New(job, runner.Options{Worker: workerBin, Dir: t.TempDir(), Env: e.env("FLINKJOB_CHECKPOINT_INTERVAL=100ms")})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	// Request once a checkpoint completed (the job is up and running).
	var latest control.LatestCheckpoint
	for !readJSON(t, ctl, control.LatestObject, &latest) {
		time.Sleep(20 * time.Millisecond)
	}
	req, _ := json.Marshal(control.SavepointRequest{Nonce: "abc123", Stop: true})
	if err := ctl.Put(ctx, control.SavepointRequestObject, req); err != nil {
		t.Fatal(err)
	}
	var res control.SavepointResult
	for !readJSON(t, ctl, control.SavepointResultObject("abc123"), &res) {
		select {
		case err := <-done:
			t.Fatalf("the job ended before the savepoint: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if res.Error != "" || res.Nonce != "abc123" || res.CheckpointID == 0 || res.Path != fmt.Sprintf("%ssp-%d-abc123/", e.savepoints, res.CheckpointID) {
		t.Fatalf("savepoint result: %+v", res)
	}
	// No checkpoint completes after a stop-with-savepoint.
	time.Sleep(300 * time.Millisecond)
	if readJSON(t, ctl, control.LatestObject, &latest); latest.ID != res.CheckpointID {
		t.Errorf("checkpoint %d completed after the stop-with-savepoint %d", latest.ID, res.CheckpointID)
	}
	if kill {
		stop() // the manager deletes the pods
		if err := <-done; err == nil {
			t.Fatal("the job finished before it was stopped: slow it down")
		}
	} else {
		// Not deleted in time, the bounded job reaches its end: it fails
		// rather than publish output the savepoint does not cover (the
		// restored run below would write it again).
		if err := <-done; err == nil || !strings.Contains(err.Error(), "stopped with savepoint "+res.Path) {
			t.Fatalf("a job stopped with a savepoint ended with %v", err)
		}
	}
	// What was published (up to the savepoint) is not the whole output.
	before := len(sinkLines(t, s3, e.out))
	if before >= count {
		t.Fatalf("%d lines published at the stop, want fewer than all %d", before, count)
	}
	t.Logf("%d of %d lines published at the stop-with-savepoint (checkpoint %d)", before, count, res.CheckpointID)

	r, err = runner.New(ckptJob(t, count, 0, e.out), runner.Options{Worker: workerBin, Dir: t.TempDir(), Env: e.env("FLINKJOB_RESTORE_FROM=" + res.Path)})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	equalLines(t, "output after the restore from the savepoint", sinkLines(t, s3, e.out), wantCounts(count))
}

// TestStreamingRestoreFromMissingSavepointFails: RESTORE_FROM naming a
// directory that is not a complete checkpoint fails the job loudly,
// naming the path.
func TestStreamingRestoreFromMissingSavepointFails(t *testing.T) {
	s3 := testminio.Start(t)
	bucket := testminio.Bucket(t, s3)
	e := newCkptEnv(t, s3, bucket, "missing")
	missing := e.savepoints + "sp-7-nope/"
	r, err := runner.New(ckptJob(t, 100, 0, e.out), runner.Options{Worker: workerBin, Dir: t.TempDir(), Env: e.env("FLINKJOB_RESTORE_FROM=" + missing)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = r.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("restore from a missing savepoint: %v", err)
	}
}

// TestFinalSavepointBootstrap is the bootstrap story across processes: a
// bounded job run in STREAMING with FINAL_SAVEPOINT ends with savepoint
// "final" (a checkpoint after all input), the same job run in BATCH
// writes its keyed steps' final state as savepoint "final"; a second job
// sharing the keyed step "counts" but reading another source restores
// from either and continues every key's count: both give the same output.
func TestFinalSavepointBootstrap(t *testing.T) {
	const count = 2000
	s3 := testminio.Start(t)
	bucket := testminio.Bucket(t, s3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	paths := map[spec.RuntimeMode]string{}
	for _, mode := range []spec.RuntimeMode{spec.Streaming, spec.Batch} {
		e := newCkptEnv(t, s3, bucket, "bootstrap-"+strings.ToLower(string(mode)))
		bootstrap := ckptJob(t, count, 0, e.out)
		opts := runner.Options{Worker: workerBin, Dir: t.TempDir(), Mode: mode, Env: e.env("FLINKJOB_FINAL_SAVEPOINT=true")}
		if mode == spec.Batch {
			opts.ShuffleURL = fmt.Sprintf("s3://%s/shuffle-%s/", bucket, mode)
		}
		r, err := runner.New(bootstrap, opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Run(ctx); err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		var res control.SavepointResult
		if !readJSON(t, e.controlStore(t), control.SavepointFinalObject, &res) || res.Error != "" || res.Nonce != "final" || !strings.HasPrefix(res.Path, e.savepoints) {
			t.Fatalf("%s: savepoint-final.json: %+v", mode, res)
		}
		if mode == spec.Streaming {
			// STREAMING output is every running count.
			equalLines(t, "bootstrap output", sinkLines(t, s3, e.out), wantCounts(count))
		}
		paths[mode] = res.Path
	}

	// The job that restores: one more record per key, from a source the
	// savepoint has no position for (it starts at its beginning), into a
	// sink step of its own (a sink named as in the savepoint would recover
	// the bootstrap's last transaction, as it should).
	restoring := func(out string) *spec.Job {
		return loadJob(t, `
runtimeMode: STREAMING
parallelism: 2
steps:
  - name: more
    source:
      datagen: {value: "{'k': seq % 23, 'c': 1}", count: 23}
  - name: counts
    keyBy: record.k
    reduce: "{'k': acc.k, 'c': acc.c + record.c}"
  - name: more-out
    sink: {files: {path: "`+out+`", format: jsonl}}
`)
	}
	var want []string
	for k := 0; k < 23; k++ {
		n := (count-k+22)/23 + 1 // the bootstrap's records of key k, and one more
		want = append(want, fmt.Sprintf(`{"c":%d,"k":%d}`, n, k))
	}
	sort.Strings(want)
	for mode, path := range paths {
		out := fmt.Sprintf("s3://%s/restored-%s/out/", bucket, mode)
		// Restore only: no checkpoint storage, the path names the savepoint.
		env := append(testminio.Env(s3), "FLINKJOB_RESTORE_FROM="+path)
		r, err := runner.New(restoring(out), runner.Options{Worker: workerBin, Dir: t.TempDir(), Env: env})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Run(ctx); err != nil {
			t.Fatalf("restore from the %s savepoint: %v", mode, err)
		}
		equalLines(t, fmt.Sprintf("restored from the %s savepoint %s", mode, path), sinkLines(t, s3, out), want)
	}
}
