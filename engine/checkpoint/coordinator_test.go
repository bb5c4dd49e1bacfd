package checkpoint

import (
	"context"
	"strings"
	"testing"
	"time"
)

// A checkpoint that misses its timeout is given up, and the next one
// starts; a late acknowledgement of the old one is ignored; complete
// checkpoints notify and count.
func TestCoordinatorTimeoutAndAcks(t *testing.T) {
	ctx := context.Background()
	store := LocalStore{Dir: t.TempDir()}
	var completed []int64
	c := NewCoordinator(store, Options{Subtasks: 2, Sources: 1, Timeout: time.Millisecond,
		OnComplete: func(id int64) { completed = append(completed, id) }})
	var got []Barrier
	c.AddSource(Subtask{0, 0}, func(b Barrier) { got = append(got, b) })
	if id := c.Trigger(); id != 1 {
		t.Fatalf("first checkpoint %d", id)
	}
	if id := c.Trigger(); id != 0 {
		t.Fatalf("a second checkpoint %d started while one is in flight", id)
	}
	if err := c.Ack(ctx, Subtask{0, 0}, 1, map[string][]byte{"source/s/0-of-1": []byte("p1")}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	c.expire()
	if id := c.Trigger(); id != 2 {
		t.Fatalf("after the timeout the next checkpoint is %d, want 2", id)
	}
	if err := c.Ack(ctx, Subtask{1, 0}, 1, nil); err != nil { // late: ignored
		t.Fatal(err)
	}
	if len(completed) != 0 {
		t.Fatalf("a given-up checkpoint completed: %v", completed)
	}
	for _, st := range []Subtask{{0, 0}, {1, 0}} {
		if err := c.Ack(ctx, st, 2, nil); err != nil {
			t.Fatal(err)
		}
	}
	if len(completed) != 1 || completed[0] != 2 || len(got) != 2 || got[1].ID != 2 {
		t.Fatalf("completed %v, barriers %v", completed, got)
	}
	if done, _ := Completed(ctx, store); len(done) != 1 || done[0] != 2 {
		t.Fatalf("complete in the store: %v", done)
	}
	// The final savepoint starts once every source ended, and only then.
	c.SourceEnded(Subtask{0, 0})
	if len(got) != 3 || !got[2].Final || got[2].ID != 3 {
		t.Fatalf("barriers after the sources ended: %v", got)
	}
	if id, ok := c.FinalID(); !ok || id != 3 {
		t.Fatalf("final ID %d %v", id, ok)
	}
	if _, err := c.TriggerAndWait(ctx); err == nil || !strings.Contains(err.Error(), "finishing") {
		t.Fatalf("a checkpoint after the final one: %v", err)
	}
}

// Once every source finished (FinishedWith), no checkpoint starts: no
// barrier would start it, so it would only wait for its timeout (and hold
// up a savepoint meanwhile).
func TestCoordinatorNoCheckpointAfterEverySourceFinished(t *testing.T) {
	ctx := context.Background()
	c := NewCoordinator(LocalStore{Dir: t.TempDir()}, Options{Subtasks: 2, Sources: 1})
	src := Subtask{0, 0}
	c.AddSource(src, func(Barrier) {})
	if err := c.FinishedWith(ctx, src, map[string][]byte{"source/s/0-of-1": []byte("end")}); err != nil {
		t.Fatal(err)
	}
	if id := c.Trigger(); id != 0 {
		t.Fatalf("checkpoint %d started with every source finished", id)
	}
}

// A source that acknowledged checkpoint N itself and finished before N
// completed keeps its barrier position in N: its records after the
// barrier are not in N's downstream snapshots, so its end position there
// would lose them on restore. The end position stands in from N+1 on.
func TestCoordinatorSourceFinishedAfterItsAckKeepsItsPosition(t *testing.T) {
	ctx := context.Background()
	store := LocalStore{Dir: t.TempDir()}
	src, other, down := Subtask{0, 0}, Subtask{0, 1}, Subtask{1, 0}
	c := NewCoordinator(store, Options{Subtasks: 3, Sources: 2})
	c.AddSource(src, func(Barrier) {})
	c.AddSource(other, func(Barrier) {})
	const name = "source/s/0-of-2"
	position := func(id int64) string {
		t.Helper()
		b, err := Sub(store, DirName(id)).Get(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	id := c.Trigger()
	if err := c.Ack(ctx, src, id, map[string][]byte{name: []byte("at-barrier")}); err != nil {
		t.Fatal(err)
	}
	if err := c.FinishedWith(ctx, src, map[string][]byte{name: []byte("end")}); err != nil {
		t.Fatal(err)
	}
	for _, st := range []Subtask{other, down} {
		if err := c.Ack(ctx, st, id, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := position(id); got != "at-barrier" {
		t.Fatalf("checkpoint %d holds the finished source's position %q, want its own %q", id, got, "at-barrier")
	}
	id2 := c.Trigger()
	if id2 == 0 {
		t.Fatal("no checkpoint after one source finished")
	}
	for _, st := range []Subtask{other, down} {
		if err := c.Ack(ctx, st, id2, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := position(id2); got != "end" {
		t.Fatalf("checkpoint %d holds %q for the finished source, want its end position", id2, got)
	}
}
