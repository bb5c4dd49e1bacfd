package connector

import "context"

// Transactional is implemented by sink writers that write exactly once in
// STREAMING with checkpoints, by two-phase commit as Flink's
// TwoPhaseCommitSinkFunction / committing sinks do:
//
//   - between two checkpoints the writer stages what it is given (a pending
//     part file, an open Kafka transaction); nothing is visible yet;
//   - at checkpoint id's barrier the task calls PreCommit: the writer closes
//     the open transaction and returns a description of it (its
//     "committables"), which the task stores in its snapshot of checkpoint id;
//   - once checkpoint id is complete (every subtask acknowledged it) the task
//     calls Commit(id): the writer makes visible everything staged up to id;
//   - a subtask restored from checkpoint id calls Recover with the bytes its
//     PreCommit returned for id, before the first Write: the writer commits
//     them (idempotently: they may already be committed) and aborts anything
//     staged after id by an earlier attempt.
//
// At the end of a bounded input the task calls Close as for any writer: the
// writer stages the last transaction so the job's Finisher (which runs once
// every subtask has finished) commits it.
type Transactional interface {
	PreCommit(ctx context.Context, id int64) ([]byte, error)
	Commit(ctx context.Context, id int64) error
	Recover(ctx context.Context, state []byte) error
}

// CheckpointListener is implemented by readers (and writers) that act when
// a checkpoint completes, for example a Kafka reader committing the offsets
// stored in that checkpoint back to the consumer group. Errors are logged by
// the caller, not fatal: a completed checkpoint stays complete.
type CheckpointListener interface {
	CheckpointComplete(ctx context.Context, id int64) error
}
