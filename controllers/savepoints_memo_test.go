package controllers

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/flinkjob/flinkjob/worker/control"
)

// TestCheckpointMemoForgetsIdleJobs: a job no pass asked about for
// checkpointMemoIdle (finished, suspended or deleted) is forgotten; one
// asked about recently is kept, with what was read.
func TestCheckpointMemoForgetsIdleJobs(t *testing.T) {
	var m checkpointMemo // the zero value is ready
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, ok := m.get("a", t0); ok {
		t.Fatal("an empty memo has job a")
	}
	m.put("gone", seenCheckpoint{etag: "e1"}, t0)
	m.put("running", seenCheckpoint{etag: "e2", latest: control.LatestCheckpoint{ID: 7}}, t0)
	for d := time.Duration(0); d < checkpointMemoIdle; d += 30 * time.Second {
		m.get("running", t0.Add(d)) // polled every 30s at most
	}
	at := t0.Add(checkpointMemoIdle + time.Second)
	sc, ok := m.get("running", at)
	if !ok || sc.etag != "e2" || sc.latest.ID != 7 {
		t.Errorf("the running job: %+v %v, want etag e2, checkpoint 7", sc, ok)
	}
	if _, ok := m.get("gone", at); ok {
		t.Errorf("a job idle for %s is still remembered", checkpointMemoIdle+time.Second)
	}
	m.forget("running")
	if _, ok := m.get(types.UID("running"), at); ok {
		t.Error("forget kept the job")
	}
}
