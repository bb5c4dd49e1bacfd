package local_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/enginetest"
	"github.com/flinkjob/flinkjob/engine/local"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// Malformed records routed to source.malformedOutput: real files in a
// temporary directory, good and bad lines interleaved, read by two
// subtasks (a file each), the side output sunk and compared exactly, the
// good records unchanged; the same job without malformedOutput fails with
// the message the side output's first record carries.

func writeInputs(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// malformedJob reads dir with the given files options, routes malformed
// records to bad-lines (when route) and sinks both outputs.
func malformedJob(dir, files string, route bool, extra string) string {
	mo, dead := "", ""
	if route {
		mo = "\n      malformedOutput: bad-lines"
		dead = "  - name: dead-letters\n    inputs: [bad-lines]\n    sink: {call: bad}\n"
	}
	return fmt.Sprintf(`parallelism: 2
steps:
  - name: src
    source:
      files: {path: %q, %s}%s%s
  - name: good
    inputs: [src]
    sink: {call: good}
%s`, dir, files, mo, extra, dead)
}

func TestMalformedJSONLRouted(t *testing.T) {
	dir := writeInputs(t, map[string]string{
		"a.jsonl": "{\"id\": 1}\nnot json\n{\"id\": 2}\n\n{\"id\": 3\n",
		"b.jsonl": "[1,\n{\"id\": 4}\n{\"id\": 5}\n",
	})
	a, b := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl")
	// The messages the read fails with, in order, without routing.
	failA := failure(t, malformedJob(a, "format: jsonl", false, ""))
	failB := failure(t, malformedJob(b, "format: jsonl", false, ""))
	if !strings.Contains(failA, a+": line 2: invalid JSON") || !strings.Contains(failB, b+": line 1: invalid JSON") {
		t.Fatalf("unrouted failures: %q, %q", failA, failB)
	}
	forModes(t, func(t *testing.T, mode spec.RuntimeMode) {
		c := run(t, malformedJob(dir, "format: jsonl", true, ""), mode, local.Options{})
		sameMultiset(t, "good", c, "good", `{"id": 1}`, `{"id": 2}`, `{"id": 4}`, `{"id": 5}`)
		// The errors are the messages the unrouted reads failed with; the
		// unterminated object at line 5 never failed a read above, so only
		// the start of its error is known.
		sameMalformed(t, c, map[string][2]any{
			a + ":2": {"not json", suffixFrom(failA, a)},
			a + ":5": {`{"id": 3`, a + ": line 5: invalid JSON: "},
			b + ":1": {"[1,", suffixFrom(failB, b)},
		})
	})
}

// failure runs a job that must fail and returns its error message.
func failure(t *testing.T, src string) string {
	t.Helper()
	_, err := tryRun(t, src, spec.Batch, local.Options{})
	if err == nil {
		t.Fatalf("job did not fail:\n%s", src)
	}
	return err.Error()
}

// suffixFrom cuts a job's error down to the read's message, which starts
// with the file's name.
func suffixFrom(msg, file string) string {
	i := strings.Index(msg, file)
	if i < 0 {
		return msg
	}
	return msg[i:]
}

// malformedRecords returns the side output's records as maps.
func malformedRecords(t *testing.T, c *enginetest.Collect) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, v := range c.Values("bad") {
		out = append(out, value.Plain(v).(map[string]any))
	}
	return out
}

// sameMalformed compares the side output with want (location -> raw and
// the start of the error), exactly: no record more or less.
func sameMalformed(t *testing.T, c *enginetest.Collect, want map[string][2]any) {
	t.Helper()
	got := malformedRecords(t, c)
	if len(got) != len(want) {
		t.Errorf("malformed: got %d records %v, want %d", len(got), got, len(want))
	}
	for _, m := range got {
		if len(m) != 3 {
			t.Errorf("malformed record %v: want exactly error, raw, location", m)
		}
		loc, _ := m["location"].(string)
		w, ok := want[loc]
		if !ok {
			t.Errorf("unexpected malformed record %v", m)
			continue
		}
		if fmt.Sprintf("%#v", m["raw"]) != fmt.Sprintf("%#v", w[0]) {
			t.Errorf("%s: raw %#v, want %#v", loc, m["raw"], w[0])
		}
		if e, _ := m["error"].(string); !strings.HasPrefix(e, w[1].(string)) {
			t.Errorf("%s: error %q, want it to start with %q", loc, e, w[1])
		}
	}
}

