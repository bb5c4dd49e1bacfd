package freeport

import (
	"net"
	"testing"
)

// Ports come from below the ephemeral range (where outgoing connections
// take theirs) when it leaves room, and can be listened on.
func TestPortBelowEphemeralRange(t *testing.T) {
	lo := ephemeralLow()
	for i := 0; i < 20; i++ {
		p, err := Port()
		if err != nil {
			t.Fatal(err)
		}
		if lo-first >= 1000 && (p < first || p >= lo) {
			t.Fatalf("port %d not in [%d, %d)", p, first, lo)
		}
		a, err := Addr()
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("listen on %s: %v", a, err)
		}
		l.Close()
	}
}

// One process is never handed the same port twice in a row of calls (a
// job's workers each get their own): independent random draws repeated
// one within a few hundred calls.
func TestPortsDoNotRepeat(t *testing.T) {
	seen := map[int]bool{}
	for i := 0; i < 500; i++ {
		p, err := Port()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice in %d calls", p, i+1)
		}
		seen[p] = true
	}
}
