package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/flinkjob/flinkjob/engine/expr"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// KafkaSink writes records to Kafka. Its writers implement Transactional:
//
//   - none: records are sent asynchronously; nothing waits for them;
//   - at-least-once: PreCommit (at every checkpoint barrier) and Close wait
//     until every record sent is acknowledged, so a completed checkpoint
//     never covers a record Kafka does not have;
//   - exactly-once: records go into a Kafka transaction; PreCommit flushes
//     it and hands its transactional id, producer id and epoch to the
//     checkpoint; Commit (checkpoint complete) commits it; Recover commits
//     the transactions a restored checkpoint holds and aborts whatever a
//     failed attempt left open after it. Readers must use
//     isolation.level read_committed.
//
// Transactions are named <transactionalIdPrefix>-<subtask>-<n>, n counting
// the subtask's transactions from 0 and stored in every checkpoint, so a
// restore knows which names a failed attempt may have left open: every
// name from the restored n on, up to the first one Kafka has never seen.
// This is Flink's KafkaSink scheme (which counts checkpoints instead).
// Flink resumes a pre-committed transaction after a restart by setting a
// new producer's id and epoch through reflection; franz-go needs no such
// trick: Recover sends EndTxn for the stored id and epoch itself.
//
// Deviations from Flink, by design of this engine:
//   - at the end of a bounded input Close commits the last transaction
//     itself (the job's Finisher runs in another process on Kubernetes and
//     has no producer to commit with); Flink takes a final checkpoint
//     first. A failure after one subtask's Close and before the job ends
//     replays that subtask's records since the last checkpoint.
//   - in BATCH a failed subtask is re-run from its input: its open
//     transaction is aborted (by Abort, or fenced when the re-run starts),
//     so its output appears once, unless it failed after Close committed.
//   - a transaction Kafka aborted before Recover could commit it (the
//     outage outlasted transactionTimeout) is logged as lost, not fatal,
//     as Flink's KafkaCommitter does.
type KafkaSink struct {
	Spec  spec.KafkaSink
	exprs *plan.KafkaSinkExprs
}

// NewKafkaSink compiles the sink's expressions.
func NewKafkaSink(k spec.KafkaSink) (*KafkaSink, error) {
	x, err := plan.CompileKafkaSink("sink.kafka", "", &k)
	if err != nil {
		return nil, err
	}
	return &KafkaSink{Spec: k, exprs: x}, nil
}

func (s *KafkaSink) guarantee() string {
	if s.Spec.DeliveryGuarantee == "" {
		return spec.DeliveryAtLeastOnce
	}
	return s.Spec.DeliveryGuarantee
}

func (s *KafkaSink) txnTimeout() time.Duration {
	if d, err := s.Spec.TransactionTimeout.Get(); err == nil && d > 0 {
		return d
	}
	return 15 * time.Minute
}

// Open starts the writer of one subtask.
func (s *KafkaSink) Open(ctx context.Context, index, parallelism int) (Writer, error) {
	k := &s.Spec
	base, err := kafkaClientOpts(k.BootstrapServers, k.Security, k.Properties["client.id"])
	if err != nil {
		return nil, err
	}
	admin, err := kgo.NewClient(base...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	opts := append([]kgo.Opt{}, base...)
	props := k.Properties
	switch props["acks"] {
	case "1":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	case "0":
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	}
	if d, ok := propMillis(props, "linger.ms"); ok {
		opts = append(opts, kgo.ProducerLinger(d))
	}
	switch props["compression.type"] {
	case "none":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.NoCompression()))
	case "gzip":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.GzipCompression()))
	case "snappy":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.SnappyCompression()))
	case "lz4":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	case "zstd":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	}
	if n, ok := propInt(props, "max.request.size"); ok {
		opts = append(opts, kgo.ProducerBatchMaxBytes(int32(n)))
	}
	if n, ok := propInt(props, "buffer.memory.records"); ok {
		opts = append(opts, kgo.MaxBufferedRecords(n))
	}
	if d, ok := propMillis(props, "request.timeout.ms"); ok {
		opts = append(opts, kgo.ProduceRequestTimeout(d))
	}
	w := &kafkaWriter{sink: s, index: index, opts: opts, admin: admin, exactly: s.guarantee() == spec.DeliveryExactlyOnce}
	x := s.exprs
	w.topic = evaluator(x.Topic)
	w.key = evaluator(x.Key)
	w.value = evaluator(x.Value)
	for name, p := range x.Headers {
		w.headers = append(w.headers, kafkaHeaderEval{name, p.Evaluator()})
	}
	sort.Slice(w.headers, func(i, j int) bool { return w.headers[i].name < w.headers[j].name })
	if !w.exactly {
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			admin.Close()
			return nil, fmt.Errorf("kafka: %w", err)
		}
		w.cl = cl
	}
	w.promise = func(_ *kgo.Record, err error) {
		if err != nil {
			w.errMu.Lock()
			if w.err == nil {
				w.err = err
			}
			w.errMu.Unlock()
		}
	}
	return w, nil
}

