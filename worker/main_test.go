package worker_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/internal/testminio"
)

// workerBin is cmd/worker, built once for the tests that need a process.
var workerBin string

func TestMain(m *testing.M) {
	code := func() int {
		root, err := testminio.RepoRoot()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		dir, err := os.MkdirTemp("", "flinkjob-worker-test-*")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		workerBin = filepath.Join(dir, "worker")
		start := time.Now()
		cmd := exec.Command("go", "build", "-o", workerBin, "./cmd/worker")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build ./cmd/worker: %v\n%s", err, out)
			return 1
		}
		if d := time.Since(start); d > 10*time.Second {
			fmt.Fprintf(os.Stderr, "built the worker in %s\n", d.Round(time.Second))
		}
		defer testminio.Stop()
		return m.Run()
	}()
	os.Exit(code)
}
