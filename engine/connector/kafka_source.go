package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// KafkaSource reads Kafka topics. Each subtask reads its own partitions
// (KafkaPartitionOwner), assigned by the job rather than by a consumer
// group, so a restore finds every partition where the checkpoint left it.
type KafkaSource struct {
	Spec spec.KafkaSource
	// WatermarkBound and Idleness are the source's watermark strategy
	// (maxOutOfOrderness in ms and idleness); they shape the per-partition
	// watermarks the reader reports.
	WatermarkBound int64
	Idleness       time.Duration
	// Malformed routes a record whose key or value its format cannot
	// decode (source.malformedOutput): the reader emits a *Malformed for
	// it instead of failing.
	Malformed bool

	// readers are the open readers, for Lags (kafka_lag.go).
	mu      sync.Mutex
	readers []*kafkaReader
}

// NewKafkaSource returns the connector of a source step with a kafka field.
func NewKafkaSource(s *spec.Source) *KafkaSource {
	k := &KafkaSource{Spec: *s.Kafka}
	if w := s.Watermarks; w != nil {
		k.WatermarkBound = w.MaxOutOfOrderness.Millis()
		k.Idleness, _ = w.Idleness.Get()
	}
	k.Malformed = s.MalformedOutput != ""
	return k
}

// Bounded is true when stoppingOffsets is set.
func (s *KafkaSource) Bounded() bool { return s.Spec.StoppingOffsets != nil }

// KafkaPartitionOwner is the subtask (of n) that reads a partition: the
// partitions of a topic go round-robin over the subtasks from a start that
// depends on the topic, as Flink's KafkaSourceEnumerator assigns them, so
// several topics' partitions spread evenly and the split does not change
// between runs.
func KafkaPartitionOwner(topic string, partition int32, n int) int {
	h := fnv.New32a()
	h.Write([]byte(topic))
	start := int(h.Sum32()&math.MaxInt32) % n
	return (start + int(partition)) % n
}

type topicPartition struct {
	Topic     string
	Partition int32
}

func (tp topicPartition) String() string { return fmt.Sprintf("%s/%d", tp.Topic, tp.Partition) }

// partState is how far one partition has been read.
type partState struct {
	tp   topicPartition
	next int64 // the next offset to read
	stop int64 // read up to here (exclusive); -1 when unbounded
	done bool
	// Event time: the largest timestamp seen and when the partition last
	// produced a record (for idleness).
	maxTs      int64
	lastActive time.Time
	// pubNext and pubEnd are next and the end of the partition (its high
	// watermark, or last stable offset with read_committed) as of the
	// last fetch that returned its records, -1 while unknown: published
	// once per poll for Lags, which runs on another goroutine.
	pubNext, pubEnd atomic.Int64
	// topic and partition boxed once, shared by the partition's records
	// (immutable values: one allocation less per record each).
	topicBox, partitionBox any
}

func newPartState(tp topicPartition) *partState {
	ps := &partState{tp: tp, next: -1, stop: -1, maxTs: math.MinInt64, topicBox: tp.Topic, partitionBox: int64(tp.Partition)}
	ps.pubNext.Store(-1)
	ps.pubEnd.Store(-1)
	return ps
}

// Open resolves the topics and the partitions this subtask owns. Offsets
// are resolved at the first Read (or Position), after a Seek had its say.
func (s *KafkaSource) Open(ctx context.Context, index, parallelism int) (Reader, error) {
	k := &s.Spec
	opts, err := kafkaClientOpts(k.BootstrapServers, k.Security, k.Properties["client.id"])
	if err != nil {
		return nil, err
	}
	if d, ok := propMillis(k.Properties, "request.timeout.ms"); ok {
		opts = append(opts, kgo.RequestTimeoutOverhead(d))
	}
	admin, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	r := &kafkaReader{src: s, opts: opts, admin: admin, adm: kadm.NewClient(admin), index: index,
		parallelism: parallelism, byTP: map[topicPartition]*partState{}, wm: value.MinWatermark, rows: value.UseRows}
	if !s.Bounded() {
		// Flink's partition.discovery.interval.ms, on by default for
		// unbounded sources; bounded ones read what existed at the start.
		r.discoverEvery = 5 * time.Minute
		if d, ok := propMillis(k.Properties, "partition.discovery.interval.ms"); ok {
			r.discoverEvery = d
		}
	}
	// A broker that does not answer (or refuses the credentials) fails
	// the open instead of retrying for as long as the job runs.
	actx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := r.assign(actx); err != nil {
		admin.Close()
		return nil, err
	}
	s.addReader(r)
	return r, nil
}

