package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run --stop-with-savepoint ends an unbounded job at --duration with a
// savepoint, and --restore-from continues from it: the windows after the
// savepoint come out, none before it again.
func TestRunStopWithSavepointAndRestore(t *testing.T) {
	dir := t.TempDir()
	sample := "config/samples/datagen-unbounded.yaml"
	code, out1, stderr := runCLI(t, "run", "-f", sample, "--duration", "2500ms", "--quiet",
		"--checkpoint-dir", filepath.Join(dir, "chk"), "--checkpoint-interval", "300ms",
		"--savepoint-dir", filepath.Join(dir, "sp"), "--stop-with-savepoint")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	sps, _ := filepath.Glob(filepath.Join(dir, "sp", "sp-*-stop*"))
	if len(sps) != 1 {
		t.Fatalf("savepoints %v", sps)
	}
	if _, err := os.Stat(filepath.Join(sps[0], "_COMPLETED")); err != nil {
		t.Fatal(err)
	}
	code, out2, stderr := runCLI(t, "run", "-f", sample, "--duration", "1500ms", "--quiet", "--restore-from", sps[0])
	if code != 0 {
		t.Fatalf("restore: exit %d: %s", code, stderr)
	}
	// Window results are per (page, window end): none is printed twice.
	seen := map[string]bool{}
	for _, l := range strings.Split(out1+out2, "\n") {
		if !strings.HasPrefix(l, "views: ") {
			continue
		}
		i := strings.Index(l, `"windowEnd"`)
		k := l[:strings.Index(l, `"views"`)] + l[i:]
		if seen[k] {
			t.Errorf("window result twice: %s", l)
		}
		seen[k] = true
	}
	if !strings.Contains(out2, "views: ") || len(seen) < 6 {
		t.Errorf("too few window results (%d):\n%s---\n%s", len(seen), out1, out2)
	}
	code, _, stderr = runCLI(t, "run", "-f", sample, "--quiet", "--restore-from", filepath.Join(dir, "none"))
	if code == 0 || !strings.Contains(stderr, "_COMPLETED") {
		t.Errorf("restore from a missing savepoint: exit %d, %s", code, stderr)
	}
}
