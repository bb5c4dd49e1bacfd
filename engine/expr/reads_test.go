package expr

import "testing"

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
