package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// headerCommands returns the `go run ./cmd/flinkjob ...` commands of a
// sample's header comment, as flinkjob arguments (continuation lines
// joined).
func headerCommands(t *testing.T, sample string) [][]string {
	t.Helper()
	b, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	var cmds [][]string
	var cur []string
	for _, l := range strings.Split(string(b), "\n") {
		l, ok := strings.CutPrefix(l, "#")
		if !ok {
			break
		}
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "go" && f[1] == "run" {
			cur = f[3:] // go run ./cmd/flinkjob
		} else if cur == nil {
			continue
		} else {
			cur = append(cur, f...)
		}
		if n := len(cur); n > 0 && cur[n-1] == `\` {
			cur = cur[:n-1]
			continue
		}
		cmds = append(cmds, cur)
		cur = nil
	}
	return cmds
}

// The local recipe in wordcount-checkpointed.yaml's header shows what it
// describes: a complete checkpoint in the checkpoint directory, and a run
// restored from it that keeps the output (before, the bounded run ended
// before its first 1s checkpoint and the directory stayed empty).
func TestWordcountCheckpointedRecipe(t *testing.T) {
	const sample = "config/samples/wordcount-checkpointed.yaml"
	dir := t.TempDir()
	job := withOutput(t, sample, dir)
	cmds := headerCommands(t, sample)
	if len(cmds) == 0 {
		t.Fatal("no command in the header")
	}
	var outs [][]string
	for _, c := range cmds {
		for i, a := range c {
			a = strings.ReplaceAll(a, "/tmp/", dir+"/")
			if a == sample {
				a = job
			}
			c[i] = a
		}
		code, _, stderr := runCLI(t, c...)
		if code != 0 {
			t.Fatalf("%q: exit %d, %s", c, code, stderr)
		}
		outs = append(outs, readParts(t, filepath.Join(dir, "wordcount-checkpointed")))
	}
	chk, _ := filepath.Glob(filepath.Join(dir, "wordcount-checkpoints", "chk-*", "_COMPLETED"))
	if len(chk) == 0 {
		t.Errorf("no complete checkpoint in %s after the recipe", filepath.Join(dir, "wordcount-checkpoints"))
	}
	if len(cmds) != 2 || !strings.Contains(strings.Join(cmds[1], " "), "--restore-from") {
		t.Fatalf("header commands %q, want a run and a restore", cmds)
	}
	if len(outs[0]) == 0 || strings.Join(outs[0], "\n") != strings.Join(outs[1], "\n") {
		t.Errorf("output after the run (%d lines) and after the restore (%d lines) differ", len(outs[0]), len(outs[1]))
	}
}
