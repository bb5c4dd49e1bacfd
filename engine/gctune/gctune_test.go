package gctune

import "testing"

func TestParseLimit(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"max\n", 0, false},
		{"1073741824\n", 1 << 30, true},
		{"9223372036854771712\n", 0, false}, // cgroup v1's "no limit"
		{"", 0, false},
		{"0", 0, false},
	} {
		got, ok := parseLimit(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("parseLimit(%q) = %d, %v; want %d, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestApplyKeepsEnvironment(t *testing.T) {
	t.Setenv("GOGC", "150")
	t.Setenv("GOMEMLIMIT", "1GiB")
	gc, limit := Apply()
	if gc != 150 || limit != 0 {
		t.Fatalf("Apply with GOGC=150 GOMEMLIMIT set = %d, %d; want 150, 0 (the environment wins)", gc, limit)
	}
}
