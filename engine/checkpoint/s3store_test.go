package checkpoint_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/flinkjob/flinkjob/engine/checkpoint"
	"github.com/flinkjob/flinkjob/internal/testminio"
)

// TestMain stops the private MinIO the S3 store tests start (nothing when
// MINIO_ENDPOINT points at a shared one, as in `make test`). It must stay
// the package's only TestMain.
func TestMain(m *testing.M) {
	code := m.Run()
	testminio.Stop()
	os.Exit(code)
}

// stores gives a fresh store on each backend: a prefix of a real MinIO
// bucket through S3Store, and a local directory.
func stores(t *testing.T) map[string]checkpoint.Store {
	s3 := testminio.Start(t)
	bucket := testminio.Bucket(t, s3)
	s, err := checkpoint.NewS3Store(fmt.Sprintf("s3://%s/flinkjob/ns/job/uid/checkpoints/", bucket), s3)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]checkpoint.Store{"s3": s, "local": checkpoint.LocalStore{Dir: t.TempDir()}}
}

// The Store contract, the same on S3 and on a directory.
func TestS3StoreObjects(t *testing.T) {
	ctx := context.Background()
	for kind, s := range stores(t) {
		t.Run(kind, func(t *testing.T) {
			if names, err := s.List(ctx, ""); err != nil || len(names) != 0 {
				t.Fatalf("empty store lists %v, %v", names, err)
			}
			if _, err := s.Get(ctx, "chk-1/_COMPLETED"); !errors.Is(err, checkpoint.ErrNotFound) {
				t.Fatalf("get of a missing object: %v", err)
			}
			objs := map[string]string{
				"chk-1/source/gen/0": "p0", "chk-1/source/gen/1": "p1", "chk-1/_COMPLETED": "{}",
				"chk-12/keyed/sum/0-of-2": strings.Repeat("k", 70_000), "chk-2/empty": "",
			}
			for n, v := range objs {
				if err := s.Put(ctx, n, []byte(v)); err != nil {
					t.Fatal(err)
				}
			}
			for n, v := range objs {
				if b, err := s.Get(ctx, n); err != nil || string(b) != v {
					t.Fatalf("get %s: %d bytes, %v", n, len(b), err)
				}
			}
			if err := s.Put(ctx, "chk-1/source/gen/0", []byte("again")); err != nil {
				t.Fatal(err)
			}
			if b, _ := s.Get(ctx, "chk-1/source/gen/0"); string(b) != "again" {
				t.Fatalf("overwrite: %q", b)
			}
			// Markers (names starting with '_') are listed: completeness is read from them.
			if names, err := s.List(ctx, "chk-1/"); err != nil || fmt.Sprint(names) != "[chk-1/_COMPLETED chk-1/source/gen/0 chk-1/source/gen/1]" {
				t.Fatalf("list chk-1/: %v %v", names, err)
			}
			if names, err := s.List(ctx, "chk-1"); err != nil || len(names) != 4 {
				t.Fatalf("list chk-1 (chk-12 too): %v %v", names, err)
			}
			if err := s.Delete(ctx, "chk-1/"); err != nil {
				t.Fatal(err)
			}
			if names, err := s.List(ctx, ""); err != nil || fmt.Sprint(names) != "[chk-12/keyed/sum/0-of-2 chk-2/empty]" {
				t.Fatalf("after deleting chk-1/: %v %v", names, err)
			}
			sub := checkpoint.Sub(s, "chk-12/")
			if names, err := sub.List(ctx, "keyed/"); err != nil || fmt.Sprint(names) != "[keyed/sum/0-of-2]" {
				t.Fatalf("sub list: %v %v", names, err)
			}
			for _, bad := range []string{"", "/abs", "a/../../b"} {
				if err := s.Put(ctx, bad, nil); err == nil {
					t.Errorf("put %q succeeded", bad)
				}
			}
		})
	}
}

