package expr

import (
	"fmt"
	"testing"
)

func TestReads(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"record.type == 'bid' && record.bid.auction % 123 == 0", "{bid:{auction},type}"},
		{"record.bid", "{bid}"},
		{"record", "*"},
		{"dyn({'a': record})", "*"},
		{"record.bid == record.auction", "{auction,bid}"},
		{"has(record.name) ? record.person.name : 'x'", "{name,person:{name}}"},
		{"record['bid'].price + record.bid.auction", "{bid:{auction,price}}"},
		{"size(record.bid) > 0 && record.bid.price > 1", "{bid}"},
		{"record[1] == 2", "*"},
		{"[1, 2].map(record, record + 1).size() > 0", "*"},
		{"[1, 2].exists(x, x == record.a.b)", "{a:{b}}"},
		{"1 + 2 == 3", "-"},
		{"state.a + record.n", "{n}"},
	} {
		p, err := Compile(c.src, Any, Record, State)
		if err != nil {
			t.Fatalf("%s: %v", c.src, err)
		}
		if got := p.Reads(Record).String(); got != c.want {
			t.Errorf("Reads(%q) = %s, want %s", c.src, got, c.want)
		}
	}
}

func TestFreshMap(t *testing.T) {
	for _, c := range []struct {
		src   string
		check string
		ok    bool
	}{
		{"{'auction': record.bid.auction, 'price': record.bid.price * 908 / 1000, 'n': 1, 'ok': record.a > 2}", "[auction]", true},
		{"{'a': record.x + record.y, 'b': [record.z], 'c': {'d': 1}}", "[a b c]", true},
		{"{'b': b'x'}", "[b]", true},
		{"record.bid", "[]", false},
		{"dyn({'a': 1})", "[]", true},
		{"dyn(record.t == 1 ? {'a': record.x, 'n': 1} : {'a': 2, 'b': record.y})", "[a b]", true},
		{"record.t == 1 ? {'a': 1} : record", "[]", false},
		{"size(record) > 0 ? {'a': 1} : dyn({'b': record.x})", "[b]", true},
		{"{record.k: 1}", "[]", false},
	} {
		p, err := Compile(c.src, Any, Record)
		if err != nil {
			t.Fatalf("%s: %v", c.src, err)
		}
		check, ok := p.FreshMap()
		if ok != c.ok || fmt.Sprint(check) != c.check && ok {
			t.Errorf("FreshMap(%q) = %v, %v; want %s, %v", c.src, check, ok, c.check, c.ok)
		}
	}
}

func TestRecordPath(t *testing.T) {
	for src, want := range map[string]string{"record.bid": "[bid] true", "record.a.b": "[a b] true", "record": "[] false", "record.a + 1": "[] false", "state.a": "[] false"} {
		p, err := Compile(src, Any, Record, State)
		if err != nil {
			t.Fatal(err)
		}
		path, ok := p.RecordPath(Record)
		if got := fmt.Sprint(path, " ", ok); got != want {
			t.Errorf("RecordPath(%q) = %s, want %s", src, got, want)
		}
	}
}
