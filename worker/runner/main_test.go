package runner_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/internal/testminio"
	"github.com/flinkjob/flinkjob/worker"
)

// The runner's tests run jobs as real worker processes: the worker binary
// and a test worker with slow Go functions (worker/testdata/slowworker)
// are built once here; STREAMING workers exchange records over gRPC on
// loopback and BATCH workers shuffle through a real MinIO
// (internal/testminio).

var (
	repoRoot  string
	workerBin string // cmd/worker
	slowBin   string // worker/testdata/slowworker
)

func TestMain(m *testing.M) {
	code := func() int {
		root, err := testminio.RepoRoot()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		repoRoot = root
		dir, err := os.MkdirTemp("", "flinkjob-runner-test-*")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		workerBin = filepath.Join(dir, "worker")
		slowBin = filepath.Join(dir, "slowworker")
		start := time.Now()
		if err := goBuild(root, map[string]string{workerBin: "./cmd/worker", slowBin: "./worker/testdata/slowworker"}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if d := time.Since(start); d > 10*time.Second {
			fmt.Fprintf(os.Stderr, "built the worker binaries in %s\n", d.Round(time.Second))
		}
		defer testminio.Stop()
		return m.Run()
	}()
	os.Exit(code)
}

// goBuild builds packages (relative to root) into binaries, in parallel.
func goBuild(root string, bins map[string]string) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(bins))
	for out, pkg := range bins {
		wg.Add(1)
		go func(out, pkg string) {
			defer wg.Done()
			args := []string{"build", "-o", out}
			if os.Getenv("WORKER_RACE") != "" {
				// WORKER_RACE=1 builds the workers with the race detector:
				// a race makes a worker exit with status 66, failing its test.
				args = append(args, "-race")
			}
			cmd := exec.Command("go", append(args, pkg)...)
			cmd.Dir = root
			if b, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
			}
		}(out, pkg)
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// sample loads config/samples/<name>.yaml with its out/ paths moved under
// outRoot (a directory or s3://bucket/prefix) and its input paths made
// absolute, so workers find them from any directory.
func sample(t testing.TB, name, outRoot string) *spec.Job {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "config", "samples", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), "path: out/", "path: "+strings.TrimSuffix(outRoot, "/")+"/")
	s = strings.ReplaceAll(s, "path: config/samples/", "path: "+filepath.Join(repoRoot, "config", "samples")+"/")
	return loadJob(t, s)
}

// loadJob parses a job (or a FlinkJob manifest) from YAML.
func loadJob(t testing.TB, yaml string) *spec.Job {
	t.Helper()
	f := filepath.Join(t.TempDir(), "job.yaml")
	if err := os.WriteFile(f, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	job, err := worker.LoadJob(f)
	if err != nil {
		t.Fatal(err)
	}
	return job
}

// readOutput returns the lines of the part files under a files sink's path
// (a directory or s3:// URL), sorted, after checking its _SUCCESS marker.
func readOutput(t testing.TB, path string, s3 connector.S3Config) []string {
	t.Helper()
	loc, err := connector.ParseLocation(path, s3)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := loc.Exists(context.Background(), "_SUCCESS"); err != nil || !ok {
		t.Fatalf("no _SUCCESS marker in %s (%v)", path, err)
	}
	return sinkLines(t, s3, path)
}

func nonEmptyLines(t testing.TB, r io.Reader) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// expected reads config/samples/expected/<name>, sorted.
func expected(t testing.TB, name string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "config", "samples", "expected", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines := nonEmptyLines(t, f)
	sort.Strings(lines)
	return lines
}

func equalLines(t testing.TB, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s: got %d lines, want %d\n got: %v\nwant: %v", what, len(got), len(want), trim(got), trim(want))
	}
}

func trim(l []string) []string {
	if len(l) > 20 {
		return append(l[:20:20], fmt.Sprintf("... %d more", len(l)-20))
	}
	return l
}
