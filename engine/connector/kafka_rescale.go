package connector

import "github.com/flinkjob/flinkjob/engine/spec"

// Rescalable is implemented by Positioned readers whose position is a set
// of splits (Kafka partitions), each with its own offset, that any subtask
// may resume. A restore at another parallelism than the checkpoint's gives
// each new reader the positions of every subtask of the checkpoint
// (SeekAll, before its first Read, like Seek), and the reader resumes the
// splits it owns now, as Flink's split enumerator reassigns the restored
// splits when a source's parallelism changes: every split resumes exactly
// where the checkpoint left it, none is lost or read twice. A Positioned
// reader without it (a position that is an index into the subtask's own
// share) restores only at the parallelism it was checkpointed at.
type Rescalable interface {
	Positioned
	SeekAll(positions [][]byte) error
}

// RescalableSource reports whether a source step's checkpointed positions
// can be restored at another parallelism (its readers are Rescalable), for
// validation that cannot open the source: Kafka's can.
func RescalableSource(s *spec.Source) bool { return s != nil && s.Kafka != nil }

var _ Rescalable = (*kafkaReader)(nil)
