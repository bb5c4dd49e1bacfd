package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/flinkjob/flinkjob/internal/testminio"
)

// The samples use paths relative to the repository root, as the README runs them.
func TestMain(m *testing.M) {
	if err := os.Chdir("../.."); err != nil {
		panic(err)
	}
	code := m.Run()
	testminio.Stop()
	os.Exit(code)
}

// withOutput copies a sample with its out/ paths moved into dir.
func withOutput(t *testing.T, sample, dir string) string {
	t.Helper()
	b, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), "path: out/", "path: "+dir+"/")
	p := filepath.Join(dir, filepath.Base(sample))
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// readParts reads every JSON line of the part files in dir, sorted.
func readParts(t *testing.T, dir string) []string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "_SUCCESS")); err != nil {
		t.Fatalf("no _SUCCESS marker in %s: %v", dir, err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "part-*"))
	var lines []string
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" {
				lines = append(lines, l)
			}
		}
		fh.Close()
	}
	sort.Strings(lines)
	return lines
}

func expected(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("config/samples/expected", name))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	sort.Strings(lines)
	return lines
}

// lastPerKey keeps the last update per key: the final result of a
// STREAMING rolling reduce.
func lastPerKey(t *testing.T, dir, field string) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "part-*"))
	last := map[string]string{}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			k := m[field].(string)
			// Counts only grow, so the largest is the last update.
			if prev, ok := last[k]; !ok || count(t, l) > count(t, prev) {
				last[k] = l
			}
		}
	}
	var out []string
	for _, l := range last {
		out = append(out, l)
	}
	sort.Strings(out)
	return out
}

func count(t *testing.T, l string) float64 {
	var m map[string]any
	json.Unmarshal([]byte(l), &m)
	return m["n"].(float64)
}

func equalLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s: got %d lines, want %d\n got: %v\nwant: %v", what, len(got), len(want), got, want)
	}
}

func TestBoundedSamples(t *testing.T) {
	cases := []struct {
		sample, out, expected string
		rolling               bool // STREAMING output holds updates; compare the last per word
	}{
		{"config/samples/wordcount-batch.yaml", "wordcount-batch", "wordcount.jsonl", true},
		{"config/samples/wordcount-streaming.yaml", "wordcount-streaming", "wordcount.jsonl", true},
		{"config/samples/windowed-temperatures.yaml", "windowed-temperatures", "windowed-temperatures.jsonl", false},
		{"config/samples/orders-join.yaml", "orders-join", "orders-join.jsonl", false},
	}
	for _, c := range cases {
		for _, mode := range []string{"BATCH", "STREAMING"} {
			t.Run(c.out+"/"+mode, func(t *testing.T) {
				dir := t.TempDir()
				manifest := withOutput(t, c.sample, dir)
				code, _, stderr := runCLI(t, "run", "-f", manifest, "--mode", mode)
				if code != 0 {
					t.Fatalf("exit %d: %s", code, stderr)
				}
				if !strings.Contains(stderr, "job succeeded") {
					t.Errorf("no summary in stderr: %s", stderr)
				}
				outDir := filepath.Join(dir, c.out)
				want := expected(t, c.expected)
				if c.rolling && mode == "STREAMING" {
					equalLines(t, c.sample, lastPerKey(t, outDir, "word"), want)
					return
				}
				equalLines(t, c.sample, readParts(t, outDir), want)
			})
		}
	}
}

func TestUnboundedSample(t *testing.T) {
	code, out, stderr := runCLI(t, "run", "-f", "config/samples/datagen-unbounded.yaml", "--duration", "2500ms")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if n := strings.Count(out, "views: "); n < 3 {
		t.Errorf("want window results printed while running, got %d lines:\n%s", n, out)
	}
	code, _, stderr = runCLI(t, "run", "-f", "config/samples/datagen-unbounded.yaml", "--mode", "BATCH")
	if code != 2 || !strings.Contains(stderr, `source "clicks" is unbounded`) || !strings.Contains(stderr, "spec.steps[0].source") {
		t.Errorf("BATCH with an unbounded source: exit %d, %s", code, stderr)
	}
}

func TestValidateAndPlan(t *testing.T) {
	samples, _ := filepath.Glob("config/samples/*.yaml")
	if len(samples) < 5 {
		t.Fatalf("want at least 5 samples, found %v", samples)
	}
	for _, s := range samples {
		if code, out, stderr := runCLI(t, "validate", "-f", s); code != 0 || !strings.Contains(out, "valid FlinkJob") {
			t.Errorf("validate %s: exit %d %s %s", s, code, out, stderr)
		}
	}
	code, out, _ := runCLI(t, "plan", "-f", "config/samples/wordcount-batch.yaml")
	if code != 0 || !strings.Contains(out, "stages: 3") || !strings.Contains(out, "HASH(record.word)") {
		t.Errorf("plan: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "plan", "-f", "config/samples/wordcount-batch.yaml", "--dot")
	if code != 0 || !strings.HasPrefix(out, "digraph plan {") || !strings.Contains(out, "cluster_2") {
		t.Errorf("plan --dot: exit %d\n%s", code, out)
	}
}

func TestInvalidManifests(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ name, body, want string }{
		{"unknown-field", "apiVersion: flinkjob.io/v1alpha1\nkind: FlinkJob\nmetadata: {name: x}\nspec:\n  steps:\n    - name: a\n      sourec: {}\n", `unknown field "spec.steps[0].sourec"`},
		{"bad-cel", "apiVersion: flinkjob.io/v1alpha1\nkind: FlinkJob\nmetadata: {name: x}\nspec:\n  steps:\n    - name: a\n      source: {elements: [1]}\n    - name: b\n      map: \"record +\"\n    - name: c\n      sink: {print: {}}\n", `spec.steps[1].map: step "b": CEL expression "record +" does not compile`},
		{"not-flinkjob", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", "no document of kind FlinkJob"},
		{"wrong-version", "apiVersion: flinkjob.io/v2\nkind: FlinkJob\nmetadata: {name: x}\n", `want "flinkjob.io/v1alpha1"`},
	}
	for _, c := range cases {
		p := filepath.Join(dir, c.name+".yaml")
		os.WriteFile(p, []byte(c.body), 0o644)
		code, _, stderr := runCLI(t, "validate", "-f", p)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: exit %d, stderr %q, want exit 2 and %q", c.name, code, stderr, c.want)
		}
	}
	if code, _, _ := runCLI(t, "frobnicate"); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
	if code, _, _ := runCLI(t, "run"); code != 2 {
		t.Errorf("run without -f: exit %d, want 2", code)
	}
}

// validate --cluster checks what the admission webhook checks (jobcheck):
// a sample written for local runs, with no spec.storage, is valid for run
// but refused for a cluster, each problem with its field; with the storage
// and checkpoint fields a cluster needs, it passes.
func TestValidateCluster(t *testing.T) {
	sample := "config/samples/wordcount-batch.yaml"
	if code, out, stderr := runCLI(t, "validate", "-f", sample); code != 0 || !strings.Contains(out, "valid FlinkJob") {
		t.Fatalf("validate: exit %d %s %s", code, out, stderr)
	}
	code, _, stderr := runCLI(t, "validate", "--cluster", "-f", sample)
	if code != 2 || !strings.Contains(stderr, "spec.storage: a BATCH job with 3 stages") {
		t.Errorf("validate --cluster: exit %d, stderr %q; want exit 2 naming spec.storage", code, stderr)
	}
	// As a STREAMING job the stages need no storage, but checkpointing
	// without it (and a too short interval) is what admission refuses.
	body, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ckpt := filepath.Join(dir, "ckpt.yaml")
	os.WriteFile(ckpt, []byte(strings.Replace(string(body), "spec:\n", "spec:\n  checkpointing: {interval: 10ms}\n", 1)), 0o644)
	code, _, stderr = runCLI(t, "validate", "--cluster", "--mode", "STREAMING", "-f", ckpt)
	for _, want := range []string{"spec.checkpointing: checkpointing needs spec.storage", `spec.checkpointing.interval: "10ms" is not a Go duration of at least 100ms`} {
		if code != 2 || !strings.Contains(stderr, want) {
			t.Errorf("validate --cluster of a STREAMING job checkpointing without storage: exit %d, stderr %q; want exit 2 and %q", code, stderr, want)
		}
	}
	stored := filepath.Join(dir, "stored.yaml")
	os.WriteFile(stored, []byte(strings.Replace(string(body), "spec:\n", "spec:\n  storage: {s3: {bucket: b, endpoint: 'http://minio:9000'}}\n  checkpointing: {interval: 1s}\n", 1)), 0o644)
	if code, out, stderr := runCLI(t, "validate", "--cluster", "-f", stored); code != 0 || !strings.Contains(out, "valid FlinkJob") {
		t.Errorf("validate --cluster with storage: exit %d %s %s", code, out, stderr)
	}
}

// The run summary counts, per stage, the records a source could not read
// and routed to its source.malformedOutput.
func TestRunSummaryCountsMalformed(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte("{\"n\": 1}\nnot json\n{\"n\": 2}\n{broken\n"), 0o644)
	job := filepath.Join(dir, "job.yaml")
	os.WriteFile(job, []byte(`apiVersion: flinkjob.io/v1alpha1
kind: FlinkJob
metadata: {name: malformed-summary}
spec:
  runtimeMode: BATCH
  parallelism: 1
  steps:
    - name: in
      source:
        files: {path: `+filepath.Join(dir, "in.jsonl")+`, format: jsonl}
        malformedOutput: bad
    - name: good
      sink: {discard: {}}
    - name: dead-letters
      inputs: [bad]
      sink: {discard: {}}
`), 0o644)
	code, _, stderr := runCLI(t, "run", "-f", job)
	if code != 0 {
		t.Fatalf("run: exit %d\n%s", code, stderr)
	}
	var header, row []string
	for _, l := range strings.Split(stderr, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) > 0 && f[0] == "STAGE":
			header = f
		case header != nil && len(f) > 0 && f[0] == "0":
			row = f
		}
	}
	if len(header) == 0 || header[len(header)-1] != "MALFORMED" || len(row) == 0 || row[len(row)-1] != "2" {
		t.Errorf("summary header %q, stage 0 %q: want a MALFORMED column with 2\n%s", header, row, stderr)
	}
}