func TestMalformedCSVSchemaRouted(t *testing.T) {
	dir := writeInputs(t, map[string]string{
		"a.csv": "id,name\r\n1,ann\r\nx,bob\r\n2,cy\r\n3\r\n4,\"d\"\"e\"\r\n",
		"b.csv": "id,name\n5,eve\n6,\"fo\"o\"\n7,\"multi\nline\"\n8,gus,extra\n",
	})
	a, b := filepath.Join(dir, "a.csv"), filepath.Join(dir, "b.csv")
	files := "format: csv, csv: {header: true}, schema: [{name: id, type: int}, {name: name, type: string}]"
	// Without routing, the first bad row of each file fails the job.
	for _, f := range []string{a, b} {
		msg := failure(t, malformedJob(f, files, false, ""))
		if !strings.Contains(msg, f+":") {
			t.Fatalf("unrouted failure does not name %s: %q", f, msg)
		}
	}
	forModes(t, func(t *testing.T, mode spec.RuntimeMode) {
		c := run(t, malformedJob(dir, files, true, ""), mode, local.Options{})
		sameMultiset(t, "good", c, "good", `{"id": 1, "name": "ann"}`, `{"id": 2, "name": "cy"}`, `{"id": 4, "name": "d\"e"}`,
			`{"id": 5, "name": "eve"}`, `{"id": 7, "name": "multi\nline"}`)
		sameMalformed(t, c, map[string][2]any{
			a + ":3": {"x,bob", a + ": line 3: "},
			a + ":5": {"3", a + ": record on line 5: wrong number of fields"},
			b + ":3": {`6,"fo"o"`, b + ": parse error on line 3"},
			b + ":6": {"8,gus,extra", b + ": record on line 6: wrong number of fields"},
		})
	})
}

func TestMalformedJSONLSchemaAndBytes(t *testing.T) {
	dir := writeInputs(t, map[string]string{
		"a.jsonl": "{\"id\": 1, \"at\": \"2024-01-01T00:00:00Z\"}\n{\"id\": \"one\", \"at\": 0}\n{\"at\": 5}\n" +
			"{\"id\": 2, \"at\": 7}\n\xff\xfe{\n",
	})
	a := filepath.Join(dir, "a.jsonl")
	files := "format: jsonl, schema: [{name: id, type: int}, {name: at, type: timestamp}]"
	forModes(t, func(t *testing.T, mode spec.RuntimeMode) {
		c := run(t, malformedJob(dir, files, true, ""), mode, local.Options{})
		sameMultiset(t, "good", c, "good", `{"id": 1, "at": 1704067200000}`, `{"id": 2, "at": 7}`)
		sameMalformed(t, c, map[string][2]any{
			a + ":2": {`{"id": "one", "at": 0}`, a + ": line 2: "},
			a + ":3": {`{"at": 5}`, a + ": line 3: "},
			// Not UTF-8: raw is the line's bytes.
			a + ":5": {[]byte("\xff\xfe{"), a + ": line 5: invalid JSON"},
		})
	})
}

// TestMalformedTimestampRouted: a record whose timestamp expression fails
// goes to the side output with the line it was read from.
func TestMalformedTimestampRouted(t *testing.T) {
	dir := writeInputs(t, map[string]string{
		"a.jsonl": "{\"id\": 1, \"t\": 10}\n{\"id\": 2, \"t\": \"soon\"}\n{\"id\": 3, \"t\": 30}\n{\"id\": 4}\n",
	})
	a := filepath.Join(dir, "a.jsonl")
	ts := "\n      timestamp: record.t"
	msg := failure(t, malformedJob(dir, "format: jsonl", false, ts))
	if !strings.Contains(msg, "source.timestamp") {
		t.Fatalf("unrouted failure: %q", msg)
	}
	forModes(t, func(t *testing.T, mode spec.RuntimeMode) {
		c := run(t, malformedJob(dir, "format: jsonl", true, ts), mode, local.Options{})
		sameMultiset(t, "good", c, "good", `{"id": 1, "t": 10}`, `{"id": 3, "t": 30}`)
		sameMalformed(t, c, map[string][2]any{
			a + ":2": {`{"id": 2, "t": "soon"}`, "source.timestamp: "},
			a + ":4": {`{"id": 4}`, ""},
		})
	})
}