func evaluator(p *expr.Program) *expr.Evaluator {
	if p == nil {
		return nil
	}
	return p.Evaluator()
}

type kafkaHeaderEval struct {
	name string
	ev   *expr.Evaluator
}

type kafkaWriter struct {
	sink    *KafkaSink
	index   int
	opts    []kgo.Opt
	admin   *kgo.Client // for EndTxn / InitProducerID requests
	exactly bool

	topic, key, value *expr.Evaluator
	headers           []kafkaHeaderEval

	cl      *kgo.Client // the producer (none, at-least-once)
	promise func(*kgo.Record, error)
	errMu   sync.Mutex
	err     error // the first failed send

	// exactly-once
	txn     *kafkaTxn   // the open transaction, nil until a record needs one
	pending []*kafkaTxn // pre-committed, not yet committed, oldest first
	next    int64       // the number of the next transaction
	ready   bool        // transactions a failed attempt left open are aborted
}

// kafkaTxn is one transaction, as stored in checkpoints.
type kafkaTxn struct {
	ID         string `json:"id"`
	ProducerID int64  `json:"pid"`
	Epoch      int16  `json:"epoch"`
	Checkpoint int64  `json:"checkpoint"`
	cl         *kgo.Client
}

// kafkaSinkState is what PreCommit returns: the transactions to commit
// and the number of the next one.
type kafkaSinkState struct {
	Next int64       `json:"next"`
	Txns []*kafkaTxn `json:"txns,omitempty"`
}

func (w *kafkaWriter) txnName(n int64) string {
	return fmt.Sprintf("%s-%d-%d", w.sink.Spec.TransactionalIDPrefix, w.index, n)
}

func (w *kafkaWriter) sendErr() error {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	if w.err != nil {
		return fmt.Errorf("kafka: send: %w", w.err)
	}
	return nil
}

// Write sends one record (asynchronously; errors surface at the next Write,
// PreCommit or Close).
func (w *kafkaWriter) Write(r *value.Record) error {
	if err := w.sendErr(); err != nil {
		return err
	}
	rec, err := w.record(r)
	if err != nil {
		return err
	}
	cl := w.cl
	if w.exactly {
		if err := w.begin(context.Background()); err != nil {
			return err
		}
		cl = w.txn.cl
	}
	cl.Produce(context.Background(), rec, w.promise)
	return nil
}

// record builds the Kafka record of r from the sink's expressions.
func (w *kafkaWriter) record(r *value.Record) (*kgo.Record, error) {
	k := &w.sink.Spec
	rec := &kgo.Record{Topic: k.Topic}
	if r.Ts != value.NoTimestamp {
		rec.Timestamp = time.UnixMilli(r.Ts)
	}
	if w.topic != nil {
		v, err := w.topic.Eval1(r.Value)
		if err != nil {
			return nil, fmt.Errorf("sink.kafka.topicExpression: %w", err)
		}
		t, ok := v.(string)
		if !ok || t == "" {
			return nil, fmt.Errorf("sink.kafka.topicExpression: gives %s %s, want a topic name", value.TypeName(v), value.ToJSON(v))
		}
		rec.Topic = t
	}
	if w.key != nil {
		v, err := w.key.Eval1(r.Value)
		if err != nil {
			return nil, fmt.Errorf("sink.kafka.key: %w", err)
		}
		kf := k.KeyFormat
		if kf == "" {
			kf = k.Format
		}
		if rec.Key, err = encodeKafka(v, kf); err != nil {
			return nil, fmt.Errorf("sink.kafka.key: %w", err)
		}
	}
	v := r.Value
	if w.value != nil {
		var err error
		if v, err = w.value.Eval1(r.Value); err != nil {
			return nil, fmt.Errorf("sink.kafka.value: %w", err)
		}
	}
	var err error
	if rec.Value, err = encodeKafka(v, k.Format); err != nil {
		return nil, fmt.Errorf("sink.kafka.value: %w", err)
	}
	for _, h := range w.headers {
		v, err := h.ev.Eval1(r.Value)
		if err != nil {
			return nil, fmt.Errorf("sink.kafka.headers[%q]: %w", h.name, err)
		}
		if v == nil {
			continue
		}
		var b []byte
		switch x := v.(type) {
		case string:
			b = []byte(x)
		case []byte:
			b = x
		default:
			b = value.AppendJSON(nil, v)
		}
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: h.name, Value: b})
	}
	return rec, nil
}

