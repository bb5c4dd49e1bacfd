package projection

import "testing"

func TestAddMerge(t *testing.T) {
	f := None()
	f.Add([]string{"bid", "price"})
	f.Add([]string{"type"})
	f.Add([]string{"bid", "auction"})
	if got := f.String(); got != "{bid:{auction,price},type}" {
		t.Fatalf("after Add: %s", got)
	}
	f.Add([]string{"bid"}) // the whole bid subsumes its fields
	f.Add([]string{"bid", "url"})
	if got := f.String(); got != "{bid,type}" {
		t.Fatalf("whole bid: %s", got)
	}
	g := None()
	g.Add([]string{"person", "name"})
	g.Merge(f)
	if got := g.String(); got != "{bid,person:{name},type}" {
		t.Fatalf("Merge: %s", got)
	}
	if !g.Has("bid") || !g.Field("bid").IsAll() || g.Has("auction") || !g.Field("person").Has("name") {
		t.Fatalf("Field/Has on %s", g)
	}
	g.Merge(All())
	if !g.IsAll() || !g.Field("anything").IsAll() {
		t.Fatalf("Merge(All) gave %s", g)
	}
	var none *Fields
	if none.Has("x") || none.IsAll() || none.String() != "-" {
		t.Fatal("nil Fields reads nothing")
	}
	e := None()
	e.Add(nil)
	if !e.IsAll() {
		t.Fatal("an empty path reads the whole value")
	}
}
