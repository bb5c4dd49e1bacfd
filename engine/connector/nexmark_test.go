package connector

import (
	"context"
	"errors"
	"fmt"
	"github.com/flinkjob/flinkjob/engine/projection"
	"io"
	"reflect"
	"sort"
	"syscall"
	"testing"

	"github.com/flinkjob/flinkjob/engine/expr"
	"github.com/flinkjob/flinkjob/engine/spec"
	"github.com/flinkjob/flinkjob/engine/value"
)

// readNexmark reads every subtask of a bounded source and returns what
// each emitted, as maps (value.Plain). A nexmark source must emit rows
// exactly when value.UseRows is on.
func readNexmark(t *testing.T, s Source, parallelism int) [][]any {
	t.Helper()
	out := make([][]any, parallelism)
	for i := 0; i < parallelism; i++ {
		r, err := s.Open(context.Background(), i, parallelism)
		if err != nil {
			t.Fatal(err)
		}
		for {
			err := r.Read(context.Background(), 1000, func(v any) {
				if _, isRow := v.(*value.Row); isRow != value.UseRows {
					if _, ok := s.(Nexmark); ok {
						t.Fatalf("nexmark emitted a %T with value.UseRows %v", v, value.UseRows)
					}
				}
				out[i] = append(out[i], value.Plain(v))
			})
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		r.Close()
	}
	return out
}

func nexmarkSource(events int64, seed int64) Nexmark {
	return NewNexmark(spec.Nexmark{Events: &events, Seed: seed})
}

func TestNexmarkProportions(t *testing.T) {
	const n = 50000
	evs := readNexmark(t, nexmarkSource(n, 1), 1)[0]
	if len(evs) != n {
		t.Fatalf("%d events, want %d", len(evs), n)
	}
	counts := map[string]int{}
	for _, e := range evs {
		m := e.(map[string]any)
		kind := m["type"].(string)
		counts[kind]++
		if _, ok := m[kind].(map[string]any); !ok {
			t.Fatalf("event %v has no %q body", m, kind)
		}
		if len(m) != 3 {
			t.Fatalf("event has keys %v, want type, ts and %s", m, kind)
		}
	}
	want := map[string]int{"person": n / 50, "auction": n / 50 * 3, "bid": n / 50 * 46}
	if !reflect.DeepEqual(counts, want) {
		t.Errorf("counts %v, want %v", counts, want)
	}
}

func TestNexmarkSameAtAnyParallelism(t *testing.T) {
	const n = 5000
	multiset := func(p int) []string {
		var out []string
		for i, sub := range readNexmark(t, nexmarkSource(n, 42), p) {
			for k, v := range sub {
				// Subtask i emits exactly the events n ≡ i (mod p), in order.
				js := string(value.ToJSON(v))
				if want := string(value.ToJSON(DefaultNexmarkConfig.Event(42, int64(i+k*p)))); js != want {
					t.Fatalf("p=%d subtask %d record %d is not event %d", p, i, k, i+k*p)
				}
				out = append(out, js)
			}
			if want := (n - i + p - 1) / p; len(sub) != want {
				t.Errorf("p=%d subtask %d: %d events, want %d", p, i, len(sub), want)
			}
		}
		sort.Strings(out)
		return out
	}
	one, three := multiset(1), multiset(3)
	if !reflect.DeepEqual(one, three) {
		t.Fatalf("parallelism 1 and 3 differ")
	}
	// The generator is a pure function of (seed, n).
	c := DefaultNexmarkConfig
	for _, k := range []int64{0, 1, 4, 49, 50, 4321} {
		a, b := value.ToJSON(c.Event(42, k)), value.ToJSON(c.Event(42, k))
		if string(a) != string(b) {
			t.Errorf("event %d is not deterministic", k)
		}
	}
	// A different seed changes the values but not the ids.
	a, b := c.Event(1, 7)["bid"].(map[string]any), c.Event(2, 7)["bid"].(map[string]any)
	if reflect.DeepEqual(a, b) {
		t.Errorf("seeds 1 and 2 give the same bid %v", a)
	}
	if p1, p2 := c.Event(1, 50)["person"].(map[string]any)["id"], c.Event(2, 50)["person"].(map[string]any)["id"]; p1 != p2 {
		t.Errorf("person ids depend on the seed: %v, %v", p1, p2)
	}
}

func TestNexmarkTimestamps(t *testing.T) {
	c := DefaultNexmarkConfig
	if got := c.Event(0, 0)["ts"]; got != NexmarkBaseTime {
		t.Errorf("event 0 at %v, want %d", got, NexmarkBaseTime)
	}
	if got := c.Timestamp(10000); got != NexmarkBaseTime+1000 {
		t.Errorf("event 10000 at %d, want base+1000 (10000 events/s)", got)
	}
	prev := int64(-1)
	for n := int64(0); n < 20000; n++ {
		e := c.Event(3, n)
		ts := e["ts"].(int64)
		if ts < prev {
			t.Fatalf("event %d at %d before event %d at %d", n, ts, n-1, prev)
		}
		prev = ts
		body := e[e["type"].(string)].(map[string]any)
		if body["dateTime"] != ts {
			t.Fatalf("event %d: dateTime %v, ts %d", n, body["dateTime"], ts)
		}
		if a, ok := e["auction"].(map[string]any); ok && a["expires"].(int64) <= ts {
			t.Fatalf("auction %v expires before it starts", a)
		}
	}
	c.FirstEventRate = 1000
	if got := c.Timestamp(3); got != NexmarkBaseTime+3 {
		t.Errorf("rate 1000: event 3 at %d, want base+3", got)
	}
}

func TestNexmarkIDs(t *testing.T) {
	const n = 50000
	evs := readNexmark(t, nexmarkSource(n, 9), 1)[0]
	lastPerson, lastAuction := int64(NexmarkFirstPersonID-1), int64(NexmarkFirstAuctionID-1)
	hotAuctionBids, bids := 0, 0
	for i, e := range evs {
		m := e.(map[string]any)
		switch m["type"] {
		case "person":
			id := m["person"].(map[string]any)["id"].(int64)
			if id != lastPerson+1 {
				t.Fatalf("event %d: person %d after %d", i, id, lastPerson)
			}
			lastPerson = id
		case "auction":
			a := m["auction"].(map[string]any)
			id := a["id"].(int64)
			if id != lastAuction+1 {
				t.Fatalf("event %d: auction %d after %d", i, id, lastAuction)
			}
			lastAuction = id
			if s := a["seller"].(int64); s < NexmarkFirstPersonID || s > lastPerson+NexmarkPersonIDLead {
				t.Fatalf("event %d: seller %d, last person %d", i, s, lastPerson)
			}
			if c := a["category"].(int64); c < NexmarkFirstCategoryID || c >= NexmarkFirstCategoryID+NexmarkNumCategories {
				t.Fatalf("event %d: category %d", i, c)
			}
			if a["reserve"].(int64) < a["initialBid"].(int64) {
				t.Fatalf("event %d: reserve below initial bid: %v", i, a)
			}
		case "bid":
			b := m["bid"].(map[string]any)
			bids++
			// A bid names a generated auction or, as in Nexmark, one of the
			// next few (the lead).
			au := b["auction"].(int64)
			if au < NexmarkFirstAuctionID || au > lastAuction+NexmarkAuctionIDLead {
				t.Fatalf("event %d: bid for auction %d, last auction %d", i, au, lastAuction)
			}
			if au <= lastAuction && au < lastAuction-DefaultNexmarkConfig.InFlightAuctions-nexmarkHotAuctionBatch {
				t.Fatalf("event %d: bid for auction %d, long out of flight (last %d)", i, au, lastAuction)
			}
			if (au-NexmarkFirstAuctionID)%nexmarkHotAuctionBatch == 0 {
				hotAuctionBids++
			}
			if p := b["bidder"].(int64); p < NexmarkFirstPersonID || p > lastPerson+NexmarkPersonIDLead {
				t.Fatalf("event %d: bidder %d, last person %d", i, p, lastPerson)
			}
			if p := b["price"].(int64); p < 100 || p > 100_000_000 {
				t.Fatalf("event %d: price %d", i, p)
			}
		}
	}
	if lastPerson != NexmarkFirstPersonID+n/50-1 || lastAuction != NexmarkFirstAuctionID+n/50*3-1 {
		t.Errorf("last person %d, last auction %d", lastPerson, lastAuction)
	}
	// hotAuctionRatio 2: about half the bids go to the hot auction.
	if f := float64(hotAuctionBids) / float64(bids); f < 0.45 || f > 0.6 {
		t.Errorf("%.2f of bids go to hot auctions, want about 0.5", f)
	}
}

func TestNexmarkKnobs(t *testing.T) {
	events := int64(10)
	x := NewNexmark(spec.Nexmark{Events: &events, HotAuctionRatio: 7, ActivePeople: 5})
	if x.Config.HotAuctionRatio != 7 || x.Config.ActivePeople != 5 || x.Config.HotSellerRatio != 4 || x.Config.InFlightAuctions != 100 || x.Config.FirstEventRate != 10000 {
		t.Errorf("config %+v", x.Config)
	}
	if !x.Bounded() || NewNexmark(spec.Nexmark{}).Bounded() {
		t.Error("bounded iff events is set")
	}
	x.Config.HotBidderRatio = 0
	if _, err := x.Open(context.Background(), 0, 1); err == nil {
		t.Error("Open accepted hotBidderRatio 0")
	}
	// NewSource builds it.
	s, err := NewSource(&spec.Source{Nexmark: &spec.Nexmark{Events: &events}}, nil, nil, Env{})
	if err != nil {
		t.Fatal(err)
	}
	if got := readNexmark(t, s, 2); len(got[0])+len(got[1]) != 10 {
		t.Errorf("NewSource: %d+%d events", len(got[0]), len(got[1]))
	}
}

func processCPU() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// TestGeneratorSeek: datagen and nexmark readers resume at a position one
// of them returned, and refuse another subtask's position.
func TestGeneratorSeek(t *testing.T) {
	prog, err := expr.Compile("seq * 10", expr.Any, "seq")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []Source{Datagen{Value: prog, Count: 20}, nexmarkSource(20, 7)} {
		all := readNexmark(t, s, 3)[1]
		r, err := s.Open(context.Background(), 1, 3)
		if err != nil {
			t.Fatal(err)
		}
		var got []any
		if err := r.Read(context.Background(), 2, func(v any) { got = append(got, value.Plain(v)) }); err != nil {
			t.Fatal(err)
		}
		pos, err := r.(Positioned).Position()
		if err != nil {
			t.Fatal(err)
		}
		if string(pos) != "7" { // subtask 1 of 3 read 1, 4; next is 7
			t.Fatalf("%T: position %q, want 7", s, pos)
		}
		r2, _ := s.Open(context.Background(), 1, 3)
		if err := r2.(Positioned).Seek(pos); err != nil {
			t.Fatal(err)
		}
		for {
			err := r2.Read(context.Background(), 1000, func(v any) { got = append(got, value.Plain(v)) })
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if !reflect.DeepEqual(got, all) {
			t.Fatalf("%T: resumed read %v, want %v", s, got, all)
		}
		r3, _ := s.Open(context.Background(), 1, 3)
		if err := r3.(Positioned).Seek([]byte("6")); err == nil {
			t.Fatalf("%T: Seek to another subtask's position 6 succeeded", s)
		}
	}
}

// TestNexmarkEventFields: a projected event is the whole event cut down to
// the projection, for every single field (each skips the draws of the
// fields before it in its own way) and for the Nexmark queries' projections.
func TestNexmarkEventFields(t *testing.T) {
	var projections []*projection.Fields
	for kind, fields := range map[string][]string{
		"person":  {"id", "name", "emailAddress", "creditCard", "city", "state", "dateTime", "extra"},
		"auction": {"id", "itemName", "description", "initialBid", "reserve", "dateTime", "expires", "seller", "category", "extra"},
		"bid":     {"auction", "bidder", "price", "channel", "url", "dateTime", "extra"},
	} {
		for _, f := range fields {
			p := projection.None()
			p.Add([]string{kind, f})
			projections = append(projections, p)
		}
		p := projection.None()
		p.Add([]string{kind, "noSuchField"}) // the body, empty
		projections = append(projections, p)
	}
	for _, paths := range [][][]string{
		{{"type"}},
		{{"ts"}, {"type"}, {"bid", "auction"}, {"bid", "price"}},
		{{"type"}, {"auction", "category"}, {"auction", "id"}, {"auction", "seller"}, {"person", "city"}, {"person", "name"}},
		{{"type"}, {"auction", "reserve"}, {"person", "extra"}, {"bid", "url"}},
		{{"type"}, {"auction", "extra"}, {"person", "creditCard"}, {"bid"}},
		{},
	} {
		p := projection.None()
		for _, path := range paths {
			p.Add(path)
		}
		projections = append(projections, p)
	}
	c := DefaultNexmarkConfig
	for _, p := range projections {
		for n := range int64(3000) {
			want := value.ToJSON(cutDown(c.Event(5, n), p))
			if got := value.ToJSON(c.EventFields(5, n, p)); string(got) != string(want) {
				t.Fatalf("projection %s, event %d:\n got %s\nwant %s", p, n, got, want)
			}
		}
	}
}

// cutDown is v with only the fields f reads (test oracle for EventFields).
func cutDown(v any, f *projection.Fields) any {
	if f.IsAll() {
		return v
	}
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	out := map[string]any{}
	for name, sub := range f.Sub {
		if x, ok := m[name]; ok {
			out[name] = cutDown(x, sub)
		}
	}
	return out
}

// withRows sets value.UseRows for the rest of the test (the producers read
// it when they are set up).
func withRows(t *testing.T, on bool) {
	t.Helper()
	old := value.UseRows
	value.UseRows = on
	t.Cleanup(func() { value.UseRows = old })
}

// TestNexmarkRecycle: a reader that gets events back refills them with the
// next events' values exactly, and the events it did not get back stay as
// they were; as maps and as rows.
func TestNexmarkRecycle(t *testing.T) {
	q2 := projection.None()
	for _, path := range [][]string{{"type"}, {"ts"}, {"bid", "auction"}, {"bid", "price"}, {"person"}} {
		q2.Add(path)
	}
	// Bodies left out: the kinds' events share one schema.
	types := projection.None()
	types.Add([]string{"type"})
	types.Add([]string{"bid", "price"})
	for _, rows := range []bool{false, true} {
		withRows(t, rows)
		for _, fields := range []*projection.Fields{nil, q2, types} {
			x := Nexmark{Events: 3000, Seed: 9, Config: DefaultNexmarkConfig, Fields: fields}
			rd, err := x.Open(context.Background(), 0, 1)
			if err != nil {
				t.Fatal(err)
			}
			rc := rd.(Recycler)
			var kept []any
			var keptJSON []string
			n := int64(0)
			var reused, events [3]int
			seen := map[any]bool{}
			for {
				err := rd.Read(context.Background(), 7, func(v any) {
					full := any(x.Config.Event(9, n))
					if fields != nil {
						full = cutDown(full, fields)
					}
					if got, want := value.ToJSON(v), value.ToJSON(full); string(got) != string(want) {
						t.Fatalf("rows %v, fields %s, event %d:\n got %s\nwant %s", rows, fields, n, got, want)
					}
					if r, ok := v.(*value.Row); ok {
						k := nexmarkKind(n)
						events[k]++
						if seen[r] {
							reused[k]++
						}
						seen[r] = true
					}
					if n%3 == 0 {
						kept, keptJSON = append(kept, v), append(keptJSON, string(value.ToJSON(v)))
					} else {
						rc.Recycle(v)
					}
					n++
				})
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if n != 3000 {
				t.Fatalf("read %d events", n)
			}
			for i, v := range kept {
				if got := string(value.ToJSON(v)); got != keptJSON[i] {
					t.Fatalf("rows %v: kept event %d changed after recycling others:\n got %s\nwant %s", rows, 3*i, got, keptJSON[i])
				}
			}
			// Rows handed back are built again, of every kind (maps are
			// cleared and refilled, which a test cannot tell apart from
			// new ones). Two in three events come back.
			for k := range events {
				if rows && reused[k] < events[k]/2 {
					t.Errorf("fields %s: %d of %d %s events were recycled rows", fields, reused[k], events[k], nexmarkKinds[k])
				}
			}
		}
	}
}

// TestNexmarkRows: with value.UseRows a reader builds each event and its
// body as rows that are exactly the map events (value.Plain, JSON and the
// binary encoding), for whole events and for projections, and the events
// of one kind share one schema.
func TestNexmarkRows(t *testing.T) {
	withRows(t, true)
	var projections []*projection.Fields
	projections = append(projections, nil)
	for _, paths := range [][][]string{
		{{"type"}},
		{{"ts"}, {"type"}, {"bid", "auction"}, {"bid", "price"}},
		{{"type"}, {"auction", "category"}, {"auction", "id"}, {"auction", "seller"}, {"person", "city"}, {"person", "name"}},
		{{"type"}, {"auction", "reserve"}, {"person", "extra"}, {"bid", "url"}, {"bid", "noSuchField"}},
		{{"bid", "dateTime"}, {"person", "price"}},
		{{"person"}},
		{},
	} {
		p := projection.None()
		for _, path := range paths {
			p.Add(path)
		}
		projections = append(projections, p)
	}
	c := DefaultNexmarkConfig
	for _, p := range projections {
		x := Nexmark{Events: 2000, Seed: 5, Config: c, Fields: p}
		rd, err := x.Open(context.Background(), 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		schemas := map[string]*value.Schema{}
		n := int64(0)
		for {
			err := rd.Read(context.Background(), 100, func(v any) {
				r, ok := v.(*value.Row)
				if !ok {
					t.Fatalf("projection %s: event %d is a %T, want a row", p, n, v)
				}
				want := any(c.Event(5, n))
				if p != nil {
					want = cutDown(want, p)
				}
				kind := nexmarkKinds[nexmarkKind(n)]
				if body, ok := r.Get(kind); ok {
					if _, isRow := body.(*value.Row); !isRow {
						t.Fatalf("projection %s: event %d's body is a %T", p, n, body)
					}
				}
				if got := value.Plain(v); !reflect.DeepEqual(got, want) {
					t.Fatalf("projection %s, event %d:\n got %v\nwant %v", p, n, got, want)
				}
				if got, want := value.ToJSON(v), value.ToJSON(want); string(got) != string(want) {
					t.Fatalf("projection %s, event %d: JSON %s, want %s", p, n, got, want)
				}
				if got, want := value.Append(nil, v), value.Append(nil, want); string(got) != string(want) {
					t.Fatalf("projection %s, event %d: encodings differ", p, n)
				}
				if s, ok := schemas[kind]; ok && s != r.Schema() {
					t.Fatalf("projection %s: two schemas for %s events", p, kind)
				}
				schemas[kind] = r.Schema()
				n++
			})
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if n != 2000 {
			t.Fatalf("read %d events", n)
		}
	}
}

// BenchmarkNexmarkGenerate is the generator alone, building maps and
// rows (A/B in one run): one op is one event. cpu-ns/op is the process's
// CPU time per event (GC included), steadier than ns/op on a loaded
// machine.
func BenchmarkNexmarkGenerate(b *testing.B) {
	q1 := projection.None()
	for _, path := range [][]string{{"type"}, {"ts"}, {"bid", "auction"}, {"bid", "bidder"}, {"bid", "price"}, {"bid", "dateTime"}} {
		q1.Add(path)
	}
	for _, c := range []struct {
		name   string
		fields *projection.Fields
	}{{"whole", nil}, {"q1-fields", q1}} {
		for _, rows := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/rows=%v", c.name, rows), func(b *testing.B) {
				old := value.UseRows
				value.UseRows = rows
				x := Nexmark{Events: -1, Seed: 1, Config: DefaultNexmarkConfig, Fields: c.fields}
				r, err := x.Open(context.Background(), 0, 1)
				value.UseRows = old
				if err != nil {
					b.Fatal(err)
				}
				sink := func(any) {}
				b.ReportAllocs()
				cpu0 := processCPU()
				for b.Loop() {
					if err := r.Read(context.Background(), 1, sink); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}
