package checkpoint_test

import (
	"context"
	"strings"
	"testing"

	"github.com/flinkjob/flinkjob/engine/checkpoint"
)

func TestLocalStoreConformance(t *testing.T) {
	if err := checkpoint.CheckStore(context.Background(), checkpoint.LocalStore{Dir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
}

// Retention keeps the newest complete checkpoints and drops everything
// older (incomplete ones too); Resolve finds what to restore.
func TestRetainAndResolve(t *testing.T) {
	ctx := context.Background()
	s := checkpoint.LocalStore{Dir: t.TempDir()}
	for id := int64(1); id <= 6; id++ {
		if err := checkpoint.WriteSnapshot(ctx, s, id, map[string][]byte{"source/src/0-of-1": {byte(id)}}); err != nil {
			t.Fatal(err)
		}
		if id != 5 { // 5 never completed
			if err := checkpoint.MarkComplete(ctx, checkpoint.Sub(s, checkpoint.DirName(id)), checkpoint.Meta{ID: id, Kind: "checkpoint"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := checkpoint.Retain(ctx, s, 2); err != nil {
		t.Fatal(err)
	}
	done, _ := checkpoint.Completed(ctx, s)
	if len(done) != 2 || done[0] != 4 || done[1] != 6 {
		t.Fatalf("complete after Retain(2) = %v, want [4 6]", done)
	}
	if h, _ := checkpoint.Highest(ctx, s); h != 6 {
		t.Fatalf("highest = %d", h)
	}
	dir, m, err := checkpoint.Resolve(ctx, s, "latest", nil)
	if err != nil || m.ID != 6 {
		t.Fatalf("latest: %v %v", m, err)
	}
	if b, _ := dir.Get(ctx, "source/src/0-of-1"); len(b) != 1 || b[0] != 6 {
		t.Fatalf("latest reads %v", b)
	}
	if _, _, err := checkpoint.Resolve(ctx, s, "5", nil); err == nil || !strings.Contains(err.Error(), "not complete") {
		t.Fatalf("restore from incomplete 5: %v", err)
	}
	// A savepoint is a copy restorable from its path.
	sp := t.TempDir() + "/sp-4-x/"
	to, _ := checkpoint.OpenLocal(sp)
	if err := checkpoint.CopyAs(ctx, checkpoint.Sub(s, checkpoint.DirName(4)), to, checkpoint.Meta{ID: 4, Kind: "savepoint"}); err != nil {
		t.Fatal(err)
	}
	dir, m, err = checkpoint.Resolve(ctx, s, sp, nil)
	if err != nil || m.ID != 4 || m.Kind != "savepoint" {
		t.Fatalf("savepoint: %v %v", m, err)
	}
	if b, _ := dir.Get(ctx, "source/src/0-of-1"); len(b) != 1 || b[0] != 4 {
		t.Fatalf("savepoint reads %v", b)
	}
	if _, _, err := checkpoint.Resolve(ctx, s, t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), "_COMPLETED") {
		t.Fatalf("restore from an empty directory: %v", err)
	}
	// latest with no checkpoint is a fresh start.
	dir, _, err = checkpoint.Resolve(ctx, checkpoint.LocalStore{Dir: t.TempDir()}, "latest", nil)
	if err != nil || dir != nil {
		t.Fatalf("latest of an empty store: %v %v", dir, err)
	}
}
