package testminio_test

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/internal/testminio"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testminio.Stop()
	os.Exit(code)
}

func TestStartWriteRead(t *testing.T) {
	cfg := testminio.Start(t)
	if again := testminio.Start(t); again != cfg {
		t.Fatalf("second Start gave %+v, first %+v: want one server per process", again, cfg)
	}
	bucket := testminio.Bucket(t, cfg)
	testminio.EnsureBucket(t, cfg, bucket) // idempotent
	ctx := context.Background()
	loc, err := connector.ParseLocation("s3://"+bucket+"/dir/", cfg)
	if err != nil {
		t.Fatal(err)
	}
	w, err := loc.Create(ctx, "hello.txt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("hello, minio")); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	rc, err := loc.Open(ctx, "hello.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	if string(b) != "hello, minio" {
		t.Fatalf("read back %q", b)
	}
	// Env hands the same server to worker processes.
	for _, kv := range testminio.Env(cfg) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	if got := connector.S3ConfigFromEnv(); got.Endpoint != cfg.Endpoint || got.AccessKey != cfg.AccessKey || got.SecretKey != cfg.SecretKey {
		t.Fatalf("S3ConfigFromEnv after Env: %+v, want %+v", got, cfg)
	}
}

func TestBucketIsRemovedAfterTheTest(t *testing.T) {
	cfg := testminio.Start(t)
	var bucket string
	t.Run("uses", func(t *testing.T) {
		bucket = testminio.Bucket(t, cfg)
		loc, err := connector.ParseLocation("s3://"+bucket+"/", cfg)
		if err != nil {
			t.Fatal(err)
		}
		w, _ := loc.Create(context.Background(), "a/b")
		w.Write([]byte("x"))
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	})
	// Listing a bucket that is gone (or empty) fails.
	loc, err := connector.ParseLocation("s3://"+bucket+"/", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if files, err := loc.List(context.Background()); err == nil {
		t.Fatalf("bucket %s still holds %v", bucket, files)
	}
}
