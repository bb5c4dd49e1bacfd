package kafkadev

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// The broker listens where asked, advertises the given name, and holds the
// seeded topics.
func TestBrokerAdvertisesAndServes(t *testing.T) {
	port := strconv.Itoa(freePort(t))
	c, err := Start(Config{Listen: "127.0.0.1:" + port, Advertise: "localhost:" + port, Topics: map[string]int32{"events": 3}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:"+port), kgo.ConsumeTopics("events"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	md, err := kadm.NewClient(cl).Metadata(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Brokers) != 1 || md.Brokers[0].Host != "localhost" || strconv.Itoa(int(md.Brokers[0].Port)) != port {
		t.Fatalf("brokers = %+v, want localhost:%s", md.Brokers, port)
	}
	if n := len(md.Topics["events"].Partitions); n != 3 {
		t.Fatalf("events has %d partitions, want 3", n)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "events", Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if f := cl.PollFetches(ctx); f.NumRecords() != 1 {
		t.Fatalf("consumed %d records, want 1 (%v)", f.NumRecords(), f.Errors())
	}
}

func TestMainFlags(t *testing.T) {
	var out, errb testWriter
	if code := Main([]string{"--topic", "bad"}, &out, &errb); code != 2 {
		t.Fatalf("bad --topic: exit %d", code)
	}
}

type testWriter struct{ b []byte }

func (w *testWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }
