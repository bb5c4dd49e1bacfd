package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// --duration ends an unbounded job normally, but a bounded job cut short
// did not succeed: its output is not complete (before, "job succeeded",
// exit 0, and an output directory with nothing published).
func TestRunDurationEndStates(t *testing.T) {
	code, _, stderr := runCLI(t, "run", "-f", "config/samples/datagen-unbounded.yaml", "--duration", "1s")
	if code != 0 || !strings.Contains(stderr, "job stopped after --duration 1s in") {
		t.Errorf("unbounded job, --duration 1s: exit %d, %s; want 0 and 'stopped after --duration'", code, stderr)
	}
	dir := t.TempDir()
	job := filepath.Join(dir, "big.yaml")
	os.WriteFile(job, []byte(`apiVersion: flinkjob.io/v1alpha1
kind: FlinkJob
metadata: {name: big-bounded}
spec:
  runtimeMode: STREAMING
  parallelism: 1
  steps:
    - name: nums
      source: {datagen: {value: "seq", count: 100000000, ratePerSecond: 1000}}
    - name: out
      sink: {files: {path: "`+dir+`/out/", format: jsonl}}
`), 0o644)
	code, _, stderr = runCLI(t, "run", "-f", job, "--duration", "1s")
	if code != 1 || strings.Contains(stderr, "succeeded") || !strings.Contains(stderr, "job stopped after --duration 1s before its input ended") ||
		!strings.Contains(stderr, "not complete") {
		t.Errorf("bounded job cut short by --duration: exit %d, %s; want 1, stopped before its input ended", code, stderr)
	}
}

// Command lines that cannot work exit 2 (invalid command line) and name
// the flags the user typed, not the engine's or worker's option names.
func TestRunFlagErrors(t *testing.T) {
	sample := "config/samples/datagen-unbounded.yaml"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--checkpoint-interval", "1s"}, "--checkpoint-interval needs --checkpoint-dir"},
		{[]string{"--checkpoint-interval", "1s", "--processes"}, "--checkpoint-interval needs --checkpoint-dir"},
		{[]string{"--stop-with-savepoint"}, "--stop-with-savepoint needs --savepoint-dir"},
		{[]string{"--stop-with-savepoint", "--savepoint-dir", t.TempDir(), "--processes"}, "--stop-with-savepoint applies to the in-process run"},
		{[]string{"--restore-from", "latest"}, "--restore-from latest needs --checkpoint-dir"},
		{[]string{"--checkpoint-dir", "gs://b/chk/", "--checkpoint-interval", "1s"}, "--checkpoint-dir gs://b/chk/: gs:// is not supported"},
		{[]string{"--savepoint-dir", "s3://b/sp/"}, "--savepoint-dir s3://b/sp/: the in-process run writes savepoints to a local directory only"},
	} {
		code, _, stderr := runCLI(t, append([]string{"run", "-f", sample, "--duration", "1s", "--quiet"}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.want) || strings.Contains(stderr, "CheckpointDir") || strings.Contains(stderr, "FLINKJOB_") {
			t.Errorf("%q: exit %d, %s; want 2 and %q", c.args, code, stderr, c.want)
		}
	}
}

// buildCLI builds the flinkjob binary (signals, and --processes, whose
// workers are this binary's worker command, need a real process).
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "flinkjob")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/flinkjob").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runBinary runs the CLI; with interrupt, it sends SIGINT once the job
// is running. It returns the exit code and standard error.
func runBinary(t *testing.T, bin string, interrupt bool, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdout = nil
	errp, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(errp)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if interrupt && strings.HasPrefix(sc.Text(), "running ") {
			cmd.Process.Signal(syscall.SIGINT)
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), strings.Join(lines, "\n")
}

// Ctrl-C cancels the job: "cancelled", exit 130 as shells report an
// interrupt (before, "job failed", "context canceled", exit 1), in process
// and with --processes; --processes --duration stops the workers as the
// in-process run stops (before, "signal: killed", exit 1).
func TestRunInterruptAndProcessesDuration(t *testing.T) {
	bin := buildCLI(t)
	sample := "config/samples/datagen-unbounded.yaml"
	code, stderr := runBinary(t, bin, true, "run", "-f", sample)
	if code != 130 || !strings.Contains(stderr, "job cancelled in") || strings.Contains(stderr, "failed") {
		t.Errorf("Ctrl-C: exit %d, %s; want 130, cancelled", code, stderr)
	}
	code, stderr = runBinary(t, bin, true, "run", "-f", sample, "--processes")
	if code != 130 || !strings.Contains(stderr, "job cancelled in") || strings.Contains(stderr, "killed") {
		t.Errorf("Ctrl-C with --processes: exit %d, %s; want 130, cancelled", code, stderr)
	}
	code, stderr = runBinary(t, bin, false, "run", "-f", sample, "--processes", "--duration", "2s")
	if code != 0 || !strings.Contains(stderr, "job stopped after --duration 2s in") || strings.Contains(stderr, "killed") {
		t.Errorf("--processes --duration 2s: exit %d, %s; want 0, stopped after --duration", code, stderr)
	}
}
