package operator

import (
	"context"
	"reflect"
	"testing"

	"github.com/flinkjob/flinkjob/engine/connector"
	"github.com/flinkjob/flinkjob/engine/plan"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// Review test of object reuse at the chain level: every value a source
// chain hands back (RecycleSourceValues) must share no map or list with
// anything still held downstream (the chain's output collector and a
// sink that keeps its records), and no map may be handed back twice (the
// reader would then refill one map for two live events). Values written
// to a value-releasing sink are encoded during Write and must read the
// same once the whole run is over (kept sinks) as they did then.

// containers adds the maps, rows and lists reachable from v to set.
func containers(v any, set map[uintptr]bool) {
	switch x := v.(type) {
	case map[string]any:
		set[reflect.ValueOf(x).Pointer()] = true
		for _, e := range x {
			containers(e, set)
		}
	case *value.Row:
		// A row's values are allocated with it (or, past eight fields,
		// reachable only through it): the row stands for both.
		set[reflect.ValueOf(x).Pointer()] = true
		for _, e := range x.Values() {
			containers(e, set)
		}
	case []any:
		if cap(x) > 0 {
			set[reflect.ValueOf(x[:1]).Pointer()] = true
		}
		for _, e := range x {
			containers(e, set)
		}
	}
}

type reviewKeeper struct {
	held     map[uintptr]bool
	vals     []any
	snapshot []string // JSON of each kept value when it was kept
}

func (k *reviewKeeper) keep(v any) {
	containers(v, k.held)
	k.vals = append(k.vals, v)
	k.snapshot = append(k.snapshot, string(value.ToJSON(v)))
}

// reviewKeepSink keeps every value (not a ValueReleaser).
type reviewKeepSink struct{ k *reviewKeeper }

func (s reviewKeepSink) Open(context.Context, int, int) (connector.Writer, error) {
	return reviewKeepWriter(s), nil
}

type reviewKeepWriter struct{ k *reviewKeeper }

func (w reviewKeepWriter) Write(r *value.Record) error { w.k.keep(r.Value); return nil }
func (w reviewKeepWriter) Close() error                { return nil }
func (w reviewKeepWriter) Abort()                      {}

// reviewReleaseSink encodes every value at once (a ValueReleaser).
type reviewReleaseSink struct{ lines *[]string }

func (s reviewReleaseSink) Open(context.Context, int, int) (connector.Writer, error) {
	return reviewReleaseWriter(s), nil
}

type reviewReleaseWriter struct{ lines *[]string }

func (w reviewReleaseWriter) Write(r *value.Record) error {
	*w.lines = append(*w.lines, string(value.ToJSON(r.Value)))
	return nil
}
func (w reviewReleaseWriter) Close() error         { return nil }
func (w reviewReleaseWriter) Abort()               {}
func (w reviewReleaseWriter) ReleasesValues() bool { return true }

func TestReviewRecycledValuesAreNotHeld(t *testing.T) {
	cases := []struct {
		name  string
		steps []spec.Step
	}{
		{"filters", []spec.Step{{Name: "f", Filter: "record.type == 'bid'"}, {Name: "f2", Filter: "record.bid.price % 2 == 0"}}},
		{"map-path", []spec.Step{{Name: "f", Filter: "record.type == 'bid'"}, {Name: "m", Map: "record.bid"}}},
		{"map-deep-path", []spec.Step{{Name: "f", Filter: "record.type != 'person'"}, {Name: "m", Map: "record.type"}}},
		{"map-fresh", []spec.Step{{Name: "f", Filter: "record.type == 'bid'"}, {Name: "m", Map: "{'p': record.bid.price, 'b': record.bid}"}}},
		{"map-fresh-scalars", []spec.Step{{Name: "f", Filter: "record.type == 'auction'"}, {Name: "m", Map: "{'id': record.auction.id, 's': record.auction.seller}"}}},
		{"map-cond", []spec.Step{{Name: "m", Map: "record.type == 'bid' ? {'p': record.bid.price} : {'e': record}"}}},
		{"map-cond-part", []spec.Step{{Name: "m", Map: "record.type == 'bid' ? record.bid : record"}}},
		{"map-then-filter", []spec.Step{{Name: "f", Filter: "record.type == 'bid'"}, {Name: "m", Map: "{'b': record.bid, 'p': record.bid.price}"}, {Name: "f2", Filter: "record.p % 3 != 0"}}},
		{"map-record", []spec.Step{{Name: "m", Map: "record"}, {Name: "f2", Filter: "record.type != 'auction'"}}},
	}
	for _, c := range cases {
		for _, mode := range []spec.RuntimeMode{spec.Batch, spec.Streaming} {
			var keptLines []string
			for _, sinkKind := range []string{"tail", "keep", "release"} {
				n := int64(3000)
				steps := append([]spec.Step{{Name: "src", Source: &spec.Source{Nexmark: &spec.Nexmark{Events: &n, Seed: 11}}}}, c.steps...)
				out := spec.Step{Name: "out", Sink: &spec.Sink{Discard: &spec.DiscardSink{}}}
				if sinkKind == "tail" {
					// Not chained: the source chain's tail feeds an exchange.
					two := int32(2)
					out.Parallelism = &two
				}
				steps = append(steps, out)
				p, err := plan.New(&spec.Job{RuntimeMode: mode, Parallelism: 1, Steps: steps}, plan.Options{ReadAllFields: true})
				if err != nil {
					t.Fatal(err)
				}
				if len(p.Stages) != 1 && sinkKind != "tail" {
					t.Fatalf("%s: %d stages, want the sink chained", c.name, len(p.Stages))
				}
				k := &reviewKeeper{held: map[uintptr]bool{}}
				var released []string
				sinks := map[string]connector.Sink{}
				switch sinkKind {
				case "keep":
					sinks["out"] = reviewKeepSink{k}
				case "release":
					sinks["out"] = reviewReleaseSink{&released}
				}
				ch, err := NewChain(p.Stages[0], p.Mode, sinks)
				if err != nil {
					t.Fatal(err)
				}
				src := connector.NewNexmark(spec.Nexmark{Events: &n, Seed: 11})
				rd, err := src.Open(context.Background(), 0, 1)
				if err != nil {
					t.Fatal(err)
				}
				rc := rd.(connector.Recycler)
				recycled := map[uintptr]bool{}
				var nrec int
				fail := false
				ch.RecycleSourceValues(func(v any) {
					nrec++
					set := map[uintptr]bool{}
					containers(v, set)
					for ptr := range set {
						if k.held[ptr] && !fail {
							fail = true
							t.Errorf("%s %s %s: a recycled value holds a map or list still held downstream", c.name, mode, sinkKind)
						}
						if recycled[ptr] && !fail {
							fail = true
							t.Errorf("%s %s %s: a map or list was recycled twice", c.name, mode, sinkKind)
						}
						recycled[ptr] = true
					}
					rc.Recycle(v)
				})
				tail := collectorFunc(func(r *value.Record) error { k.keep(r.Value); return nil })
				if err := ch.Open(&Context{Ctx: context.Background(), Mode: mode, Parallelism: 1, Now: func() int64 { return 0 }}, tail); err != nil {
					t.Fatal(err)
				}
				var procErr error
				for {
					err := rd.Read(context.Background(), 64, func(v any) {
						if procErr != nil {
							return
						}
						// The reader may hand out a refilled map again.
						live := map[uintptr]bool{}
						containers(v, live)
						for ptr := range live {
							delete(recycled, ptr)
						}
						r := value.Record{Value: v, Ts: value.NoTimestamp}
						procErr = ch.Source.Process(&r, 0)
					})
					if procErr != nil {
						t.Fatalf("%s: %v", c.name, procErr)
					}
					if err != nil {
						break
					}
				}
				if err := ch.Finish(); err != nil {
					t.Fatal(err)
				}
				ch.Close()
				// Kept values read at the end as they did when kept.
				for i, v := range k.vals {
					if got := string(value.ToJSON(v)); got != k.snapshot[i] {
						t.Errorf("%s %s %s: kept value %d changed after it was kept:\n got %s\nwas %s", c.name, mode, sinkKind, i, got, k.snapshot[i])
						break
					}
				}
				switch sinkKind {
				case "keep":
					keptLines = k.snapshot
				case "release":
					if !reflect.DeepEqual(released, keptLines) {
						t.Errorf("%s %s: a value-releasing sink got %d records, a keeping one %d, or different ones", c.name, mode, len(released), len(keptLines))
					}
				}
				if len(k.vals)+len(released) == 0 {
					t.Errorf("%s %s %s: no output", c.name, mode, sinkKind)
				}
				t.Logf("%s %s %s: %d recycled, %d kept, %d released", c.name, mode, sinkKind, nrec, len(k.vals), len(released))
			}
		}
	}
}

// The release sink must say what it is meant to say.
var _ connector.ValueReleaser = reviewReleaseWriter{}
