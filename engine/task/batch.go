package task

import (
	"context"
	"fmt"
	"io"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/extsort"
	"github.com/flinkjob/flinkjob/engine/operator"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/shuffle"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// partWriter is one materialized partition: sorted through an external
// sorter when the consumer is keyed, else streamed straight to the store.
type partWriter struct {
	sorter *extsort.Sorter
	wc     io.WriteCloser
	rw     *value.RecordWriter
}

type batchEdge struct {
	edge  *plan.Edge
	part  *shuffle.Partitioner
	parts []*partWriter
}

type batchOutputs struct {
	ctx     context.Context
	c       *Config
	store   shuffle.Store
	main    []*batchEdge
	side    map[string][]*batchEdge
	all     []*batchEdge
	records int64
	bytes   int64
}

func newBatchOutputs(ctx context.Context, c *Config, store shuffle.Store) (*batchOutputs, error) {
	o := &batchOutputs{ctx: ctx, c: c, store: store, side: map[string][]*batchEdge{}}
	nparts := 0
	for _, e := range c.Stage.Outputs {
		nparts += e.To.Parallelism
	}
	budget := c.SortMemory / int64(max(nparts, 1))
	if budget < 1<<20 {
		budget = 1 << 20
	}
	for _, e := range c.Stage.Outputs {
		be := &batchEdge{edge: e, part: shuffle.NewPartitioner(e, c.Index)}
		for p := 0; p < e.To.Parallelism; p++ {
			pw := &partWriter{}
			if e.Partitioning == spec.Hash {
				pw.sorter = extsort.New(extsort.Options{MemoryBudget: budget, TempDir: c.TempDir})
			} else {
				wc, err := store.Create(ctx, e.ID, p, c.Index)
				if err != nil {
					o.abort()
					return nil, err
				}
				pw.wc, pw.rw = wc, value.NewRecordWriter(wc)
			}
			be.parts = append(be.parts, pw)
		}
		o.all = append(o.all, be)
		if e.Output == "" && e.FromNode == c.Stage.Tail() {
			o.main = append(o.main, be)
		} else {
			k := e.FromNode.Name + "/" + e.Output
			o.side[k] = append(o.side[k], be)
		}
	}
	return o, nil
}

func (pw *partWriter) write(r *value.Record) error {
	if pw.sorter != nil {
		return pw.sorter.Add(r)
	}
	return pw.rw.Write(r)
}

func (be *batchEdge) collect(r *value.Record) error {
	rec := value.Record{Value: r.Value, Ts: r.Ts}
	t, err := be.part.Route(&rec)
	if err != nil {
		return err
	}
	if t == shuffle.All {
		for _, pw := range be.parts {
			if err := pw.write(&rec); err != nil {
				return err
			}
		}
		return nil
	}
	return be.parts[t].write(&rec)
}

type batchCollector []*batchEdge

func (bc batchCollector) Collect(r *value.Record) error {
	for _, be := range bc {
		if err := be.collect(r); err != nil {
			return err
		}
	}
	return nil
}

// Watermarks are not materialized: the consumer sees MaxWatermark at its end.
func (batchCollector) Watermark(int64) error { return nil }

// ReleasesValues: every edge encodes a record (into its sort buffer or its
// partition file) before Collect returns (connector.ValueReleaser).
func (batchCollector) ReleasesValues() bool { return true }

var (
	_ connector.ValueReleaser = batchCollector(nil)
	_ connector.ValueReleaser = (*countingCollector)(nil)
)

func (o *batchOutputs) sideCollector(step, name string) operator.Collector {
	if es := o.side[step+"/"+name]; len(es) > 0 {
		return batchCollector(es)
	}
	return &operator.Discard{}
}

// close writes sorted partitions out and makes every partition visible.
func (o *batchOutputs) close() error {
	for _, be := range o.all {
		for p, pw := range be.parts {
			if pw.sorter != nil {
				it, err := pw.sorter.Finish()
				if err != nil {
					return err
				}
				wc, err := o.store.Create(o.ctx, be.edge.ID, p, o.c.Index)
				if err != nil {
					it.Close()
					return err
				}
				pw.wc, pw.rw = wc, value.NewRecordWriter(wc)
				// The sorted records are forwarded as encoded, never decoded.
				enc := extsort.Encoded(it)
				for {
					body, ok, err := enc.NextEncoded()
					if err != nil {
						it.Close()
						return err
					}
					if !ok {
						break
					}
					if err := pw.rw.WriteEncoded(body); err != nil {
						it.Close()
						return err
					}
				}
				it.Close()
				pw.sorter = nil
			}
			if err := pw.rw.Flush(); err != nil {
				return err
			}
			if err := pw.wc.Close(); err != nil {
				return err
			}
			o.records += pw.rw.Records()
			o.bytes += pw.rw.Bytes()
			pw.wc = nil
		}
	}
	return nil
}

func (o *batchOutputs) abort() {
	for _, be := range o.all {
		for _, pw := range be.parts {
			if pw.sorter != nil {
				pw.sorter.Close()
			}
			// An unfinished partition must not become visible: abort its
			// upload (S3) or temp file instead of committing it.
			if a, ok := pw.wc.(interface{ Abort() }); ok {
				a.Abort()
			}
		}
	}
}

// RunBatch runs the subtask in BATCH mode: it reads its inputs from store,
// runs the chain and writes its partitioned output and manifest to store.
func RunBatch(ctx context.Context, c Config, store shuffle.Store) (shuffle.Manifest, error) {
	c.defaults()
	m := shuffle.Manifest{Stage: c.Stage.ID, Subtask: c.Index, Attempt: c.Attempt}
	chain, err := operator.NewChain(c.Stage, c.Plan.Mode, c.Sinks)
	if err != nil {
		return m, err
	}
	outs, err := newBatchOutputs(ctx, &c, store)
	if err != nil {
		return m, err
	}
	ok := false
	defer func() {
		if !ok {
			outs.abort()
		}
	}()
	octx := c.opContext(ctx, outs.sideCollector)
	var late int64
	octx.LateDropped = &late
	defer chain.Close()
	counted := &countingCollector{next: batchCollector(outs.main), n: &c.Counters.RecordsOut}
	defer counted.sync()
	if err := chain.Open(octx, counted); err != nil {
		return m, err
	}
	if chain.Source != nil {
		if err := readSource(ctx, &c, nil, chain, func() error { return nil }, func(bool) error { return nil }, nil); err != nil {
			return m, err
		}
	} else {
		var sk *savingKeyed
		if c.FinalSavepoint != nil && chain.Keyed != nil {
			sk = &savingKeyed{Keyed: chain.Keyed}
			chain.Keyed = sk
		}
		if err := feedBatchInputs(ctx, &c, chain, store); err != nil {
			return m, err
		}
		if sk != nil {
			if err := writeFinalState(ctx, &c, chain, sk, c.FinalSavepoint); err != nil {
				return m, err
			}
		}
	}
	if err := chain.Head().Watermark(value.MaxWatermark); err != nil {
		return m, err
	}
	if err := chain.Finish(); err != nil {
		return m, err
	}
	if err := outs.close(); err != nil {
		return m, err
	}
	m.Records, m.Bytes, m.RecordsIn = outs.records, outs.bytes, c.Counters.RecordsIn.Load()
	if err := store.Commit(ctx, c.Stage.ID, c.Index, m); err != nil {
		return m, err
	}
	ok = true
	return m, nil
}

// edgeIterator merges the partitions of every producer of one edge.
func edgeIterator(ctx context.Context, c *Config, e *plan.Edge, store shuffle.Store) (extsort.Iterator, error) {
	var its []extsort.Iterator
	for j := 0; j < e.From.Parallelism; j++ {
		if _, err := store.Manifest(ctx, e.From.ID, j); err != nil {
			closeAll(its)
			return nil, fmt.Errorf("%s: input from stage %d subtask %d is not complete: %w", c.name(), e.From.ID, j, err)
		}
		rc, err := store.Open(ctx, e.ID, c.Index, j)
		if err != nil {
			closeAll(its)
			return nil, err
		}
		its = append(its, extsort.NewReaderIterator(value.NewRecordReader(rc), rc))
	}
	if len(its) == 1 {
		return its[0], nil
	}
	if e.Partitioning == spec.Hash {
		return extsort.Merge(its), nil
	}
	return &concat{its: its}, nil
}

func closeAll(its []extsort.Iterator) {
	for _, it := range its {
		it.Close()
	}
}

// concat reads iterators one after another (unkeyed inputs need no merge).
type concat struct{ its []extsort.Iterator }

func (c *concat) Next(r *value.Record) (bool, error) {
	for len(c.its) > 0 {
		ok, err := c.its[0].Next(r)
		if err != nil || ok {
			return ok, err
		}
		c.its[0].Close()
		c.its = c.its[1:]
	}
	return false, nil
}

func (c *concat) Close() error {
	closeAll(c.its)
	c.its = nil
	return nil
}

// feedBatchInputs consumes the inputs in Flink's BATCH order: broadcast
// inputs first, then regular ones, then keyed inputs merged by key so that
// all inputs of one key arrive before the next key; the keyed head ends
// each key (timers fire, finals are emitted, state is dropped).
func feedBatchInputs(ctx context.Context, c *Config, chain *operator.Chain, store shuffle.Store) error {
	head := chain.Head()
	var keyed []*plan.Edge
	for _, pass := range []func(spec.Partitioning) bool{
		func(p spec.Partitioning) bool { return p == spec.Broadcast },
		func(p spec.Partitioning) bool { return p == spec.Forward || p == spec.Rebalance },
	} {
		for _, e := range c.Stage.Inputs {
			if !pass(e.Partitioning) {
				continue
			}
			it, err := edgeIterator(ctx, c, e, store)
			if err != nil {
				return err
			}
			var rec value.Record
			var n int64
			for {
				ok, err := it.Next(&rec)
				if err != nil {
					it.Close()
					c.Counters.RecordsIn.Add(n)
					return err
				}
				if !ok {
					break
				}
				if n++; n == 1024 {
					c.Counters.RecordsIn.Add(n)
					n = 0
				}
				if err := head.Process(&rec, e.InputIndex); err != nil {
					it.Close()
					c.Counters.RecordsIn.Add(n)
					return err
				}
			}
			c.Counters.RecordsIn.Add(n)
			it.Close()
		}
	}
	for _, e := range c.Stage.Inputs {
		if e.Partitioning == spec.Hash {
			keyed = append(keyed, e)
		}
	}
	if len(keyed) == 0 {
		return nil
	}
	its := make([]extsort.Iterator, len(keyed))
	heads := make([]value.Record, len(keyed))
	live := make([]bool, len(keyed))
	defer closeAll(its)
	for i, e := range keyed {
		it, err := edgeIterator(ctx, c, e, store)
		if err != nil {
			return err
		}
		its[i] = it
		if live[i], err = it.Next(&heads[i]); err != nil {
			return err
		}
	}
	curKey, started, n := "", false, 0
	for {
		best := -1
		for i := range keyed {
			if live[i] && (best < 0 || heads[i].KeyID < heads[best].KeyID) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		// The head gets the merge's record itself (it is read over only
		// after Process returns, and operators keep no *Record).
		r := &heads[best]
		if started && r.KeyID != curKey && chain.Keyed != nil {
			if err := chain.Keyed.EndKey(); err != nil {
				return err
			}
		}
		curKey, started = r.KeyID, true
		if err := head.Process(r, keyed[best].InputIndex); err != nil {
			c.Counters.RecordsIn.Add(int64(n%1024 + 1))
			return err
		}
		var err error
		if live[best], err = its[best].Next(&heads[best]); err != nil {
			c.Counters.RecordsIn.Add(int64(n%1024 + 1))
			return err
		}
		if n++; n%1024 == 0 {
			c.Counters.RecordsIn.Add(1024)
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	c.Counters.RecordsIn.Add(int64(n % 1024))
	if started && chain.Keyed != nil {
		return chain.Keyed.EndKey()
	}
	return nil
}
