package connector

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// The S3 tests run against a real MinIO. With MINIO_ENDPOINT (and
// MINIO_ACCESS_KEY / MINIO_SECRET_KEY) set, e.g. by `make minio-start` and
// `eval "$(hack/minio.sh env)"`, they use that server. Otherwise the first
// S3 test builds bin/minio (hack/minio.sh install; minutes on a cold build
// cache) and starts it on MINIO_TEST_PORT (default 19100, away from the
// Makefile's 19000; the next even port when another run holds it, never
// adopting a server this process did not start); TestMain stops it. They
// never skip: a missing server is a failure, not a pass.

var testMinio struct {
	once    sync.Once
	cfg     S3Config
	err     error
	script  string
	env     []string
	started bool
}

func TestMain(m *testing.M) {
	code := m.Run()
	if testMinio.started {
		cmd := exec.Command(testMinio.script, "stop")
		cmd.Env = testMinio.env
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "hack/minio.sh stop: %v\n", err)
		}
	}
	os.Exit(code)
}

// testS3 returns the config of the test MinIO, starting it on first use.
func testS3(t *testing.T) S3Config {
	t.Helper()
	testMinio.once.Do(startTestMinio)
	if testMinio.err != nil {
		t.Fatalf("MinIO for S3 tests: %v", testMinio.err)
	}
	return testMinio.cfg
}

func startTestMinio() {
	if ep := os.Getenv("MINIO_ENDPOINT"); ep != "" {
		testMinio.cfg = S3Config{Endpoint: ep, AccessKey: os.Getenv("MINIO_ACCESS_KEY"), SecretKey: os.Getenv("MINIO_SECRET_KEY")}
		return
	}
	script, err := filepath.Abs(filepath.Join("..", "..", "hack", "minio.sh"))
	if err != nil {
		testMinio.err = err
		return
	}
	port := 19100
	if p, err := strconv.Atoi(os.Getenv("MINIO_TEST_PORT")); err == nil && p > 0 {
		port = p
	}
	// A work dir of this process's own: hack/minio.sh then refuses a port
	// where another server answers (another `go test` of this package)
	// instead of adopting it, and the next port is tried below. Adopted,
	// the other run's TestMain stopped it and wiped its data under this
	// one ("bucket does not exist").
	workdir, err := os.MkdirTemp("", "flinkjob-connector-minio-")
	if err != nil {
		testMinio.err = err
		return
	}
	testMinio.script = script
	testMinio.env = append(os.Environ(), "MINIO_PORT="+strconv.Itoa(port), "MINIO_WORKDIR="+workdir)

	start := time.Now()
	install := exec.Command(script, "install")
	install.Env = testMinio.env
	if out, err := install.CombinedOutput(); err != nil {
		testMinio.err = fmt.Errorf("hack/minio.sh install: %v\n%s", err, out)
		return
	}
	if d := time.Since(start); d > 10*time.Second {
		fmt.Fprintf(os.Stderr, "built bin/minio in %s\n", d.Round(time.Second))
	}

	var stdout, stderr bytes.Buffer
	for try := 0; ; try++ {
		stdout.Reset()
		stderr.Reset()
		testMinio.env = append(os.Environ(), "MINIO_PORT="+strconv.Itoa(port+2*try), "MINIO_WORKDIR="+workdir)
		cmd := exec.Command(script, "start")
		cmd.Env = testMinio.env
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err == nil {
			break
		}
		if try == 9 {
			testMinio.err = fmt.Errorf("hack/minio.sh start (ports %d-%d): %v\n%s", port, port+2*try, err, stderr.String())
			return
		}
	}
	// From here on the server may be up, so TestMain must stop it.
	testMinio.started = true
	vars := map[string]string{}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		if kv, ok := strings.CutPrefix(sc.Text(), "export "); ok {
			k, v, _ := strings.Cut(kv, "=")
			vars[k] = v
		}
	}
	testMinio.cfg = S3Config{Endpoint: vars["MINIO_ENDPOINT"], AccessKey: vars["MINIO_ACCESS_KEY"], SecretKey: vars["MINIO_SECRET_KEY"]}
	if testMinio.cfg.Endpoint == "" {
		testMinio.err = fmt.Errorf("hack/minio.sh start printed no MINIO_ENDPOINT:\n%s", stdout.String())
	}
}