// TestMalformedCounted: each routed record is counted for its stage
// (StageProgress.Malformed, the worker's flinkjob_worker_malformed_records_total).
func TestMalformedCounted(t *testing.T) {
	dir := writeInputs(t, map[string]string{
		"a.jsonl": "{\"id\": 1}\nnope\nnope again\n",
		"b.jsonl": "{\"id\": 2}\n{\n",
	})
	forModes(t, func(t *testing.T, mode spec.RuntimeMode) {
		c := enginetest.NewCollect()
		ex, err := local.New(newPlan(t, malformedJob(dir, "format: jsonl", true, ""), mode), local.Options{Env: connector.Env{CallSink: c.Sink}})
		if err != nil {
			t.Fatal(err)
		}
		if err := ex.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, p := range ex.Progress() {
			if p.Stage.Head().Name == "src" {
				n += p.Malformed
			} else if p.Malformed != 0 {
				t.Errorf("stage %s counted %d malformed records", p.Stage.Name, p.Malformed)
			}
		}
		if n != 3 || len(c.Values("bad")) != 3 {
			t.Errorf("counted %d malformed records, routed %d; want 3", n, len(c.Values("bad")))
		}
	})
}

// The job of TestMalformedCheckpointRestore: the good records' ids summed
// and the malformed records counted, in keyed state, from a files source
// read by two subtasks.
const malformedCheckpointJob = `
parallelism: 2
steps:
  - name: src
    source:
      files: {path: %q, format: jsonl}
      malformedOutput: bad
  - name: goodv
    inputs: [src]
    map: "{'k': 'good', 'v': record.id}"
  - name: badv
    inputs: [bad]
    map: "{'k': 'bad', 'v': 1}"
  - name: both
    inputs: [goodv, badv]
    union: {}
  - name: sums
    keyBy: record.k
    reduce: "{'k': acc.k, 'v': acc.v + record.v}"
  - name: out
    sink: {call: out}
`

// TestMalformedCheckpointRestore: a STREAMING job cancelled after a
// checkpoint and restored from it counts every good and every malformed
// record exactly once: the malformed records' positions are in the
// checkpoint like the good ones', and they reach the side output in the
// same read.
func TestMalformedCheckpointRestore(t *testing.T) {
	const lines = 60000
	var wantSum, wantBad int64
	files := map[string]string{}
	for f := 0; f < 2; f++ {
		var b strings.Builder
		for i := 0; i < lines; i++ {
			id := int64(f*lines + i)
			if id%7 == 3 {
				fmt.Fprintf(&b, "{\"id\": %d\n", id)
				wantBad++
				continue
			}
			fmt.Fprintf(&b, "{\"id\": %d}\n", id)
			wantSum += id
		}
		files[fmt.Sprintf("part-%d.jsonl", f)] = b.String()
	}
	dir := writeInputs(t, files)
	job := fmt.Sprintf(malformedCheckpointJob, dir)
	want := map[string]string{`"bad"`: fmt.Sprint(wantBad), `"good"`: fmt.Sprint(wantSum)}
	restores := 0
	for seed := int64(1); seed <= 3; seed++ {
		cpDir := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		var first atomic.Bool
		delay := time.Duration(seed*3) * time.Millisecond
		opts := local.Options{CheckpointInterval: 5 * time.Millisecond, CheckpointDir: cpDir, BatchSize: 64,
			OnCheckpoint: func(int64) {
				if first.CompareAndSwap(false, true) {
					time.AfterFunc(delay, cancel)
				}
			}}
		c1, err1 := runJob(t, job, opts, ctx)
		cancel()
		got := map[string]string{}
		lastPerKey(got, c1)
		if !first.Load() {
			// The whole input was read before a checkpoint completed
			// (a fast machine): nothing to restore, the run is complete.
			if err1 != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("seed %d: uncancelled run: %v, sums %v want %v", seed, err1, got, want)
			}
			t.Logf("seed %d: the input was read before a checkpoint completed", seed)
			continue
		}
		c2, err := runJob(t, job, local.Options{CheckpointInterval: 5 * time.Millisecond, CheckpointDir: cpDir, BatchSize: 64, RestoreFrom: "latest"}, context.Background())
		if err != nil {
			t.Fatalf("seed %d: restored run: %v", seed, err)
		}
		lastPerKey(got, c2)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("seed %d (cancelled %v after the first checkpoint, first run error %v): sums %v, want %v", seed, delay, err1, got, want)
		}
		restores++
	}
	// A pass without a restore would show nothing about positions.
	if restores == 0 {
		t.Fatal("no seed restored: every run read its input before a checkpoint completed")
	}
}