func encodeKafka(v any, f spec.KafkaFormat) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	switch f {
	case spec.KafkaString:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("format string needs a string, got %s", value.TypeName(v))
		}
		return []byte(s), nil
	case spec.KafkaBytes:
		switch x := v.(type) {
		case []byte:
			return x, nil
		case string:
			return []byte(x), nil
		}
		return nil, fmt.Errorf("format bytes needs bytes or a string, got %s", value.TypeName(v))
	}
	return value.AppendJSON(nil, v), nil
}

// begin opens a transaction if none is open.
func (w *kafkaWriter) begin(ctx context.Context) error {
	if w.txn != nil {
		return nil
	}
	if err := w.abortLingering(ctx); err != nil {
		return err
	}
	name := w.txnName(w.next)
	opts := append([]kgo.Opt{}, w.opts...)
	opts = append(opts, kgo.TransactionalID(name), kgo.TransactionTimeout(w.sink.txnTimeout()))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	if err := cl.BeginTransaction(); err != nil {
		cl.Close()
		return fmt.Errorf("kafka: begin transaction %s: %w", name, err)
	}
	w.txn = &kafkaTxn{ID: name, cl: cl}
	w.next++
	return nil
}

// abortLingering aborts the transactions an earlier attempt of this
// subtask may have left open: those numbered from w.next on. Each name is
// initialized (which fences an old producer and aborts its open
// transaction) until one Kafka had never seen (epoch 0).
func (w *kafkaWriter) abortLingering(ctx context.Context) error {
	if w.ready {
		return nil
	}
	timeout := int32(w.sink.txnTimeout().Milliseconds())
	aborted := 0
	for n := w.next; n < w.next+100000; n++ {
		req := kmsg.NewPtrInitProducerIDRequest()
		name := w.txnName(n)
		req.TransactionalID = &name
		req.TransactionTimeoutMillis = timeout
		req.ProducerID, req.ProducerEpoch = -1, -1
		resp, err := req.RequestWith(ctx, w.admin)
		if err == nil {
			err = kerr.ErrorForCode(resp.ErrorCode)
		}
		if err != nil {
			return fmt.Errorf("kafka: abort lingering transaction %s: %w", name, err)
		}
		if resp.ProducerEpoch == 0 {
			break
		}
		aborted++
	}
	if aborted > 0 {
		slog.Info("kafka sink: fenced the transactional ids an earlier attempt used (aborting what it left open)", "prefix", w.sink.Spec.TransactionalIDPrefix, "subtask", w.index, "from", w.next, "count", aborted)
	}
	w.ready = true
	return nil
}

// PreCommit flushes what was sent. With exactly-once it closes the open
// transaction's writes and returns every transaction not yet committed.
func (w *kafkaWriter) PreCommit(ctx context.Context, id int64) ([]byte, error) {
	if !w.exactly {
		if w.sink.guarantee() == spec.DeliveryAtLeastOnce {
			if err := w.cl.Flush(ctx); err != nil {
				return nil, fmt.Errorf("kafka: flush: %w", err)
			}
		}
		return nil, w.sendErr()
	}
	if err := w.abortLingering(ctx); err != nil {
		return nil, err
	}
	if t := w.txn; t != nil {
		if err := t.cl.Flush(ctx); err != nil {
			return nil, fmt.Errorf("kafka: flush transaction %s: %w", t.ID, err)
		}
		if err := w.sendErr(); err != nil {
			return nil, err
		}
		pid, epoch, err := t.cl.ProducerID(ctx)
		if err != nil {
			return nil, fmt.Errorf("kafka: transaction %s: %w", t.ID, err)
		}
		t.ProducerID, t.Epoch, t.Checkpoint = pid, epoch, id
		w.pending = append(w.pending, t)
		w.txn = nil
	}
	return json.Marshal(kafkaSinkState{Next: w.next, Txns: w.pending})
}