type kafkaReader struct {
	src                *KafkaSource
	opts               []kgo.Opt
	admin              *kgo.Client
	adm                *kadm.Client
	consumer           *kgo.Client
	index, parallelism int
	// last is the record emitted last, for Locate.
	last *kgo.Record

	parts   []*partState // owned partitions, sorted
	byTP    map[topicPartition]*partState
	started bool
	// discoverEvery is the partition discovery interval (unbounded only).
	discoverEvery time.Duration
	nextDiscover  time.Time
	// restored holds the positions of a Seek until the reader starts.
	restored map[topicPartition]kafkaPos

	ts Timestamped // reused for every record
	wm int64       // the watermark reported so far (never decreases)
	// tsBox is the last record timestamp boxed, shared by the records of
	// the same millisecond (often many in a batch).
	tsBox    any
	tsBoxed  int64
	hasTsBox bool
	// rows: records are rows of kafkaRecordSchema (value.UseRows at Open).
	rows bool

	// pending holds the positions taken for checkpoints that have not
	// completed yet, oldest first (see CheckpointComplete).
	mu      sync.Mutex
	pending []checkpointPos

	// lagParts is parts as Lags may see it: set once the partitions'
	// stop offsets are known (start, discover), under lagMu.
	lagMu    sync.Mutex
	lagParts []*partState
}

// checkpointPos is the position taken for one checkpoint.
type checkpointPos struct {
	id  int64
	pos []kafkaPos
}

// kafkaPos is one partition's entry in a reader position.
type kafkaPos struct {
	Topic     string `json:"t"`
	Partition int32  `json:"p"`
	Next      int64  `json:"n"`
	Stop      int64  `json:"s"`
}

func (r *kafkaReader) assign(ctx context.Context) error {
	tps, err := r.owned(ctx)
	if err != nil {
		return err
	}
	for _, tp := range tps {
		ps := newPartState(tp)
		r.parts = append(r.parts, ps)
		r.byTP[tp] = ps
	}
	r.sortParts()
	return nil
}

func (r *kafkaReader) sortParts() {
	sort.Slice(r.parts, func(i, j int) bool {
		a, b := r.parts[i].tp, r.parts[j].tp
		if a.Topic != b.Topic {
			return a.Topic < b.Topic
		}
		return a.Partition < b.Partition
	})
}

// owned lists the partitions of the source's topics this subtask reads.
func (r *kafkaReader) owned(ctx context.Context) ([]topicPartition, error) {
	k := &r.src.Spec
	// A metadata request of its own: the client's cached metadata may be
	// seconds old, and discovery wants what exists now.
	req := kmsg.NewPtrMetadataRequest()
	var re *regexp.Regexp
	if k.TopicPattern != "" {
		var err error
		if re, err = regexp.Compile("^(?:" + k.TopicPattern + ")$"); err != nil {
			return nil, fmt.Errorf("kafka topicPattern: %w", err)
		}
	} else {
		for _, t := range k.Topics {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(t)
			req.Topics = append(req.Topics, rt)
		}
	}
	resp, err := req.RequestWith(ctx, r.admin)
	if err != nil {
		return nil, fmt.Errorf("kafka: metadata: %w", err)
	}
	found := map[string]*kmsg.MetadataResponseTopic{}
	for i := range resp.Topics {
		if t := &resp.Topics[i]; t.Topic != nil {
			found[*t.Topic] = t
		}
	}
	var topics []string
	if re != nil {
		for name, t := range found {
			if !t.IsInternal && t.ErrorCode == 0 && re.MatchString(name) {
				topics = append(topics, name)
			}
		}
		sort.Strings(topics)
	} else {
		topics = k.Topics
	}
	var out []topicPartition
	for _, name := range topics {
		t := found[name]
		if t == nil {
			return nil, fmt.Errorf("kafka topic %q: not in the brokers' metadata", name)
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return nil, fmt.Errorf("kafka topic %q: %w", name, err)
		}
		for _, p := range t.Partitions {
			if KafkaPartitionOwner(name, p.Partition, r.parallelism) == r.index {
				out = append(out, topicPartition{name, p.Partition})
			}
		}
	}
	return out, nil
}

