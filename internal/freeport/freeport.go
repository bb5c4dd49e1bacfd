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
)

// first is the lowest port handed out: above the fixed ports of local
// tools (MinIO 19000-19399, Kafka 9092).
const first = 20000

// Port returns a loopback port that is free now.
func Port() (int, error) {
	lo := ephemeralLow()
	if lo-first >= 1000 {
		for try := 0; try < 50; try++ {
			port := first + rand.IntN(lo-first)
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
