package connector

// Consumer lag of the Kafka source, the figure Flink's Kafka reader
// reports as records-lag per partition, records-lag-max and pendingRecords
// per subtask: how many offsets each partition has between the next one
// the reader will read and the end of the partition. The end is the high
// watermark (the last stable offset with isolation.level read_committed)
// that the partition's last fetch returned, as the Kafka consumer's lag
// metrics take it, capped at the partition's stop offset when the source
// is bounded. A partition no fetch has returned records for yet (just
// started, or empty) has its end listed by Lags itself.

import (
	"context"
	"slices"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// SplitLag is one source split's lag: for Kafka a partition of a topic,
// read by subtask Subtask.
type SplitLag struct {
	Subtask   int
	Topic     string
	Partition int32
	// Lag is the number of offsets from the next one to read to the end
	// of the partition (transaction markers count, as in Kafka's own
	// records-lag).
	Lag int64
}

// LagReporter is implemented by sources that can tell their consumer lag,
// for metrics: Lags lists the lag of every split of the source's open
// readers (of every subtask the process runs), sorted by subtask and
// split. It may be called from any goroutine while the readers run.
type LagReporter interface {
	Lags(ctx context.Context) []SplitLag
}

var _ LagReporter = (*KafkaSource)(nil)

// Lags reports the lag of every partition the source's open readers read.
func (s *KafkaSource) Lags(ctx context.Context) []SplitLag {
	s.mu.Lock()
	readers := append([]*kafkaReader(nil), s.readers...)
	s.mu.Unlock()
	var out []SplitLag
	for _, r := range readers {
		out = append(out, r.lags(ctx)...)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Subtask != b.Subtask {
			return a.Subtask < b.Subtask
		}
		if a.Topic != b.Topic {
			return a.Topic < b.Topic
		}
		return a.Partition < b.Partition
	})
	return out
}

func (s *KafkaSource) addReader(r *kafkaReader) {
	s.mu.Lock()
	s.readers = append(s.readers, r)
	s.mu.Unlock()
}

func (s *KafkaSource) removeReader(r *kafkaReader) {
	s.mu.Lock()
	for i, x := range s.readers {
		if x == r {
			s.readers = append(s.readers[:i], s.readers[i+1:]...)
			break
		}
	}
	s.mu.Unlock()
}

// publishParts lets lags see the partitions, once their stop offsets are
// set (they do not change after that).
func (r *kafkaReader) publishParts() {
	r.lagMu.Lock()
	r.lagParts = append([]*partState(nil), r.parts...)
	r.lagMu.Unlock()
}

// lags is the reader's part of Lags. A partition whose end no fetch has
// told yet gets it from a ListOffsets request (a fetch's later value,
// fresher, wins); one whose end cannot be found is left out.
func (r *kafkaReader) lags(ctx context.Context) []SplitLag {
	r.lagMu.Lock()
	parts := r.lagParts
	r.lagMu.Unlock()
	var unknown []string
	for _, p := range parts {
		if p.pubEnd.Load() < 0 && !slices.Contains(unknown, p.tp.Topic) {
			unknown = append(unknown, p.tp.Topic)
		}
	}
	if len(unknown) > 0 {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var listed kadm.ListedOffsets
		var err error
		if r.readCommitted() {
			listed, err = r.adm.ListCommittedOffsets(lctx, unknown...) // the last stable offsets
		} else {
			listed, err = r.adm.ListEndOffsets(lctx, unknown...)
		}
		cancel()
		if err == nil {
			for _, p := range parts {
				if lo, ok := listed.Lookup(p.tp.Topic, p.tp.Partition); ok && lo.Err == nil && lo.Offset >= 0 {
					p.pubEnd.CompareAndSwap(-1, lo.Offset)
				}
			}
		}
	}
	out := make([]SplitLag, 0, len(parts))
	for _, p := range parts {
		end, next := p.pubEnd.Load(), p.pubNext.Load()
		if end < 0 || next < 0 {
			continue
		}
		if p.stop >= 0 && end > p.stop {
			end = p.stop
		}
		out = append(out, SplitLag{Subtask: r.index, Topic: p.tp.Topic, Partition: p.tp.Partition, Lag: max(0, end-next)})
	}
	return out
}