// testBucket creates a fresh bucket for one test and removes it after.
func testBucket(t *testing.T, cfg S3Config) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	bucket := "fj-test-" + hex.EncodeToString(b[:])
	ctx := context.Background()
	if err := EnsureBucket(ctx, cfg, bucket); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		loc, err := ParseLocation("s3://"+bucket+"/", cfg)
		if err == nil {
			err = loc.DeletePrefix(ctx, "")
		}
		if err == nil {
			err = testClient(t, cfg).RemoveBucket(ctx, bucket)
		}
		if err != nil {
			t.Logf("cleaning up bucket %s: %v", bucket, err)
		}
	})
	return bucket
}

func testClient(t *testing.T, cfg S3Config) *minio.Client {
	t.Helper()
	c, err := NewS3Client(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func putObject(t *testing.T, loc Location, name, content string) {
	t.Helper()
	w, err := loc.Create(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(content)); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

func mustLocation(t *testing.T, p string, cfg S3Config) Location {
	t.Helper()
	loc, err := ParseLocation(p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func incompleteUploads(t *testing.T, cfg S3Config, bucket string) []string {
	t.Helper()
	var keys []string
	for u := range testClient(t, cfg).ListIncompleteUploads(context.Background(), bucket, "", true) {
		if u.Err != nil {
			t.Fatal(u.Err)
		}
		keys = append(keys, u.Key)
	}
	return keys
}

func TestS3RoundTrip(t *testing.T) {
	cfg := testS3(t)
	for _, tc := range roundTripCases() {
		t.Run(string(tc.format), func(t *testing.T) {
			bucket := testBucket(t, cfg)
			in := mustLocation(t, "s3://"+bucket+"/in/", cfg)
			roundTrip(t, tc, cfg, "s3://"+bucket+"/in/", "s3://"+bucket+"/out", func(name, content string) {
				putObject(t, in, name, content)
			})
		})
	}
}

func TestS3ListAndSplit(t *testing.T) {
	cfg := testS3(t)
	bucket := testBucket(t, cfg)
	ctx := context.Background()
	root := mustLocation(t, "s3://"+bucket+"/", cfg)
	var wantNames []string
	for _, n := range []string{"g", "a", "c", "b", "f", "e", "d", "sub/h"} {
		putObject(t, root, "in/"+n+".txt", n+"1\n"+n+"2\n")
		wantNames = append(wantNames, n+".txt")
	}
	// Markers, in-progress files and a sibling sharing the prefix string.
	for _, n := range []string{"in/_SUCCESS", "in/.part-0-0.txt.tmp-1", "in/_temporary/0/x.txt", "in/sub/.hidden", "in-other/x.txt"} {
		putObject(t, root, n, "nope\n")
	}

	for _, p := range []string{"s3://" + bucket + "/in", "s3://" + bucket + "/in/"} {
		files, err := mustLocation(t, p, cfg).List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, f := range files {
			got = append(got, f.Name)
			if f.Size != 6 && !strings.HasPrefix(f.Name, "sub/") {
				t.Errorf("%s: size %d", f.Name, f.Size)
			}
		}
		want := []string{"a.txt", "b.txt", "c.txt", "d.txt", "e.txt", "f.txt", "g.txt", "sub/h.txt"}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("List(%s) = %v, want %v", p, got, want)
		}
	}

	parts, err := readSubtasks(t, mustSource(t, spec.FileSource{Path: "s3://" + bucket + "/in/"}, cfg), 3)
	if err != nil {
		t.Fatal(err)
	}
	wantFirst := [][]string{{"a", "d", "g"}, {"b", "e", "sub/h"}, {"c", "f"}}
	seen := map[string]int{}
	for i, p := range parts {
		var first []string
		for j, rec := range p {
			v, _ := value.FromJSON([]byte(rec))
			line := v.(map[string]any)["line"].(string)
			seen[line]++
			if j%2 == 0 {
				first = append(first, strings.TrimSuffix(line, "1"))
			}
		}
		if !reflect.DeepEqual(first, wantFirst[i]) {
			t.Errorf("subtask %d read %v, want %v", i, first, wantFirst[i])
		}
	}
	if len(seen) != 16 {
		t.Errorf("read %d distinct lines, want 16: %v", len(seen), seen)
	}
	for l, n := range seen {
		if n != 1 || l == "nope" {
			t.Errorf("line %q read %d times", l, n)
		}
	}

	// A key that is an object is a single-file location.
	got := readAll(t, mustSource(t, spec.FileSource{Path: "s3://" + bucket + "/in/c.txt"}, cfg), 2)
	if want := jsonStrings(map[string]any{"line": "c1"}, map[string]any{"line": "c2"}); !reflect.DeepEqual(got, want) {
		t.Errorf("single object: got %q want %q", got, want)
	}
	// Nothing under a prefix is an error, not empty input: it is how a typo shows.
	src := mustSource(t, spec.FileSource{Path: "s3://" + bucket + "/typo/"}, cfg)
	if _, err := src.Open(ctx, 0, 1); err == nil || !strings.Contains(err.Error(), "typo") {
		t.Errorf("missing prefix: err = %v", err)
	}
}

// TestS3MultipartStreaming writes one part file larger than a multipart part
// (16 MiB) and checks it streamed as a multipart upload that stayed
// invisible until Close.
func TestS3MultipartStreaming(t *testing.T) {
	cfg := testS3(t)
	bucket := testBucket(t, cfg)
	ctx := context.Background()
	sink := mustSink(t, spec.FileSink{Path: "s3://" + bucket + "/big/"}, cfg)
	w, err := sink.Open(ctx, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("p", 1000)
	const n = 20 << 10 // ~20 MiB of ~1 KiB lines
	for i := 0; i < n; i++ {
		if err := w.Write(&value.Record{Value: map[string]any{"i": int64(i), "pad": pad}}); err != nil {
			t.Fatal(err)
		}
	}
	// The first 16 MiB part is uploaded by now, yet no object exists.
	loc := mustLocation(t, "s3://"+bucket+"/big/", cfg)
	for _, n := range []string{"part-0-0-0.jsonl", "_pending/part-0-0-0.jsonl"} {
		if ok, err := loc.Exists(ctx, n); err != nil || ok {
			t.Fatalf("before Close: %s exists=%v err=%v", n, ok, err)
		}
	}
	if ups := incompleteUploads(t, cfg, bucket); len(ups) != 1 {
		t.Fatalf("before Close: incomplete uploads %v, want one", ups)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// Close completes the upload to the pending name.
	st, err := testClient(t, cfg).StatObject(ctx, bucket, "big/_pending/part-0-0-0.jsonl", minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A multipart object's ETag ends in -<number of parts>.
	if !strings.HasSuffix(st.ETag, "-2") {
		t.Errorf("ETag %q: want a 2-part multipart upload", st.ETag)
	}
	if ups := incompleteUploads(t, cfg, bucket); len(ups) != 0 {
		t.Errorf("after Close: incomplete uploads %v", ups)
	}
	finish(t, sink)
	st, err = testClient(t, cfg).StatObject(ctx, bucket, "big/part-0-0-0.jsonl", minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Size <= 16<<20 {
		t.Fatalf("object is %d bytes, want > 16 MiB", st.Size)
	}
	if ok, err := loc.Exists(ctx, "_pending/part-0-0-0.jsonl"); err != nil || ok {
		t.Fatalf("after Finish: pending part exists=%v err=%v", ok, err)
	}

	// Read it back streaming and check every record is there once, in order.
	r, err := mustSource(t, spec.FileSource{Path: "s3://" + bucket + "/big/", Format: spec.FormatJSONL}, cfg).Open(ctx, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	next := int64(0)
	for {
		err := r.Read(ctx, 1000, func(v any) {
			m := v.(map[string]any)
			if m["i"] != next || m["pad"] != pad {
				t.Fatalf("record %d: got i=%v", next, m["i"])
			}
			next++
		})
		if err != nil {
			if err != io.EOF {
				t.Fatal(err)
			}
			break
		}
	}
	if next != n {
		t.Fatalf("read %d records, want %d", next, n)
	}
}

// TestS3AbortLeavesNoObject: an aborted writer leaves neither an object nor
// an incomplete multipart upload, whether or not a part was uploaded.
func TestS3AbortLeavesNoObject(t *testing.T) {
	cfg := testS3(t)
	bucket := testBucket(t, cfg)
	ctx := context.Background()
	sink := mustSink(t, spec.FileSink{Path: "s3://" + bucket + "/out/", Format: spec.FormatText}, cfg)

	big := strings.Repeat("x", 1<<20)
	for _, mib := range []int{0, 1, 20} {
		w, err := sink.Open(ctx, 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(&value.Record{Value: "first"}); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < mib; i++ {
			if err := w.Write(&value.Record{Value: big}); err != nil {
				t.Fatal(err)
			}
		}
		if mib > 16 {
			if ups := incompleteUploads(t, cfg, bucket); len(ups) != 1 {
				t.Fatalf("%d MiB: before Abort incomplete uploads %v, want one with a part", mib, ups)
			}
		}
		w.Abort()
		if err := w.Close(); err != nil {
			// Close after Abort has nothing left to commit.
			t.Fatal(err)
		}
		loc := mustLocation(t, "s3://"+bucket+"/out/", cfg)
		if ok, err := loc.Exists(ctx, "part-0-0-0.txt"); err != nil || ok {
			t.Fatalf("%d MiB: after Abort exists=%v err=%v", mib, ok, err)
		}
		if ups := incompleteUploads(t, cfg, bucket); len(ups) != 0 {
			t.Fatalf("%d MiB: after Abort incomplete uploads %v", mib, ups)
		}
	}

	// Writing into a bucket that does not exist fails by Close at the
	// latest, naming the object, and leaves nothing behind.
	sink = mustSink(t, spec.FileSink{Path: "s3://" + bucket + "-missing/out/"}, cfg)
	w, _ := sink.Open(ctx, 0, 1)
	werr := w.Write(&value.Record{Value: "x"})
	cerr := w.Close()
	if werr == nil && cerr == nil {
		t.Fatal("writing to a missing bucket succeeded")
	}
	if err := fmt.Sprint(werr, cerr); !strings.Contains(err, bucket+"-missing") {
		t.Errorf("error %q does not name the bucket", err)
	}
}

func TestS3SuccessMarkerAndClearOutput(t *testing.T) {
	cfg := testS3(t)
	bucket := testBucket(t, cfg)
	ctx := context.Background()
	out := "s3://" + bucket + "/job/out"
	loc := mustLocation(t, out, cfg)
	putObject(t, loc, "part-9-9.jsonl", "{\"stale\":true}\n")
	putObject(t, loc, "_SUCCESS", "")
	putObject(t, loc, "README", "keep me\n")

	sink := mustSink(t, spec.FileSink{Path: out}, cfg)
	if err := sink.(OutputClearer).ClearOutput(ctx); err != nil {
		t.Fatal(err)
	}
	for n, want := range map[string]bool{"part-9-9.jsonl": false, "_SUCCESS": false, "README": true} {
		if ok, err := loc.Exists(ctx, n); err != nil || ok != want {
			t.Errorf("after ClearOutput %s: exists=%v err=%v, want %v", n, ok, err, want)
		}
	}

	writeAll(t, sink, 3, []any{"a", "b", "c", "d"})
	st, err := testClient(t, cfg).StatObject(ctx, bucket, "job/out/_SUCCESS", minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Size != 0 {
		t.Errorf("_SUCCESS is %d bytes, want empty", st.Size)
	}
	files, err := loc.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
	}
	if want := []string{"README", "part-0-0-0.jsonl", "part-1-0-0.jsonl", "part-2-0-0.jsonl"}; !reflect.DeepEqual(names, want) {
		t.Errorf("listed %v, want %v (the marker is hidden)", names, want)
	}
}
