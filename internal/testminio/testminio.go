// Package testminio gives tests a real MinIO server. With MINIO_ENDPOINT
// (and MINIO_ACCESS_KEY / MINIO_SECRET_KEY) set, e.g. by `make test` or
// `eval "$(hack/minio.sh env)"`, every test uses that server. Otherwise the
// first Start builds bin/minio (hack/minio.sh install; minutes on a cold
// build cache, cached in bin/ afterwards) and starts a private server with
// hack/minio.sh start; the package's TestMain must call Stop.
//
// Tests never skip when MinIO is missing: a server that cannot be started
// is a failure, not a pass.
//
// The private server's port is MINIO_TEST_PORT (default 19200) plus an
// offset derived from the test's working directory (its package), so the
// packages `go test ./...` runs in parallel each get their own server and
// one package stopping its server never pulls it from under another.
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		testminio.Stop()
//		os.Exit(code)
//	}
//
//	func TestSomething(t *testing.T) {
//		cfg := testminio.Start(t)
//		bucket := testminio.Bucket(t, cfg)
//		...
//	}
package testminio

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/flinkjob/flinkjob/engine/connector"
)

// DefaultPort is the first port tried when MINIO_TEST_PORT is unset; it
// keeps clear of the Makefile's 19000 and the connector tests' 19100.
const DefaultPort = 19200

// portSlots is how many port pairs (API and console) packages spread over.
const portSlots = 40

var state struct {
	once    sync.Once
	mu      sync.Mutex
	cfg     connector.S3Config
	err     error
	script  string
	env     []string
	started bool
	release func()
}

// Start returns the config of the test MinIO, starting it on first use in
// this process. It fails t when no server can be had.
func Start(t testing.TB) connector.S3Config {
	t.Helper()
	state.once.Do(start)
	if state.err != nil {
		t.Fatalf("MinIO for tests: %v", state.err)
	}
	return state.cfg
}

// Config is Start for code without a testing.TB (a Ginkgo suite's
// BeforeSuite): the same server, or the error that kept it from starting.
func Config() (connector.S3Config, error) {
	state.once.Do(start)
	return state.cfg, state.err
}

// Stop stops the server Start started (nothing when it used
// MINIO_ENDPOINT or never ran). Call it from TestMain after m.Run.
func Stop() {
	state.mu.Lock()
	defer state.mu.Unlock()
	if !state.started {
		return
	}
	state.started = false
	cmd := exec.Command(state.script, "stop")
	cmd.Env = state.env
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "hack/minio.sh stop: %v\n%s", err, out)
	}
	state.release()
}

// EnsureBucket creates bucket on the server unless it exists.
func EnsureBucket(t testing.TB, cfg connector.S3Config, bucket string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := connector.EnsureBucket(ctx, cfg, bucket); err != nil {
		t.Fatalf("creating bucket %s: %v", bucket, err)
	}
}

// Bucket creates a fresh, randomly named bucket for one test; it is
// emptied and removed when the test ends.
func Bucket(t testing.TB, cfg connector.S3Config) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	bucket := "fj-test-" + hex.EncodeToString(b[:])
	EnsureBucket(t, cfg, bucket)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		loc, err := connector.ParseLocation("s3://"+bucket+"/", cfg)
		if err == nil {
			err = loc.DeletePrefix(ctx, "")
		}
		var client *minio.Client
		if err == nil {
			client, err = newClient(cfg)
		}
		if err == nil {
			err = client.RemoveBucket(ctx, bucket)
		}
		if err != nil {
			t.Logf("cleaning up bucket %s: %v", bucket, err)
		}
	})
	return bucket
}

// Env returns cfg as the FLINKJOB_S3_* variables workers read
// (connector.S3ConfigFromEnv).
func Env(cfg connector.S3Config) []string {
	return []string{
		"FLINKJOB_S3_ENDPOINT=" + cfg.Endpoint,
		"FLINKJOB_S3_ACCESS_KEY=" + cfg.AccessKey,
		"FLINKJOB_S3_SECRET_KEY=" + cfg.SecretKey,
	}
}

// RepoRoot finds the repository root: the nearest directory above the
// working directory (or this source file) holding hack/minio.sh.
func RepoRoot() (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	for _, d := range starts {
		for {
			if _, err := os.Stat(filepath.Join(d, "hack", "minio.sh")); err == nil {
				return d, nil
			}
			parent := filepath.Dir(d)
			if parent == d {
				break
			}
			d = parent
		}
	}
	return "", errors.New("no hack/minio.sh above the working directory")
}