// Checkpoint directories, completeness, retention, savepoint copies and
// restore resolution, on S3 through the package's functions.
func TestS3StoreCheckpoints(t *testing.T) {
	ctx := context.Background()
	s3 := testminio.Start(t)
	bucket := testminio.Bucket(t, s3)
	base := fmt.Sprintf("s3://%s/flinkjob/ns/job/", bucket)
	open := checkpoint.OpenURL(s3)
	chk, err := open(base + "uid/checkpoints/")
	if err != nil {
		t.Fatal(err)
	}
	if id, ok, err := checkpoint.Latest(ctx, chk); err != nil || ok {
		t.Fatalf("empty store: latest %d %v %v", id, ok, err)
	}
	for id := int64(1); id <= 5; id++ {
		dir := checkpoint.Sub(chk, checkpoint.DirName(id))
		if err := dir.Put(ctx, checkpoint.SourcePositionName("gen", 0, 1), []byte(fmt.Sprintf("pos-%d", id))); err != nil {
			t.Fatal(err)
		}
		if id == 5 {
			break // left incomplete, as by a crash
		}
		if err := checkpoint.MarkComplete(ctx, dir, checkpoint.Meta{ID: id, Kind: "checkpoint"}); err != nil {
			t.Fatal(err)
		}
		if err := checkpoint.Retain(ctx, chk, 2); err != nil {
			t.Fatal(err)
		}
	}
	if c, err := checkpoint.Completed(ctx, chk); err != nil || fmt.Sprint(c) != "[3 4]" {
		t.Fatalf("completed after retention of 2: %v %v", c, err)
	}
	if h, err := checkpoint.Highest(ctx, chk); err != nil || h != 5 {
		t.Fatalf("highest: %d %v", h, err)
	}
	// A savepoint is a copy of a complete checkpoint directory elsewhere.
	spURL := base + "savepoints/sp-4-abc/"
	sp, err := open(spURL)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.CopyAs(ctx, checkpoint.Sub(chk, checkpoint.DirName(4)), sp, checkpoint.Meta{ID: 4, Kind: "savepoint"}); err != nil {
		t.Fatal(err)
	}
	for _, from := range []string{"latest", "4", spURL, base + "uid/checkpoints/chk-4"} {
		dir, m, err := checkpoint.Resolve(ctx, chk, from, open)
		if err != nil || m.ID != 4 {
			t.Fatalf("resolve %s: %+v %v", from, m, err)
		}
		if b, err := dir.Get(ctx, checkpoint.SourcePositionName("gen", 0, 1)); err != nil || string(b) != "pos-4" {
			t.Fatalf("resolve %s: position %q %v", from, b, err)
		}
	}
	// Incomplete or missing directories are refused, naming the path.
	for _, from := range []string{"5", base + "uid/checkpoints/chk-5/", base + "savepoints/none/"} {
		if _, _, err := checkpoint.Resolve(ctx, chk, from, open); err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(from, base)) {
			t.Errorf("resolve %s: %v", from, err)
		}
	}
	// Retention never reaches savepoints; the incomplete 5 goes once newer ones complete.
	for id := int64(6); id <= 7; id++ {
		dir := checkpoint.Sub(chk, checkpoint.DirName(id))
		if err := checkpoint.MarkComplete(ctx, dir, checkpoint.Meta{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if err := checkpoint.Retain(ctx, chk, 1); err != nil {
		t.Fatal(err)
	}
	if names, err := chk.List(ctx, ""); err != nil || fmt.Sprint(names) != "[chk-7/_COMPLETED]" {
		t.Fatalf("after retention of 1: %v %v", names, err)
	}
	if _, m, err := checkpoint.Resolve(ctx, chk, spURL, open); err != nil || m.ID != 4 {
		t.Fatalf("savepoint after retention: %+v %v", m, err)
	}
}

func TestS3StoreBadURL(t *testing.T) {
	s3 := testminio.Start(t)
	for _, u := range []string{"s3://", "gs://b/p/", "/local/dir"} {
		if _, err := checkpoint.NewS3Store(u, s3); err == nil {
			t.Errorf("NewS3Store(%q) succeeded", u)
		}
	}
}
