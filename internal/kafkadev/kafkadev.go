// Package kafkadev runs a single-broker, in-memory Kafka-protocol cluster
// (franz-go's kfake) for trying Kafka jobs without Kafka:
//
//	flinkjob kafka-broker --topic events:4 --topic counts:1
//
// starts it on 127.0.0.1:9092; the samples in config/samples/kafka/ read
// and write it. The end-to-end suite runs it as a pod (worker image,
// command /flinkjob kafka-broker) listening on all interfaces and
// advertising its Service name. It speaks the protocol including
// transactions, read_committed, consumer groups, SASL and TLS; data lives
// in memory and is gone when it stops, unless --data-dir keeps it across
// restarts. Not for production.
package kafkadev

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Config says where the broker listens and what it holds.
type Config struct {
	// Listen is the address to listen on (host:port; default 127.0.0.1:9092).
	Listen string
	// Advertise is the host:port clients are told to connect to (default
	// Listen, with 127.0.0.1 for an empty or unspecified host).
	Advertise string
	// Topics are created at start: name -> partitions.
	Topics map[string]int32
	// DataDir, if set, persists the data across restarts.
	DataDir string
}

// Start starts the broker; Close the cluster to stop it.
func Start(c Config) (*kfake.Cluster, error) {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:9092"
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %q: %w", c.Listen, err)
	}
	adv := c.Advertise
	if adv == "" {
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			host = "127.0.0.1"
		}
		adv = net.JoinHostPort(host, port)
	}
	if _, _, err := net.SplitHostPort(adv); err != nil {
		return nil, fmt.Errorf("--advertise %q: %w", adv, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("--listen %q: bad port", c.Listen)
	}
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(p),
		// kfake listens on 127.0.0.1 and advertises what it listens on:
		// listen where asked, advertise what clients can reach.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			ln, err := net.Listen(network, c.Listen)
			if err != nil {
				return nil, err
			}
			return advertised{ln, adv}, nil
		})}
	for name, n := range c.Topics {
		opts = append(opts, kfake.SeedTopics(n, name))
	}
	if c.DataDir != "" {
		opts = append(opts, kfake.DataDir(c.DataDir))
	}
	return kfake.NewCluster(opts...)
}

// advertised is a listener whose address is the advertised one: kfake
// puts its listener's address into metadata responses.
type advertised struct {
	net.Listener
	addr string
}

func (a advertised) Addr() net.Addr { return advAddr(a.addr) }

type advAddr string

func (advAddr) Network() string  { return "tcp" }
func (a advAddr) String() string { return string(a) }

// Main is the kafka-broker command: it runs until interrupted.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kafka-broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c Config
	c.Topics = map[string]int32{}
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:9092", "address to listen on")
	fs.StringVar(&c.Advertise, "advertise", "", "host:port clients connect to (default: the listen address)")
	fs.StringVar(&c.DataDir, "data-dir", "", "persist data in this directory (default: memory only)")
	fs.Func("topic", "create topic NAME:PARTITIONS at start (repeatable)", func(s string) error {
		name, n, ok := strings.Cut(s, ":")
		parts, err := strconv.Atoi(n)
		if !ok || name == "" || err != nil || parts < 1 {
			return fmt.Errorf("want NAME:PARTITIONS, not %q", s)
		}
		c.Topics[name] = int32(parts)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cl, err := Start(c)
	if err != nil {
		fmt.Fprintf(stderr, "kafka-broker: %v\n", err)
		return 1
	}
	defer cl.Close()
	fmt.Fprintf(stdout, "kafka-broker: a Kafka-protocol broker (kfake, in memory, for development) listening on %s, advertised as %s\n", c.Listen, cl.ListenAddrs()[0])
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return 0
}