func start() {
	if ep := os.Getenv("MINIO_ENDPOINT"); ep != "" {
		state.cfg = connector.S3Config{Endpoint: ep, AccessKey: os.Getenv("MINIO_ACCESS_KEY"), SecretKey: os.Getenv("MINIO_SECRET_KEY")}
		if !strings.Contains(ep, "://") {
			state.err = waitReady(state.cfg)
		}
		return
	}
	root, err := RepoRoot()
	if err != nil {
		state.err = err
		return
	}
	state.script = filepath.Join(root, "hack", "minio.sh")

	begin := time.Now()
	// Packages tested in parallel would otherwise build bin/minio at once.
	_ = os.MkdirAll(filepath.Join(root, "bin"), 0o755)
	unlock := lock(filepath.Join(root, "bin", ".minio-install.lock"))
	install := exec.Command(state.script, "install")
	out, err := install.CombinedOutput()
	unlock()
	if err != nil {
		state.err = fmt.Errorf("hack/minio.sh install: %v\n%s", err, out)
		return
	}
	if d := time.Since(begin); d > 10*time.Second {
		fmt.Fprintf(os.Stderr, "testminio: built bin/minio in %s\n", d.Round(time.Second))
	}

	base := DefaultPort
	if p, err := strconv.Atoi(os.Getenv("MINIO_TEST_PORT")); err == nil && p > 0 {
		base = p
	}
	h := fnv.New32a()
	wd, _ := os.Getwd()
	h.Write([]byte(wd))
	slot := int(h.Sum32() % portSlots)
	var errs []string
	for try := 0; try < portSlots; try++ {
		port := base + 2*((slot+try)%portSlots)
		err := startOn(port)
		if err == nil {
			return
		}
		errs = append(errs, fmt.Sprintf("port %d: %v", port, err))
		if len(errs) >= 8 {
			break
		}
	}
	state.err = fmt.Errorf("could not start MinIO:\n%s", strings.Join(errs, "\n"))
}

// startOn starts a server on port (its console on port+1). A lock file
// held for the life of this process claims the port among test binaries
// (of any checkout): the kernel drops it when the process ends, however it
// ends, so a server left behind by a test binary that crashed before its
// TestMain stopped it is found here under a free lock and restarted.
func startOn(port int) error {
	ps := strconv.Itoa(port)
	release, ok := tryLock(filepath.Join(os.TempDir(), "flinkjob-testminio-"+ps+".lock"))
	if !ok {
		return errors.New("claimed by another test process")
	}
	env := append(os.Environ(), "MINIO_PORT="+ps)
	stop := func() {
		cmd := exec.Command(state.script, "stop")
		cmd.Env = env
		_ = cmd.Run()
	}
	// A leftover of a crashed run of ours: stop it for a fresh data dir.
	stop()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(state.script, "start")
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		stop()
		release()
		return fmt.Errorf("hack/minio.sh start: %v\n%s", err, stderr.String())
	}
	vars := map[string]string{}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		if kv, ok := strings.CutPrefix(sc.Text(), "export "); ok {
			k, v, _ := strings.Cut(kv, "=")
			vars[k] = v
		}
	}
	cfg := connector.S3Config{Endpoint: vars["MINIO_ENDPOINT"], AccessKey: vars["MINIO_ACCESS_KEY"], SecretKey: vars["MINIO_SECRET_KEY"]}
	if cfg.Endpoint == "" {
		stop()
		release()
		return fmt.Errorf("hack/minio.sh start printed no MINIO_ENDPOINT:\n%s", stdout.String())
	}
	if err := waitReady(cfg); err != nil {
		stop()
		release()
		return err
	}
	state.mu.Lock()
	state.cfg, state.env, state.started, state.release = cfg, env, true, release
	state.mu.Unlock()
	return nil
}

func newClient(cfg connector.S3Config) (*minio.Client, error) {
	return minio.New(cfg.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, "")})
}

// waitReady waits until the server answers S3 requests: MinIO reports
// itself live (what hack/minio.sh waits for) a moment before its object
// layer is up, and refuses requests with "Server not initialized yet"
// until then.
func waitReady(cfg connector.S3Config) error {
	client, err := newClient(cfg)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := client.ListBuckets(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("MinIO on %s is not ready after 30s: %w", cfg.Endpoint, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