// Commit commits the transactions pre-committed up to checkpoint id.
func (w *kafkaWriter) Commit(ctx context.Context, id int64) error {
	for len(w.pending) > 0 && w.pending[0].Checkpoint <= id {
		t := w.pending[0]
		if err := w.commitTxn(ctx, t); err != nil {
			return err
		}
		w.pending = w.pending[1:]
	}
	return nil
}

func (w *kafkaWriter) commitTxn(ctx context.Context, t *kafkaTxn) error {
	if t.cl == nil {
		return w.endTxn(ctx, t, true)
	}
	if err := t.cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return fmt.Errorf("kafka: commit transaction %s: %w", t.ID, err)
	}
	t.cl.Close()
	t.cl = nil
	return nil
}

// endTxn ends a transaction of another producer instance (an earlier
// attempt) by its producer id and epoch.
func (w *kafkaWriter) endTxn(ctx context.Context, t *kafkaTxn, commit bool) error {
	req := kmsg.NewPtrEndTxnRequest()
	req.TransactionalID = t.ID
	req.ProducerID = t.ProducerID
	req.ProducerEpoch = t.Epoch
	req.Commit = commit
	resp, err := req.RequestWith(ctx, w.admin)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		return fmt.Errorf("kafka: end transaction %s (producer %d epoch %d, commit %v): %w", t.ID, t.ProducerID, t.Epoch, commit, err)
	}
	return nil
}

// Recover commits the transactions of a restored checkpoint (again, if an
// earlier attempt did already) and makes the writer continue numbering
// after them; transactions a failed attempt opened later are aborted
// before the first new one begins.
func (w *kafkaWriter) Recover(ctx context.Context, state []byte) error {
	if !w.exactly || len(state) == 0 {
		return nil
	}
	var st kafkaSinkState
	if err := json.Unmarshal(state, &st); err != nil {
		return fmt.Errorf("kafka: bad sink state: %w", err)
	}
	for _, t := range st.Txns {
		err := w.endTxn(ctx, t, true)
		if errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidTxnState) || errors.Is(err, kerr.InvalidProducerIDMapping) || errors.Is(err, kerr.InvalidProducerEpoch) {
			// Kafka no longer has the transaction open: it timed out
			// (transactionTimeout shorter than the outage) or another
			// producer used the name. Its records are lost, as in
			// Flink's KafkaCommitter; failing would not bring them back.
			slog.Error("kafka sink: a checkpointed transaction could not be committed; its records are lost", "transaction", t.ID, "err", err)
			continue
		}
		if err != nil {
			return err
		}
	}
	w.next = st.Next
	w.ready = false
	return nil
}

// Close makes everything written visible: with exactly-once it commits
// the pending and the open transactions (the end of a bounded input).
func (w *kafkaWriter) Close() error {
	defer w.closeAdmin()
	ctx := context.Background()
	if !w.exactly {
		// Every guarantee waits here: the end of the input must be visible.
		defer w.cl.Close()
		if err := w.cl.Flush(ctx); err != nil {
			return fmt.Errorf("kafka: flush: %w", err)
		}
		return w.sendErr()
	}
	if _, err := w.PreCommit(ctx, 1<<62); err != nil {
		w.Abort()
		return err
	}
	if err := w.Commit(ctx, 1<<62); err != nil {
		return err
	}
	return nil
}

func (w *kafkaWriter) closeAdmin() {
	if w.admin != nil {
		w.admin.Close()
		w.admin = nil
	}
}

// Abort drops what is not committed: the open transaction is aborted;
// pre-committed ones are left to Recover (a checkpoint may hold them).
func (w *kafkaWriter) Abort() {
	defer w.closeAdmin()
	if !w.exactly {
		if w.cl != nil {
			w.cl.Close()
			w.cl = nil
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if t := w.txn; t != nil {
		_ = t.cl.AbortBufferedRecords(ctx)
		_ = t.cl.EndTransaction(ctx, kgo.TryAbort)
		t.cl.Close()
		w.txn = nil
	}
	for _, t := range w.pending {
		if t.cl != nil {
			t.cl.Close()
		}
	}
	w.pending = nil
}
