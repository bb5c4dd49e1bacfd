// Package freeport finds a free loopback TCP port for a process that will
// listen on it later (a worker started with --listen, a test broker).
//
// The port is free when Port returns but only bound later, so it is taken
// below the kernel's ephemeral port range when there is room: a port from
// "127.0.0.1:0" comes from that range, where every outgoing connection of
// the machine (gRPC, S3 and Kafka clients) also gets its local port, and on
// a busy test machine one of them took such a port before the worker bound
// it ("bind: address already in use").
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
)

// first is the lowest port handed out: above the fixed ports of local
// tools (MinIO 19000-19399, Kafka 9092).
const first = 20000

// next is the offset in [first, ephemeral low) of the next port tried.
// Ports are walked in turn from a random start rather than drawn
// independently, so a process never hands out the same port twice (until
// it wrapped around the range): two workers of one job given the same
// port failed one of them with "bind: address already in use" (a draw
// of 5 ports from the 12,768 below Linux's default range repeats one in
// about 1 of 1,300 jobs).
var next atomic.Int64

func init() { next.Store(rand.Int64N(1 << 30)) }

// Port returns a loopback port that is free now, and that this process
// has not handed out recently.
func Port() (int, error) {
	lo := ephemeralLow()
	if lo-first >= 1000 {
		for try := 0; try < 50; try++ {
			port := first + int((next.Add(1)-1)%int64(lo-first))
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err == nil {
				l.Close()
				return port, nil
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Addr is Port as "127.0.0.1:<port>".
func Addr() (string, error) {
	p, err := Port()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("127.0.0.1:%d", p), nil
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// ip_local_port_range; IANA's 49152 where it cannot be read).
func ephemeralLow() int {
	const iana = 49152
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return iana
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return iana
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil {
		return iana
	}
	return lo
}