// discover adds the partitions (of new matching topics, or added to the
// topics) this subtask owns and does not read yet; they start at their
// earliest offset, as in Flink.
func (r *kafkaReader) discover(ctx context.Context) error {
	tps, err := r.owned(ctx)
	if err != nil {
		return err
	}
	var fresh []*partState
	now := time.Now()
	for _, tp := range tps {
		if r.byTP[tp] == nil {
			ps := newPartState(tp)
			ps.lastActive = now
			fresh = append(fresh, ps)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	offs, err := r.resolve(ctx, &spec.KafkaOffsets{Mode: spec.OffsetsEarliest}, fresh, false)
	if err != nil {
		return err
	}
	assign := map[string]map[int32]kgo.Offset{}
	for i, p := range fresh {
		p.next = offs[i]
		p.pubNext.Store(p.next)
		r.parts = append(r.parts, p)
		r.byTP[p.tp] = p
		if assign[p.tp.Topic] == nil {
			assign[p.tp.Topic] = map[int32]kgo.Offset{}
		}
		assign[p.tp.Topic][p.tp.Partition] = kgo.NewOffset().At(p.next)
	}
	r.sortParts()
	r.publishParts()
	slog.Info("kafka source: new partitions", "subtask", r.index, "partitions", len(fresh))
	if r.consumer == nil {
		return r.newConsumer(assign)
	}
	r.consumer.AddConsumePartitions(assign)
	return nil
}

// Position encodes the next offset (and the stop offset) of every owned
// partition. It belongs to no checkpoint (the task uses PositionFor for
// those), so nothing is committed for it.
func (r *kafkaReader) Position() ([]byte, error) {
	if err := r.start(context.Background()); err != nil {
		return nil, err
	}
	return json.Marshal(r.positions())
}

// PositionFor is Position taken at checkpoint id's barrier: the reader
// keeps it until CheckpointComplete tells whether id completed.
func (r *kafkaReader) PositionFor(id int64) ([]byte, error) {
	if err := r.start(context.Background()); err != nil {
		return nil, err
	}
	pos := r.positions()
	r.mu.Lock()
	r.pending = append(r.pending, checkpointPos{id: id, pos: pos})
	if len(r.pending) > 16 {
		// Checkpoints that never complete (abandoned) must not pile up.
		r.pending = r.pending[len(r.pending)-16:]
	}
	r.mu.Unlock()
	return json.Marshal(pos)
}

func (r *kafkaReader) positions() []kafkaPos {
	pos := make([]kafkaPos, len(r.parts))
	for i, p := range r.parts {
		pos[i] = kafkaPos{Topic: p.tp.Topic, Partition: p.tp.Partition, Next: p.next, Stop: p.stop}
	}
	return pos
}

// Seek restores positions taken by Position. Partitions the position does
// not list (created since) start at their earliest offset.
func (r *kafkaReader) Seek(b []byte) error { return r.SeekAll([][]byte{b}) }

// SeekAll restores the positions of every subtask of a checkpoint taken at
// another parallelism (Rescalable): each lists its partitions' offsets, so
// their union holds every partition of the checkpoint once, and this
// reader resumes the partitions it owns now (start only looks up its own)
// from their stored offsets and stop offsets, as Flink's enumerator
// reassigns restored splits. A partition listed twice is a corrupt
// snapshot: resuming it from either offset would lose or repeat records.
func (r *kafkaReader) SeekAll(positions [][]byte) error {
	restored := map[topicPartition]kafkaPos{}
	for _, b := range positions {
		var pos []kafkaPos
		if err := json.Unmarshal(b, &pos); err != nil {
			return fmt.Errorf("kafka: bad source position: %w", err)
		}
		for _, p := range pos {
			if p.Next < 0 {
				return fmt.Errorf("kafka: bad source position: offset %d for %s/%d", p.Next, p.Topic, p.Partition)
			}
			tp := topicPartition{p.Topic, p.Partition}
			if _, dup := restored[tp]; dup {
				return fmt.Errorf("kafka: bad source positions: partition %s is in more than one subtask's position", tp)
			}
			restored[tp] = p
		}
	}
	r.restored = restored
	return nil
}

// start resolves the start and stop offsets and starts consuming.
func (r *kafkaReader) start(ctx context.Context) error {
	if r.started {
		return nil
	}
	k := &r.src.Spec
	var fresh []*partState
	for _, p := range r.parts {
		if rp, ok := r.restored[p.tp]; ok {
			p.next = rp.Next
			p.stop = rp.Stop
		} else {
			fresh = append(fresh, p)
		}
	}
	start := k.StartingOffsets
	if start == nil || r.restored != nil {
		// A restored job's positions list every partition that existed
		// when it first started (each reader's position lists all it
		// owns), so a partition missing from them was created since: it
		// starts at its earliest offset, as discovery starts new ones and
		// as Flink starts partitions not in the restored state; at
		// startingOffsets (latest, say) its first records would be lost.
		start = &spec.KafkaOffsets{Mode: spec.OffsetsEarliest}
	}
	offs, err := r.resolve(ctx, start, fresh, false)
	if err != nil {
		return fmt.Errorf("kafka startingOffsets: %w", err)
	}
	for i, p := range fresh {
		p.next = offs[i]
	}
	if k.StoppingOffsets != nil {
		// A restored partition keeps the stop offset it was given at the
		// job's first start, so a restore does not move the end.
		var unstopped []*partState
		for _, p := range r.parts {
			if p.stop < 0 {
				unstopped = append(unstopped, p)
			}
		}
		stops, err := r.resolve(ctx, k.StoppingOffsets, unstopped, true)
		if err != nil {
			return fmt.Errorf("kafka stoppingOffsets: %w", err)
		}
		for i, p := range unstopped {
			p.stop = stops[i]
		}
	}
	now := time.Now()
	assign := map[string]map[int32]kgo.Offset{}
	for _, p := range r.parts {
		p.pubNext.Store(p.next)
		p.lastActive = now
		if p.stop >= 0 && p.next >= p.stop {
			p.done = true
			continue
		}
		if assign[p.tp.Topic] == nil {
			assign[p.tp.Topic] = map[int32]kgo.Offset{}
		}
		assign[p.tp.Topic][p.tp.Partition] = kgo.NewOffset().At(p.next)
	}
	if len(assign) > 0 {
		if err := r.newConsumer(assign); err != nil {
			return err
		}
	}
	slog.Info("kafka source: reading", "subtask", r.index, "of", r.parallelism, "partitions", len(r.parts),
		"finished", len(r.parts)-countAssigned(assign), "restored", r.restored != nil, "bounded", k.StoppingOffsets != nil)
	r.started = true
	r.restored = nil
	r.publishParts()
	if r.discoverEvery > 0 {
		r.nextDiscover = now.Add(r.discoverEvery)
	}
	return nil
}

func countAssigned(a map[string]map[int32]kgo.Offset) int {
	n := 0
	for _, ps := range a {
		n += len(ps)
	}
	return n
}

// newConsumer starts consuming partitions at the given offsets.
func (r *kafkaReader) newConsumer(assign map[string]map[int32]kgo.Offset) error {
	props := r.src.Spec.Properties
	opts := append([]kgo.Opt{}, r.opts...)
	opts = append(opts, kgo.ConsumePartitions(assign), kgo.KeepControlRecords(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Partitions added by discovery start without waiting out the
		// default 5 s between metadata refreshes.
		kgo.MetadataMinAge(250*time.Millisecond))
	if r.readCommitted() {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	if n, ok := propInt(props, "fetch.max.bytes"); ok {
		opts = append(opts, kgo.FetchMaxBytes(int32(n)))
	}
	if n, ok := propInt(props, "fetch.min.bytes"); ok {
		opts = append(opts, kgo.FetchMinBytes(int32(n)))
	}
	if d, ok := propMillis(props, "fetch.max.wait.ms"); ok {
		opts = append(opts, kgo.FetchMaxWait(d))
	}
	if n, ok := propInt(props, "max.partition.fetch.bytes"); ok {
		opts = append(opts, kgo.FetchMaxPartitionBytes(int32(n)))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	r.consumer = cl
	return nil
}

func (r *kafkaReader) readCommitted() bool {
	return r.src.Spec.Properties["isolation.level"] == "read_committed"
}

// resolve finds the offset o names in each partition.
func (r *kafkaReader) resolve(ctx context.Context, o *spec.KafkaOffsets, parts []*partState, stopping bool) ([]int64, error) {
	out := make([]int64, len(parts))
	if len(parts) == 0 {
		return out, nil
	}
	topics := map[string]bool{}
	for _, p := range parts {
		topics[p.tp.Topic] = true
	}
	names := make([]string, 0, len(topics))
	for t := range topics {
		names = append(names, t)
	}
	sort.Strings(names)
	listed := func(l kadm.ListedOffsets, err error) ([]int64, error) {
		if err != nil {
			return nil, err
		}
		res := make([]int64, len(parts))
		for i, p := range parts {
			lo, ok := l.Lookup(p.tp.Topic, p.tp.Partition)
			if !ok {
				return nil, fmt.Errorf("no offset listed for %s", p.tp)
			}
			if lo.Err != nil {
				return nil, fmt.Errorf("%s: %w", p.tp, lo.Err)
			}
			res[i] = lo.Offset
		}
		return res, nil
	}
	earliest := func() ([]int64, error) { return listed(r.adm.ListStartOffsets(ctx, names...)) }
	latest := func() ([]int64, error) {
		if r.readCommitted() {
			// The last stable offset: a read_committed consumer cannot
			// read past an open transaction.
			return listed(r.adm.ListCommittedOffsets(ctx, names...))
		}
		return listed(r.adm.ListEndOffsets(ctx, names...))
	}
	switch o.Mode {
	case spec.OffsetsEarliest:
		return earliest()
	case spec.OffsetsLatest:
		return latest()
	case spec.OffsetsTimestamp:
		return listed(r.adm.ListOffsetsAfterMilli(ctx, *o.Timestamp, names...))
	case spec.OffsetsSpecific:
		def := earliest
		if stopping {
			def = latest
		}
		given := map[topicPartition]int64{}
		for _, x := range o.Offsets {
			given[topicPartition{x.Topic, x.Partition}] = x.Offset
		}
		d, err := def()
		if err != nil {
			return nil, err
		}
		res := make([]int64, len(parts))
		for i, p := range parts {
			res[i] = d[i]
			if off, ok := given[p.tp]; ok {
				res[i] = off
			}
		}
		return res, nil
	case spec.OffsetsCommitted:
		group := r.src.Spec.GroupID
		committed, err := r.adm.FetchOffsets(ctx, group)
		if err != nil {
			return nil, fmt.Errorf("fetch the offsets of group %q: %w", group, err)
		}
		var missing []int
		for i, p := range parts {
			c, ok := committed.Lookup(p.tp.Topic, p.tp.Partition)
			if ok && c.Err == nil && c.At >= 0 {
				out[i] = c.At
			} else {
				missing = append(missing, i)
			}
		}
		if len(missing) == 0 {
			return out, nil
		}
		var fallback []int64
		switch o.CommittedReset {
		case "none":
			return nil, fmt.Errorf("group %q has no committed offset for %s (committedReset is none)", group, parts[missing[0]].tp)
		case "latest":
			fallback, err = latest()
		default:
			if stopping {
				fallback, err = latest()
			} else {
				fallback, err = earliest()
			}
		}
		if err != nil {
			return nil, err
		}
		res := append([]int64(nil), out...)
		for _, i := range missing {
			res[i] = fallback[i]
		}
		return res, nil
	}
	return nil, fmt.Errorf("unknown offsets mode %q", o.Mode)
}

// Read emits up to max records. It returns io.EOF once every partition of
// a bounded source has reached its stop offset.
func (r *kafkaReader) Read(ctx context.Context, max int, emit func(v any)) error {
	if err := r.start(ctx); err != nil {
		return err
	}
	n := 0
	for n == 0 {
		if r.discoverEvery > 0 && !time.Now().Before(r.nextDiscover) {
			if err := r.discover(ctx); err != nil && ctx.Err() == nil {
				slog.Warn("kafka source: partition discovery failed", "subtask", r.index, "err", err)
			}
			r.nextDiscover = time.Now().Add(r.discoverEvery)
		}
		if r.consumer == nil || r.allDone() {
			if r.src.Bounded() {
				return io.EOF
			}
			// An unbounded source with no partitions here waits for
			// discovery, like a Flink reader without splits (set
			// idleness so it does not hold the watermark back).
			var wake <-chan time.Time
			var t *time.Timer
			if r.discoverEvery > 0 {
				t = time.NewTimer(time.Until(r.nextDiscover))
				wake = t.C
			}
			select {
			case <-ctx.Done():
			case <-wake:
			}
			if t != nil {
				t.Stop()
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue
		}
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if r.discoverEvery > 0 {
			pctx, cancel = context.WithDeadline(ctx, r.nextDiscover)
		}
		fetches := r.consumer.PollRecords(pctx, max)
		cancel()
		if ctx.Err() != nil && fetches.NumRecords() == 0 {
			return ctx.Err()
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			if ferr == nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				ferr = fmt.Errorf("kafka fetch %s/%d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		now := time.Now()
		var finished map[string][]int32
		var rerr error
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			ps := r.byTP[topicPartition{fp.Topic, fp.Partition}]
			if ps == nil || ps.done || rerr != nil {
				return
			}
			end := fp.HighWatermark
			if r.readCommitted() && fp.LastStableOffset >= 0 {
				end = fp.LastStableOffset
			}
			ps.pubEnd.Store(end)
			defer func() { ps.pubNext.Store(ps.next) }()
			// The other partitions do not change while this one's records
			// are emitted: their part of the watermark is taken once.
			others := r.othersWatermark(ps, now)
			for _, rec := range fp.Records {
				if rec.Offset < ps.next {
					continue
				}
				if ps.stop >= 0 && rec.Offset >= ps.stop {
					break
				}
				ps.next = rec.Offset + 1
				if rec.Attrs.IsControl() {
					continue // a transaction marker: it only moves the offset
				}
				ts := rec.Timestamp.UnixMilli()
				v, err := r.decode(rec, ps, ts)
				if err != nil {
					if !r.src.Malformed {
						rerr = err
						return
					}
					// Its offset is read like any other's (ps.next), so a
					// restore neither repeats nor loses it; the partition
					// did produce a record, so it is not idle.
					ps.lastActive = now
					emit(&Malformed{Err: err.Error(), Raw: rec.Value, Location: kafkaLocation(rec)})
					n++
					continue
				}
				if ts > ps.maxTs {
					ps.maxTs = ts
				}
				ps.lastActive = now
				// This partition is active: it just produced a record.
				if wm := min(others, r.partWatermark(ps)); wm > r.wm {
					r.wm = wm
				}
				r.ts.Value, r.ts.Ts, r.ts.Watermark = v, ts, r.wm
				r.last = rec
				emit(&r.ts)
				n++
			}
			if ps.stop >= 0 && ps.next >= ps.stop {
				ps.done = true
				if finished == nil {
					finished = map[string][]int32{}
				}
				finished[fp.Topic] = append(finished[fp.Topic], fp.Partition)
			}
		})
		if rerr != nil {
			return rerr
		}
		if finished != nil {
			r.consumer.PauseFetchPartitions(finished)
		}
		if r.allDone() {
			return io.EOF
		}
	}
	return nil
}

// kafkaLocation is a record's location in a malformed record.
func kafkaLocation(rec *kgo.Record) string {
	return rec.Topic + "/" + strconv.Itoa(int(rec.Partition)) + "@" + strconv.FormatInt(rec.Offset, 10)
}

// Locate says where the record emitted last came from (Locator): its
// value and location.
func (r *kafkaReader) Locate() ([]byte, string) {
	if r.last == nil {
		return nil, ""
	}
	return r.last.Value, kafkaLocation(r.last)
}

func (r *kafkaReader) allDone() bool {
	for _, p := range r.parts {
		if !p.done {
			return false
		}
	}
	return true
}

// The reader's watermark after a record is the minimum of the partitions'
// watermarks (largest timestamp - bound - 1) over the partitions that are
// neither finished nor idle, as Flink's per-split watermark multiplexer
// computes it, and it never goes back: Read takes the minimum of the
// record's partition's (partWatermark) and the others' (othersWatermark).

// partWatermark is one partition's watermark.
func (r *kafkaReader) partWatermark(p *partState) int64 {
	if p.maxTs != math.MinInt64 && p.maxTs > math.MinInt64+r.src.WatermarkBound+1 {
		return p.maxTs - r.src.WatermarkBound - 1
	}
	return value.MinWatermark
}

// othersWatermark is the minimum watermark of the partitions other than
// skip that are neither finished nor idle at now (MaxInt64 when none is).
func (r *kafkaReader) othersWatermark(skip *partState, now time.Time) int64 {
	wm := int64(math.MaxInt64)
	for _, p := range r.parts {
		if p == skip || p.done || (r.src.Idleness > 0 && now.Sub(p.lastActive) >= r.src.Idleness) {
			continue
		}
		wm = min(wm, r.partWatermark(p))
	}
	return wm
}

// decode turns a Kafka record into the value the job sees: a map, or the
// equal row when the reader makes rows.
// ps is the record's partition and ts its timestamp in milliseconds.
func (r *kafkaReader) decode(rec *kgo.Record, ps *partState, ts int64) (any, error) {
	k := &r.src.Spec
	key, err := decodeKafka(rec.Key, k.KeyFormat)
	if err != nil {
		return nil, fmt.Errorf("kafka %s/%d offset %d: key: %w", rec.Topic, rec.Partition, rec.Offset, err)
	}
	val, err := decodeKafka(rec.Value, k.Format)
	if err != nil {
		return nil, fmt.Errorf("kafka %s/%d offset %d: value: %w", rec.Topic, rec.Partition, rec.Offset, err)
	}
	headers := make(map[string]any, len(rec.Headers))
	for _, h := range rec.Headers {
		if utf8.Valid(h.Value) {
			headers[h.Key] = string(h.Value)
		} else {
			headers[h.Key] = append([]byte(nil), h.Value...)
		}
	}
	if !r.hasTsBox || r.tsBoxed != ts {
		r.tsBox, r.tsBoxed, r.hasTsBox = ts, ts, true
	}
	if r.rows {
		row := value.NewRow(kafkaRecordSchema)
		f := row.Values()
		f[kafkaKeyField], f[kafkaValueField], f[kafkaTopicField] = key, val, ps.topicBox
		f[kafkaPartitionField], f[kafkaOffsetField] = ps.partitionBox, rec.Offset
		f[kafkaTimestampField], f[kafkaHeadersField] = r.tsBox, headers
		return row, nil
	}
	return map[string]any{
		"key":       key,
		"value":     val,
		"topic":     ps.topicBox,
		"partition": ps.partitionBox,
		"offset":    rec.Offset,
		"timestamp": r.tsBox,
		"headers":   headers,
	}, nil
}

// kafkaRecordSchema is the fields of a record the source emits as a row
// (the map's keys), and kafka*Field their positions in it.
var (
	kafkaRecordSchema   = value.MustSchemaOf("key", "value", "topic", "partition", "offset", "timestamp", "headers")
	kafkaKeyField       = kafkaRecordSchema.Index("key")
	kafkaValueField     = kafkaRecordSchema.Index("value")
	kafkaTopicField     = kafkaRecordSchema.Index("topic")
	kafkaPartitionField = kafkaRecordSchema.Index("partition")
	kafkaOffsetField    = kafkaRecordSchema.Index("offset")
	kafkaTimestampField = kafkaRecordSchema.Index("timestamp")
	kafkaHeadersField   = kafkaRecordSchema.Index("headers")
)

// decodeKafka decodes a key or value; a missing one (nil) is null.
func decodeKafka(b []byte, f spec.KafkaFormat) (any, error) {
	if b == nil {
		return nil, nil
	}
	switch f {
	case spec.KafkaJSON:
		return value.FromJSON(b)
	case spec.KafkaBytes:
		return append([]byte(nil), b...), nil
	default:
		return string(b), nil
	}
}

// CheckpointComplete commits the offsets of the completed checkpoint to
// the consumer group (with groupId, unless commit.offsets.on.checkpoint is
// false), as Flink's KafkaSource does: for monitoring, and for a job started
// fresh from committed offsets. The restore itself uses the checkpoint.
//
// The task takes the position of checkpoint id with PositionFor(id), so
// the reader commits exactly the offsets stored in checkpoint id, however
// notifications arrive: one replacing another (a subtask told of 5 only
// commits 5's offsets, which cover 4's) or an abandoned checkpoint's
// position left behind (dropped once a later one completes). Positions of
// checkpoints up to id are dropped; a completion for a checkpoint this
// reader took no position for commits nothing, so the group never gets
// ahead of a completed checkpoint.
func (r *kafkaReader) CheckpointComplete(ctx context.Context, id int64) error {
	k := &r.src.Spec
	if k.GroupID == "" || k.Properties["commit.offsets.on.checkpoint"] == "false" {
		return nil
	}
	r.mu.Lock()
	var pos []kafkaPos
	n := 0
	for _, p := range r.pending {
		if p.id == id {
			pos = p.pos
		}
		if p.id > id {
			r.pending[n] = p
			n++
		}
	}
	r.pending = r.pending[:n]
	r.mu.Unlock()
	if pos == nil {
		return nil
	}
	offs := kadm.Offsets{}
	for _, p := range pos {
		offs.Add(kadm.Offset{Topic: p.Topic, Partition: p.Partition, At: p.Next, LeaderEpoch: -1})
	}
	if len(offs) == 0 {
		return nil
	}
	resp, err := r.adm.CommitOffsets(ctx, k.GroupID, offs)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("kafka: commit offsets of checkpoint %d to group %q: %w", id, k.GroupID, err)
	}
	slog.Debug("kafka offsets committed", "group", k.GroupID, "checkpoint", id, "partitions", len(offs))
	return nil
}

// Close releases the clients.
func (r *kafkaReader) Close() error {
	r.src.removeReader(r)
	if r.consumer != nil {
		r.consumer.Close()
	}
	r.admin.Close()
	return nil
}
