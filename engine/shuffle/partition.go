// Package shuffle moves records between stages: partitioners decide which
// downstream subtask gets a record (hash by key, round robin, broadcast or
// forward), and the blocking store holds BATCH stages' materialized output
// (one file per producer subtask and downstream partition, sorted by key
// where the consumer is keyed, plus a manifest per producer that makes the
// output count). The worker backs the store with S3; the in-process
// executor with a local directory.
package shuffle

import (
	"fmt"

	"github.com/flinkjob/flinkjob/engine/expr"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// KeyGroup maps an encoded key to one of plan.MaxParallelism key groups
// (32-bit FNV-1a of the key ID).
func KeyGroup(keyID string) int {
	const offset32, prime32 = 2166136261, 16777619
	h := uint32(offset32)
	for i := 0; i < len(keyID); i++ {
		h ^= uint32(keyID[i])
		h *= prime32
	}
	return int(h % plan.MaxParallelism)
}

// SubtaskForKey maps an encoded key to a subtask: key groups are assigned
// to subtasks in contiguous ranges, as Flink's KeyGroupRangeAssignment.
func SubtaskForKey(keyID string, parallelism int) int {
	return KeyGroup(keyID) * parallelism / plan.MaxParallelism
}

// Partitioner routes the records of one edge from one producer subtask.
type Partitioner struct {
	kind spec.Partitioning
	n    int
	self int
	key  *expr.Program
	ev   *expr.Evaluator // key's evaluator: a Partitioner has one user
	buf  []byte          // the key's encoding, before it becomes KeyID
	// ids caches recent key IDs by a hash of their bytes, so records of a
	// key seen lately share its KeyID string instead of allocating one.
	ids *[keyIDCacheSize]string
	// ints caches int keys (the most common kind) with their key ID and
	// target: a hit costs neither encoding nor hashing.
	ints *[keyIDCacheSize]intKey
	next int
	edge *plan.Edge
}

// NewPartitioner returns the partitioner of edge e used by producer subtask self.
func NewPartitioner(e *plan.Edge, self int) *Partitioner {
	p := &Partitioner{kind: e.Partitioning, n: e.To.Parallelism, self: self, key: e.Input.Key, next: self % e.To.Parallelism, edge: e}
	if p.key != nil {
		p.ev = p.key.Evaluator()
		p.ids = new([keyIDCacheSize]string)
		p.ints = new([keyIDCacheSize]intKey)
	}
	return p
}

type intKey struct {
	k   int64
	id  string // "" for an empty slot (a key ID is never empty)
	sub int
}

const (
	keyIDCacheBits = 12
	keyIDCacheSize = 1 << keyIDCacheBits
)

// keyID returns string(b), from the cache when it holds it.
func (p *Partitioner) keyID(b []byte) string {
	if len(b) > 64 {
		return string(b) // long keys: hashing costs about what copying does
	}
	h := uint32(2166136261)
	for _, c := range b {
		h ^= uint32(c)
		h *= 16777619
	}
	slot := &p.ids[h&(keyIDCacheSize-1)]
	if *slot != string(b) {
		*slot = string(b)
	}
	return *slot
}

// All is returned by Route for records that go to every subtask.
const All = -1

// Route returns the target subtask of r (or All). For HASH edges it
// computes and sets r's key.
func (p *Partitioner) Route(r *value.Record) (int, error) {
	switch p.kind {
	case spec.Hash:
		k, err := p.ev.Eval1(r.Value)
		if err != nil {
			return 0, fmt.Errorf("keyBy of step %q: %w", p.edge.To.Head().Name, err)
		}
		if i, ok := k.(int64); ok {
			// Two ways per set, the most recently added first.
			set := p.ints[((uint64(i)*0x9E3779B97F4A7C15)>>(64-keyIDCacheBits))&^1:]
			e := &set[0]
			if e.id == "" || e.k != i {
				if set[1].id != "" && set[1].k == i {
					e = &set[1]
				} else {
					set[1] = set[0]
					p.buf = value.Append(p.buf[:0], k)
					e.k, e.id, e.sub = i, string(p.buf), 0
					if p.n > 1 {
						e.sub = SubtaskForKey(e.id, p.n)
					}
				}
			}
			r.Key, r.KeyID = k, e.id
			return e.sub, nil
		}
		// r.WithKey(k), encoding through a reused buffer.
		p.buf = value.Append(p.buf[:0], k)
		r.Key, r.KeyID = k, p.keyID(p.buf)
		if cap(p.buf) > 4096 {
			p.buf = nil
		}
		if p.n == 1 {
			return 0, nil
		}
		return SubtaskForKey(r.KeyID, p.n), nil
	case spec.Broadcast:
		return All, nil
	case spec.Rebalance:
		t := p.next
		p.next++
		if p.next == p.n {
			p.next = 0
		}
		return t, nil
	}
	return p.self, nil
}

// ChannelBase is the first input channel number of edge e at its consumer:
// a consumer numbers its channels edge by edge (in input order), one per
// producer subtask.
func ChannelBase(e *plan.Edge) int {
	base := 0
	for _, in := range e.To.Inputs {
		if in == e {
			return base
		}
		base += in.From.Parallelism
	}
	panic("edge not among its consumer's inputs")
}

// Channels counts the input channels of a stage.
func Channels(s *plan.Stage) int {
	n := 0
	for _, in := range s.Inputs {
		n += in.From.Parallelism
	}
	return n
}
