package local_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/enginetest"
	"github.com/flinkjob/flinkjob/engine/expr"
	"github.com/flinkjob/flinkjob/engine/local"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/udf"
	"github.com/flinkjob/flinkjob/engine/value"
)

// Review tests of projection pushdown and object reuse: jobs over the
// nexmark source whose output is computed here independently, from whole
// events (NexmarkConfig.Event) evaluated with expr directly, so neither a
// field left out by the planner nor a value recycled while still held can
// go unnoticed. Each job runs into a sink that keeps its records (call:
// the collecting sink holds every value until the end, so a recycled and
// refilled value would show up changed), and into value-releasing sinks
// (jsonl files and print), chained or behind an exchange, in both modes.

const (
	reviewEvents = 2000
	reviewSeed   = 7
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// reviewReference evaluates filters then the map (if any) on every whole
// event, as the job should, and returns the sorted JSON lines.
func reviewReference(t *testing.T, filters []string, mapExpr string) []string {
	t.Helper()
	cfg := connector.NewNexmark(spec.Nexmark{Seed: reviewSeed}).Config
	var fs []*expr.Program
	for _, f := range filters {
		p, err := expr.Compile(f, expr.Bool, expr.Record)
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, p)
	}
	var mp *expr.Program
	if mapExpr != "" {
		var err error
		if mp, err = expr.Compile(mapExpr, expr.Any, expr.Record); err != nil {
			t.Fatal(err)
		}
	}
	var out []string
events:
	for n := int64(0); n < reviewEvents; n++ {
		e := cfg.Event(reviewSeed, n)
		for _, f := range fs {
			ok, err := f.EvalBool(e)
			if err != nil {
				t.Fatalf("reference: filter %q on event %d: %v", f.Source(), n, err)
			}
			if !ok {
				continue events
			}
		}
		var v any = e
		if mp != nil {
			var err error
			if v, err = mp.Eval1(e); err != nil {
				t.Fatalf("reference: map %q on event %d: %v", mapExpr, n, err)
			}
		}
		out = append(out, string(value.ToJSON(v)))
	}
	slices.Sort(out)
	return out
}

// reviewSinks are the sink variants a job's last step is run with.
var reviewSinks = []string{"call", "jsonl", "print"}

