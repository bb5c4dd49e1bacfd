package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flinkjob/flinkjob/engine/shuffle"
	"github.com/flinkjob/flinkjob/internal/testminio"
	"github.com/flinkjob/flinkjob/worker"
)

// TestLocationStore checks the shuffle store on MinIO and on a directory:
// partitions are visible only once closed, manifests round-trip, and a
// re-run overwrites its own output.
func TestLocationStore(t *testing.T) {
	s3 := testminio.Start(t)
	bucket := testminio.Bucket(t, s3)
	for name, url := range map[string]string{
		"s3":  fmt.Sprintf("s3://%s/jobs/j1/shuffle/", bucket),
		"dir": filepath.Join(t.TempDir(), "shuffle"),
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			store, err := worker.NewLocationStore(url, s3)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := store.Manifest(ctx, 0, 0); !errors.Is(err, shuffle.ErrNoManifest) {
				t.Fatalf("manifest before any run: %v, want ErrNoManifest", err)
			}
			w, err := store.Create(ctx, 3, 1, 0)
			if err != nil {
				t.Fatal(err)
			}
			payload := bytes.Repeat([]byte("0123456789abcdef"), 40_000) // 640 KB
			if _, err := w.Write(payload); err != nil {
				t.Fatal(err)
			}
			// Not closed yet: a reader must not see a partial partition.
			if rc, err := store.Open(ctx, 3, 1, 0); err == nil {
				rc.Close()
				t.Fatal("an unfinished partition can be opened")
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			read := func() []byte {
				rc, err := store.Open(ctx, 3, 1, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer rc.Close()
				b, err := io.ReadAll(rc)
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			if !bytes.Equal(read(), payload) {
				t.Fatal("partition read back differs")
			}
			// A retry overwrites its own partition.
			w, _ = store.Create(ctx, 3, 1, 0)
			w.Write([]byte("second attempt"))
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if got := read(); string(got) != "second attempt" {
				t.Fatalf("after a re-run the partition holds %d bytes", len(got))
			}
			m := shuffle.Manifest{Stage: 2, Subtask: 0, Attempt: 1, Records: 7, Bytes: 14, RecordsIn: 9}
			if err := store.Commit(ctx, 2, 0, m); err != nil {
				t.Fatal(err)
			}
			got, err := store.Manifest(ctx, 2, 0)
			if err != nil || got != m {
				t.Fatalf("manifest: %+v %v, want %+v", got, err, m)
			}
			if _, err := store.Open(ctx, 3, 0, 0); err == nil {
				t.Fatal("a partition that was never written opens")
			}
			// An aborted write leaves nothing behind.
			w, _ = store.Create(ctx, 4, 0, 0)
			w.Write(payload)
			a, ok := w.(interface{ Abort() })
			if !ok {
				t.Fatal("the partition writer cannot be aborted")
			}
			a.Abort()
			if rc, err := store.Open(ctx, 4, 0, 0); err == nil {
				rc.Close()
				t.Fatal("an aborted partition can be opened")
			}
		})
	}
	if _, err := worker.NewLocationStore("ftp://x/y", s3); err == nil {
		t.Error("an unsupported scheme was accepted")
	}
}

// TestTerminationMessageIsCapped: Kubernetes keeps 4 KiB of a termination
// message; a long error is cut so the message stays valid JSON.
func TestTerminationMessageIsCapped(t *testing.T) {
	for name, part := range map[string]string{
		"plain":     strings.Repeat("x", 200),
		"escaped":   strings.Repeat("\x01\"", 100), // 6 and 2 bytes each in JSON
		"multibyte": strings.Repeat("é", 100),
	} {
		term := filepath.Join(t.TempDir(), "term")
		long := "/" + strings.Repeat(part+"/", 30) + "job.json"
		_, err := worker.Run(context.Background(), worker.Config{JobFile: long, TerminationLog: term})
		if err == nil {
			t.Fatal("a missing job file ran")
		}
		b, err := os.ReadFile(term)
		if err != nil {
			t.Fatal(err)
		}
		var res worker.Result
		if err := json.Unmarshal(b, &res); err != nil {
			t.Fatalf("%s: %v: %.200s", name, err, b)
		}
		if len(b) > 4096 || !strings.HasSuffix(res.Error, "...") || len(res.Error) < 100 {
			t.Errorf("%s: termination message of %d bytes, error of %d: %.60q", name, len(b), len(res.Error), res.Error)
		}
	}
}