// runReview runs steps (after the nexmark source "src", before the sink
// "out") with the given sink, returning the sorted JSON lines.
func runReview(t *testing.T, steps []spec.Step, mode spec.RuntimeMode, sink string, par, sinkPar int32) []string {
	t.Helper()
	n := int64(reviewEvents)
	job := &spec.Job{RuntimeMode: mode, Parallelism: par}
	job.Steps = append(job.Steps, spec.Step{Name: "src", Source: &spec.Source{Nexmark: &spec.Nexmark{Events: &n, Seed: reviewSeed}}})
	job.Steps = append(job.Steps, steps...)
	out := spec.Step{Name: "out", Sink: &spec.Sink{}}
	if sinkPar != par {
		out.Parallelism = &sinkPar
	}
	dir := filepath.Join(t.TempDir(), "out")
	var buf syncBuffer
	switch sink {
	case "call":
		out.Sink.Call = "out"
	case "jsonl":
		out.Sink.Files = &spec.FileSink{Path: dir, Format: spec.FormatJSONL}
	case "print":
		out.Sink.Print = &spec.PrintSink{}
	}
	job.Steps = append(job.Steps, out)
	p, err := plan.New(job, plan.Options{Mode: mode})
	if err != nil {
		t.Fatal(err)
	}
	c := enginetest.NewCollect()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts := local.Options{BatchSize: 64, WorkDir: t.TempDir()}
	opts.Env.CallSink = c.Sink
	opts.Env.Stdout = &buf
	if err := local.Run(ctx, p, opts); err != nil {
		t.Fatalf("run: %v", err)
	}
	switch sink {
	case "call":
		return c.SortedJSON("out")
	case "jsonl":
		return readJSONLines(t, dir)
	}
	lines := strings.Split(strings.TrimSuffix(buf.b.String(), "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		lines = nil
	}
	slices.Sort(lines)
	return lines
}

type reviewCase struct {
	name    string
	filters []string
	mapExpr string
}

// reviewCases exercise what the planner reads of a record and what the
// map steps may recycle: field chains, whole-value uses (size, in,
// equality, iteration, dyn, optional access, shadowing macros), map
// literals whose entries hold or do not hold the input's containers, and
// conditionals between map literals and input parts.
var reviewCases = []reviewCase{
	{"filter-type", []string{"record.type == 'bid'"}, ""},
	{"filter-has", []string{"has(record.bid)", "record.bid.price > 1000000"}, ""},
	{"filter-in", []string{"'auction' in record"}, ""},
	{"filter-size", []string{"size(record) == 3", "record.type != 'bid'"}, ""},
	{"filter-all-keys", []string{"record.all(k, k != 'bid')"}, ""},
	{"filter-shadow", []string{"[record].exists(record, has(record.person))"}, ""},
	{"filter-optional", []string{"record.?bid.price.orValue(0) > 2000000"}, ""},
	{"filter-dyn", []string{"dyn(record).type == 'person'"}, ""},
	{"filter-index", []string{"record['type'] == 'bid'", "record['bid']['price'] % 7 == 0"}, ""},
	{"map-record", []string{"record.type == 'auction'"}, "record"},
	{"map-path", []string{"record.type == 'bid'"}, "record.bid"},
	{"map-path-deep", []string{"record.type == 'bid'"}, "record.bid.price"},
	{"map-path-nofilter", nil, "record.type"},
	{"map-fresh-scalars", []string{"record.type == 'bid'"}, "{'p': record.bid.price, 'a': record.bid.auction, 'c': record.bid.channel}"},
	{"map-fresh-holds-body", []string{"record.type == 'bid'"}, "{'b': record.bid, 'n': 1}"},
	{"map-fresh-list", []string{"record.type == 'bid'"}, "{'l': [record.bid], 'p': record.bid.price}"},
	{"map-fresh-nested", []string{"record.type == 'person'"}, "{'x': {'p': record.person}, 'id': record.person.id}"},
	{"map-iterate", []string{"record.type == 'bid'"}, "{'keys': record.bid.map(k, k).sort(), 'n': size(record.bid)}"},
	{"map-equality", []string{"record.type == 'bid'"}, "{'same': record.bid == record.bid, 'p': record.bid.price - 1}"},
	{"map-cond-literal-or-part", nil, "record.type == 'bid' ? {'p': record.bid.price} : record"},
	{"map-cond-part", []string{"record.type != 'person'"}, "record.type == 'bid' ? record.bid : record.auction"},
	{"map-dyn-entry", []string{"record.type == 'auction'"}, "{'a': dyn(record.auction), 'id': record.auction.id}"},
	{"map-optional-entry", []string{"record.type == 'bid'"}, "{?'b': record.?bid, 'p': record.bid.price}"},
	{"map-optional-value", []string{"record.type == 'bid'"}, "{'b': record.?bid.orValue({}), 'p': record.bid.price}"},
	{"map-shadow", []string{"record.type == 'bid'"}, "{'r': [record.bid].map(record, record.price)}"},
	{"map-string", []string{"record.type == 'person'"}, "{'s': string(record.person.id) + record.person.name, 'c': record.person.city}"},
	{"map-whole-bytes", []string{"record.type == 'person'"}, "{'b': bytes(record.person.name), 'n': record.person.name}"},
	{"map-list-concat", []string{"record.type == 'auction'"}, "{'l': [record.auction.id] + [record.auction.seller], 'r': record.auction.reserve}"},
}

// Each filter case also runs followed by a map that reads only the type
// and ts, so the source leaves out every other field unless the filters'
// reads (as the planner sees them) keep it.
func init() {
	for _, c := range reviewCases {
		if c.mapExpr == "" && strings.HasPrefix(c.name, "filter-") {
			reviewCases = append(reviewCases, reviewCase{c.name + "-projected", c.filters, "{'t': record.type, 'ts': record.ts}"})
		}
	}
}

// TestReviewProjectionAndReuse runs every case in both modes, into every
// sink, chained (sink parallelism as the job's) and behind an exchange.
func TestReviewProjectionAndReuse(t *testing.T) {
	for _, c := range reviewCases {
		want := reviewReference(t, c.filters, c.mapExpr)
		if len(want) == 0 {
			t.Fatalf("%s: empty reference", c.name)
		}
		var steps []spec.Step
		for i, f := range c.filters {
			steps = append(steps, spec.Step{Name: fmt.Sprintf("f%d", i), Filter: f})
		}
		if c.mapExpr != "" {
			steps = append(steps, spec.Step{Name: "m", Map: c.mapExpr})
		}
		for _, mode := range []spec.RuntimeMode{spec.Batch, spec.Streaming} {
			for _, sink := range reviewSinks {
				for _, pp := range [][2]int32{{2, 2}, {2, 1}} {
					got := runReview(t, steps, mode, sink, pp[0], pp[1])
					if !slices.Equal(got, want) {
						t.Errorf("%s %s sink %s parallelism %d/%d: %d lines, want %d; %s",
							c.name, mode, sink, pp[0], pp[1], len(got), len(want), diffSorted(got, want))
					}
				}
			}
		}
	}
}

// reviewKeyedCase is a job whose keyed step keeps the values a map step
// (or the source, through filters) handed it, across many records: state
// that would change if those values were recycled and refilled.
type reviewKeyedCase struct {
	name  string
	steps []spec.Step
	// ref folds the whole events in order (parallelism 1) and returns
	// what the job emits in mode.
	ref func(mode spec.RuntimeMode, events []map[string]any) []any
}

func reviewBids(events []map[string]any) []map[string]any {
	var out []map[string]any
	for _, e := range events {
		if e["type"] == "bid" {
			out = append(out, e["bid"].(map[string]any))
		}
	}
	return out
}

// maxByAuction is a rolling reduce keeping the highest-priced of
// records (by auction), first one on ties; project picks what is kept.
func maxByAuction(mode spec.RuntimeMode, bids []map[string]any, project func(b map[string]any) map[string]any) []any {
	acc := map[int64]map[string]any{}
	var order []int64
	var out []any
	for _, b := range bids {
		r := project(b)
		k := r["auction"].(int64)
		a, ok := acc[k]
		if !ok {
			order = append(order, k)
			a = r
		} else if a["price"].(int64) < r["price"].(int64) {
			a = r
		}
		acc[k] = a
		if mode == spec.Streaming {
			out = append(out, a)
		}
	}
	if mode == spec.Batch {
		for _, k := range order {
			out = append(out, acc[k])
		}
	}
	return out
}

var reviewKeyedCases = []reviewKeyedCase{
	{
		name: "reduce-over-path",
		steps: []spec.Step{
			{Name: "f", Filter: "record.type == 'bid'"},
			{Name: "m", Map: "record.bid"},
			{Name: "k", KeyBy: "record.auction"},
			{Name: "r", Reduce: "acc.price >= record.price ? acc : record"},
		},
		ref: func(mode spec.RuntimeMode, events []map[string]any) []any {
			return maxByAuction(mode, reviewBids(events), func(b map[string]any) map[string]any { return b })
		},
	},
	{
		name: "reduce-over-fresh-map",
		steps: []spec.Step{
			{Name: "f", Filter: "record.type == 'bid'"},
			{Name: "m", Map: "{'auction': record.bid.auction, 'price': record.bid.price, 'bidder': record.bid.bidder}"},
			{Name: "k", KeyBy: "record.auction"},
			{Name: "r", Reduce: "acc.price >= record.price ? acc : record"},
		},
		ref: func(mode spec.RuntimeMode, events []map[string]any) []any {
			return maxByAuction(mode, reviewBids(events), func(b map[string]any) map[string]any {
				return map[string]any{"auction": b["auction"], "price": b["price"], "bidder": b["bidder"]}
			})
		},
	},
	{
		name: "process-keeps-filtered-records",
		steps: []spec.Step{
			{Name: "f", Filter: "record.type == 'bid'"},
			{Name: "f2", Filter: "record.bid.price % 3 != 0"},
			{Name: "k", KeyBy: "record.bid.auction"},
			{Name: "p", Process: &spec.Process{OnElement: "{'state': record, 'emit': state == null ? [] : [{'prev': state, 'cur': record.bid.price}]}"}},
		},
		ref: func(mode spec.RuntimeMode, events []map[string]any) []any {
			prev := map[int64]map[string]any{}
			var out []any
			for _, e := range events {
				if e["type"] != "bid" {
					continue
				}
				b := e["bid"].(map[string]any)
				if b["price"].(int64)%3 == 0 {
					continue
				}
				k := b["auction"].(int64)
				if p, ok := prev[k]; ok {
					out = append(out, map[string]any{"prev": p, "cur": b["price"]})
				}
				prev[k] = e
			}
			return out
		},
	},
	{
		name: "process-projected",
		steps: []spec.Step{
			{Name: "k", KeyBy: "record.type == 'bid' ? record.bid.auction : -1"},
			{Name: "p", Process: &spec.Process{OnElement: "record.type != 'bid' ? {} : {'state': record.bid.price, 'emit': state == null ? [] : [{'prev': state, 'cur': record.bid.price, 'a': key}]}"}},
		},
		ref: func(mode spec.RuntimeMode, events []map[string]any) []any {
			prev := map[int64]any{}
			var out []any
			for _, e := range events {
				if e["type"] != "bid" {
					continue
				}
				b := e["bid"].(map[string]any)
				k := b["auction"].(int64)
				if p, ok := prev[k]; ok {
					out = append(out, map[string]any{"prev": p, "cur": b["price"], "a": k})
				}
				prev[k] = b["price"]
			}
			return out
		},
	},
}

// TestReviewKeyedStateKeepsReusedValues: values a keyed step keeps in
// its state come out unchanged at the end, though the source recycles
// what the steps before it dropped or consumed.
func TestReviewKeyedStateKeepsReusedValues(t *testing.T) {
	cfg := connector.NewNexmark(spec.Nexmark{Seed: reviewSeed}).Config
	var events []map[string]any
	for n := int64(0); n < reviewEvents; n++ {
		events = append(events, cfg.Event(reviewSeed, n))
	}
	for _, c := range reviewKeyedCases {
		for _, mode := range []spec.RuntimeMode{spec.Batch, spec.Streaming} {
			want := jsonSorted(c.ref(mode, events))
			if len(want) == 0 {
				t.Fatalf("%s: empty reference", c.name)
			}
			for _, sink := range reviewSinks {
				got := runReview(t, c.steps, mode, sink, 1, 1)
				if !slices.Equal(got, want) {
					t.Errorf("%s %s sink %s: %d lines, want %d; %s",
						c.name, mode, sink, len(got), len(want), diffSorted(got, want))
				}
			}
		}
	}
}

// TestReviewColumnarSinksWithReuse: a map literal's output built in the
// refilled scratch map, from recycled events, into the parquet and csv
// encoders (tiny parts, so parts roll often), read back by a second job.
func TestReviewColumnarSinksWithReuse(t *testing.T) {
	mapExpr := "{'auction': record.bid.auction, 'price': record.bid.price, 'channel': record.bid.channel, " +
		"'url': record.bid.url, 'b': bytes(record.bid.channel), 'half': double(record.bid.price) / 2.0}"
	filters := []string{"record.type == 'bid'", "record.bid.price % 5 != 0"}
	want := reviewReference(t, filters, mapExpr)
	schema := []spec.SchemaField{
		{Name: "auction", Type: "int"}, {Name: "price", Type: "int"}, {Name: "channel", Type: "string"},
		{Name: "url", Type: "string"}, {Name: "b", Type: "bytes"}, {Name: "half", Type: "double"},
	}
	for _, format := range []spec.Format{spec.FormatParquet, spec.FormatCSV} {
		for _, mode := range []spec.RuntimeMode{spec.Batch, spec.Streaming} {
			dir := filepath.Join(t.TempDir(), "out")
			n := int64(reviewEvents)
			job := &spec.Job{RuntimeMode: mode, Parallelism: 2, Steps: []spec.Step{
				{Name: "src", Source: &spec.Source{Nexmark: &spec.Nexmark{Events: &n, Seed: reviewSeed}}},
				{Name: "f0", Filter: filters[0]},
				{Name: "f1", Filter: filters[1]},
				{Name: "m", Map: mapExpr},
				{Name: "out", Sink: &spec.Sink{Files: &spec.FileSink{Path: dir, Format: format, Schema: schema,
					CSV: &spec.CSVOptions{Header: true}, RollingPolicy: &spec.RollingPolicy{MaxPartSize: 4096}}}},
			}}
			p, err := plan.New(job, plan.Options{Mode: mode})
			if err != nil {
				t.Fatal(err)
			}
			if err := local.Run(context.Background(), p, local.Options{BatchSize: 64, WorkDir: t.TempDir()}); err != nil {
				t.Fatalf("%s %s: %v", format, mode, err)
			}
			src := &spec.FileSource{Path: dir, Format: format}
			if format == spec.FormatCSV {
				src.CSV, src.Schema = &spec.CSVOptions{Header: true}, schema
			}
			back := &spec.Job{RuntimeMode: spec.Batch, Parallelism: 1, Steps: []spec.Step{
				{Name: "in", Source: &spec.Source{Files: src}},
				{Name: "out", Sink: &spec.Sink{Call: "out"}},
			}}
			got := enginetest.Run(t, back, spec.Batch, local.Options{}).SortedJSON("out")
			if !slices.Equal(got, want) {
				t.Errorf("%s %s: %d records read back, want %d; %s", format, mode, len(got), len(want), diffSorted(got, want))
			}
		}
	}
}

// TestReviewReuseWithCheckpoints: STREAMING with frequent checkpoints
// (barriers between the source's reads, parts rolled at every barrier)
// gives the same output with recycled events and refilled output maps.
func TestReviewReuseWithCheckpoints(t *testing.T) {
	for _, c := range reviewCases {
		if !strings.HasPrefix(c.name, "map-") {
			continue
		}
		want := reviewReference(t, c.filters, c.mapExpr)
		var steps []spec.Step
		for i, f := range c.filters {
			steps = append(steps, spec.Step{Name: fmt.Sprintf("f%d", i), Filter: f})
		}
		steps = append(steps, spec.Step{Name: "m", Map: c.mapExpr})
		n := int64(reviewEvents)
		dir := filepath.Join(t.TempDir(), "out")
		job := &spec.Job{RuntimeMode: spec.Streaming, Parallelism: 2}
		job.Steps = append(job.Steps, spec.Step{Name: "src", Source: &spec.Source{Nexmark: &spec.Nexmark{Events: &n, Seed: reviewSeed, RatePerSecond: 40000}}})
		job.Steps = append(job.Steps, steps...)
		job.Steps = append(job.Steps, spec.Step{Name: "out", Sink: &spec.Sink{Files: &spec.FileSink{Path: dir, Format: spec.FormatJSONL}}})
		p, err := plan.New(job, plan.Options{Mode: spec.Streaming})
		if err != nil {
			t.Fatal(err)
		}
		opts := local.Options{BatchSize: 16, WorkDir: t.TempDir(), CheckpointInterval: 5 * time.Millisecond, CheckpointDir: t.TempDir()}
		if err := local.Run(context.Background(), p, opts); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := readJSONLines(t, dir); !slices.Equal(got, want) {
			t.Errorf("%s: %d lines, want %d; %s", c.name, len(got), len(want), diffSorted(got, want))
		}
	}
}

// reviewDifferentialJobs are jobs where a source's records reach steps
// the planner must count as reading them whole (windows, joins, unions,
// broadcast and keyed process inputs, side outputs, Go calls), next to
// steps reading them in part. Each runs with projection pushdown and
// without (plan.Options.ReadAllFields): the outputs must be the same.
var reviewDifferentialJobs = map[string]string{
	"filter-two-consumers": `
parallelism: 1
steps:
  - name: src
    source: {nexmark: {events: 3000, seed: 3}}
  - name: bids
    filter: "record.type == 'bid'"
  - name: prices
    inputs: [bids]
    map: "{'p': record.bid.price}"
  - name: out
    inputs: [prices]
    sink: {call: out}
  - name: whole
    inputs: [bids]
    keyBy: record.bid.auction
    reduce: "acc.bid.price >= record.bid.price ? acc : record"
  - name: out2
    inputs: [whole]
    sink: {call: out2}
`,
	"broadcast-process": `
parallelism: 2
steps:
  - name: src
    source: {nexmark: {events: 3000, seed: 3}}
  - name: bids
    filter: "record.type == 'bid'"
  - name: rows
    map: "{'a': record.bid.auction, 'p': record.bid.price}"
  - name: rules
    inputs: [src]
    filter: "record.type == 'person' && record.person.id == 1000"
  - name: bc
    inputs: [rules]
    partitioning: BROADCAST
  - name: apply
    inputs: [rows, bc]
    keyBy: record.a
    process:
      onElement: >-
        has(record.person) ? {'broadcast': record} :
        {'emit': [{'a': key, 'p': record.p, 'b': broadcast}]}
  - name: out
    sink: {call: out}
`,
	"union": `
parallelism: 2
steps:
  - name: src
    source: {nexmark: {events: 3000, seed: 3}}
  - name: persons
    inputs: [src]
    filter: "record.type == 'person'"
  - name: auctions
    inputs: [src]
    filter: "record.type == 'auction'"
  - name: both
    inputs: [persons, auctions]
    union: {}
  - name: out
    sink: {call: out}
`,
	"interval-join": `
parallelism: 2
steps:
  - name: src
    source:
      nexmark: {events: 3000, seed: 3}
      timestamp: record.ts
      watermarks: {maxOutOfOrderness: 1s}
  - name: persons
    inputs: [src]
    filter: "record.type == 'person'"
  - name: auctions
    inputs: [src]
    filter: "record.type == 'auction'"
  - name: j
    inputs: [persons, auctions]
    join:
      leftKey: record.person.id
      rightKey: record.auction.seller
      interval: {lowerBound: "-10s", upperBound: "10s"}
  - name: out
    sink: {call: out}
`,
	"window-late-output": `
parallelism: 1
steps:
  - name: src
    source:
      nexmark: {events: 3000, seed: 3}
      timestamp: "record.type == 'bid' ? record.ts - record.bid.price % 3000 : record.ts"
      watermarks: {maxOutOfOrderness: 100ms}
  - name: w
    keyBy: record.type
    window:
      type: tumbling
      size: 1s
      lateDataOutput: late
      aggregate:
        fields:
          - {name: n, count: true}
  - name: out
    inputs: [w]
    sink: {call: out}
  - name: late-out
    inputs: [late]
    sink: {call: late}
`,
	"go-call": `
parallelism: 2
steps:
  - name: src
    source: {nexmark: {events: 3000, seed: 3}}
  - name: bids
    filter: "record.type == 'bid'"
  - name: c
    call: review-identity
  - name: m
    map: "{'p': record.bid.price, 'n': size(record.bid)}"
  - name: out
    sink: {call: out}
`,
	"keyed-filter-then-map": `
parallelism: 2
steps:
  - name: src
    source: {nexmark: {events: 3000, seed: 3}}
  - name: k
    keyBy: "record.type"
  - name: f
    filter: "record.type == 'auction' && record.auction.reserve > 1000"
  - name: m
    map: "{'id': record.auction.id, 'keys': record.auction.map(k, k).sort()}"
  - name: out
    sink: {call: out}
`,
}

func init() {
	udf.Register("review-identity", func(v any, emit func(any)) error { emit(v); return nil })
}

func TestReviewProjectionDifferential(t *testing.T) {
	for name, src := range reviewDifferentialJobs {
		for _, mode := range []spec.RuntimeMode{spec.Batch, spec.Streaming} {
			if mode == spec.Streaming && name == "broadcast-process" {
				continue // when the broadcast record arrives depends on timing
			}
			var outs [2]map[string][]string
			for i, readAll := range []bool{false, true} {
				job := enginetest.Parse(t, src)
				p, err := plan.New(job, plan.Options{Mode: mode, ReadAllFields: readAll})
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if i == 0 {
					t.Logf("%s: source reads %s", name, p.Graph.Nodes[0].Fields)
				}
				c := enginetest.NewCollect()
				opts := local.Options{BatchSize: 64, WorkDir: t.TempDir()}
				opts.Env.CallSink = c.Sink
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				err = local.Run(ctx, p, opts)
				cancel()
				if err != nil {
					t.Fatalf("%s %s: %v", name, mode, err)
				}
				outs[i] = map[string][]string{}
				for _, sink := range []string{"out", "out2", "late"} {
					outs[i][sink] = c.SortedJSON(sink)
				}
			}
			if len(outs[1]["out"]) == 0 {
				t.Fatalf("%s %s: no output", name, mode)
			}
			for sink, want := range outs[1] {
				if got := outs[0][sink]; !slices.Equal(got, want) {
					t.Errorf("%s %s sink %s: %d records with projection, %d without; %s",
						name, mode, sink, len(got), len(want), diffSorted(got, want))
				}
			}
		}
	}
}
